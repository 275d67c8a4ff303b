//! `cistern pool push | watch | process`: a pool member's side of the JSON
//! API. `push` sends files (through a local spool when asked, so nothing is
//! lost while the server is away), `watch` keeps a directory up to date with
//! the pool's results, and `process` turns sealed groups into results with
//! any command. All three resume where they stopped after a restart of
//! either side.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Args, Clone, Debug)]
pub struct PoolArgs {
    #[command(subcommand)]
    pub command: PoolCommand,
}

/// Where and who: every pool command needs these.
#[derive(Args, Clone)]
pub struct Member {
    /// The web port of the server.
    #[arg(long, env = "CISTERN_SERVER", default_value = "http://127.0.0.1:9001")]
    pub server: String,
    /// The pool's name.
    #[arg(long, env = "CISTERN_POOL")]
    pub pool: String,
    /// The member token the pool's owner handed out.
    #[arg(long, env = "CISTERN_POOL_TOKEN", hide_env_values = true)]
    pub token: String,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("server", &self.server)
            .field("pool", &self.pool)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Exit codes that every pool command shares.
const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 some of the work failed (a file refused, a group's \
command failed or its failure could not be reported) or another error; \
2 usage error; 75 push gave up for now (files stay in the spool); 77 the \
server refuses this member (disabled, removed or re-keyed by the pool's \
owner, or a role that may not do this).";

/// Exit code when the server refuses the member itself (sysexits' NOPERM).
const EXIT_REFUSED: i32 = 77;

#[derive(Subcommand, Clone, Debug)]
pub enum PoolCommand {
    /// Send files, each with its modification time (or --timestamp).
    #[command(after_help = EXIT_CODES)]
    Push {
        #[command(flatten)]
        member: Member,
        /// RFC 3339 time for every file instead of its modification time.
        #[arg(long)]
        timestamp: Option<String>,
        /// Copy files into this spool first and send them whenever the
        /// server answers; a file leaves the spool only after its receipt.
        /// With no FILE, sends what the spool holds.
        #[arg(long)]
        spool: Option<PathBuf>,
        /// Files per request.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Give up after this many seconds without reaching the server
        /// (spooled files stay for the next run); default never.
        #[arg(long)]
        give_up_secs: Option<u64>,
        files: Vec<PathBuf>,
    },
    /// Follow the pool's events and download each new result into a
    /// directory. Waits out network errors and server errors; stops when
    /// the server refuses this member.
    #[command(after_help = EXIT_CODES)]
    Watch {
        #[command(flatten)]
        member: Member,
        /// Results land here as `<group>.result`, the newest also as `latest`.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many results (default: run until stopped).
        #[arg(long)]
        count: Option<usize>,
    },
    /// Claim sealed groups and turn each into a result with a command.
    /// A command that fails is reported: the group returns to the pool for
    /// another attempt (three in all, lapsed leases included), unless the
    /// command exits with --final-exit-code.
    #[command(after_help = EXIT_CODES)]
    Process {
        #[command(flatten)]
        member: Member,
        /// Run through `sh -c`; `{input}` is a directory holding
        /// manifest.json and files/<id>, `{output}` the file to write.
        #[arg(long)]
        exec: String,
        /// Seconds a claim holds a group; renewed at a third of it.
        #[arg(long, default_value_t = 300)]
        lease_secs: u64,
        /// Seconds between looks for a sealed group when none is waiting.
        #[arg(long, default_value_t = 5)]
        poll_secs: u64,
        /// Stop after this many groups (default: run until stopped); the
        /// exit code then says whether every one was published.
        #[arg(long)]
        count: Option<usize>,
        /// The command's exit status that means "retrying cannot help"
        /// (bad input, say): the group then fails at once instead of
        /// returning for another attempt. Default: every failure is retried.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=255))]
        final_exit_code: Option<i32>,
    },
}

pub async fn run(args: PoolArgs) -> anyhow::Result<i32> {
    let name = match &args.command {
        PoolCommand::Push { .. } => "push",
        PoolCommand::Watch { .. } => "watch",
        PoolCommand::Process { .. } => "process",
    };
    match run_command(args.command).await {
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(refused) => {
                eprintln!("error: {refused}; {name} stops");
                Ok(EXIT_REFUSED)
            }
            None => Err(e),
        },
        done => done,
    }
}

async fn run_command(command: PoolCommand) -> anyhow::Result<i32> {
    match command {
        PoolCommand::Push {
            member,
            timestamp,
            spool,
            batch,
            give_up_secs,
            files,
        } => {
            let client = Client::new(member)?;
            let give_up = give_up_secs.map(Duration::from_secs);
            match spool {
                Some(spool) => {
                    push_spooled(
                        &client,
                        &spool,
                        &files,
                        timestamp.as_deref(),
                        batch,
                        give_up,
                    )
                    .await
                }
                None => push_direct(&client, &files, timestamp.as_deref(), batch, give_up).await,
            }
        }
        PoolCommand::Watch { member, out, count } => {
            watch(&Client::new(member)?, &out, count).await?;
            Ok(0)
        }
        PoolCommand::Process {
            member,
            exec,
            lease_secs,
            poll_secs,
            count,
            final_exit_code,
        } => {
            let work = Work {
                exec,
                lease_secs,
                final_exit_code,
            };
            let failed = process(
                &Client::new(member)?,
                &work,
                Duration::from_secs(poll_secs),
                count,
            )
            .await?;
            Ok(if failed > 0 { 1 } else { 0 })
        }
    }
}

struct Client {
    http: reqwest::Client,
    member: Member,
}

/// Failures worth waiting out (the server is away or busy), as opposed to
/// answers that will not change.
fn transient(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// The server refuses the member itself: retrying cannot help until the
/// pool's owner acts, so the command stops (exit code 77).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// An unsuccessful answer as an error: a [`Refused`] for 401 and 403,
/// otherwise what was asked with the status and the server's message.
async fn failure(response: reqwest::Response, what: &str) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match refusal(status, &body) {
        Some(refused) => refused.into(),
        None => anyhow::anyhow!(
            "{what}: {status}: {}",
            body["error"]["message"].as_str().unwrap_or("no details")
        ),
    }
}

/// The refusal in an answer of 401 or 403 (with its JSON error body),
/// told in the owner's terms.
fn refusal(status: reqwest::StatusCode, body: &Value) -> Option<Refused> {
    if !matches!(
        status,
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN
    ) {
        return None;
    }
    let why = match body["error"]["code"].as_str() {
        Some("account_disabled") => "this member was disabled by the pool owner".to_owned(),
        _ if status == reqwest::StatusCode::UNAUTHORIZED => {
            "the server does not know this member's token \
             (the pool owner removed the member or gave it a new token)"
                .to_owned()
        }
        _ => format!(
            "the server refused this member ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("no details")
        ),
    };
    Some(Refused(why))
}

impl Client {
    fn new(member: Member) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
            member,
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/pools/{}{path}",
            self.member.server.trim_end_matches('/'),
            self.member.pool
        )
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.member.token)
    }
}

/// Doubling waits from 1 s to 60 s, and the deadline to give up at.
struct Backoff {
    next: Duration,
    give_up: Option<tokio::time::Instant>,
}

impl Backoff {
    fn new(give_up: Option<Duration>) -> Self {
        Self {
            next: Duration::from_secs(1),
            give_up: give_up.map(|d| tokio::time::Instant::now() + d),
        }
    }

    /// Waits before the next try; false when it is time to give up.
    async fn wait(&mut self, why: &str) -> bool {
        if self
            .give_up
            .is_some_and(|at| tokio::time::Instant::now() + self.next > at)
        {
            return false;
        }
        eprintln!("{why}; retrying in {} s", self.next.as_secs());
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(60));
        true
    }

    fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }
}

/// A file waiting to be sent.
#[derive(Serialize, Deserialize, Clone)]
struct Pending {
    name: String,
    timestamp: String,
    /// The bytes, in the spool or in place.
    path: PathBuf,
}

fn timestamp_of(path: &Path, fixed: Option<&str>) -> anyhow::Result<String> {
    if let Some(fixed) = fixed {
        chrono::DateTime::parse_from_rfc3339(fixed).context("--timestamp is not RFC 3339")?;
        return Ok(fixed.to_owned());
    }
    let modified: SystemTime = std::fs::metadata(path)?.modified()?;
    Ok(chrono::DateTime::<chrono::Utc>::from(modified)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn pending_for(path: &Path, fixed: Option<&str>) -> anyhow::Result<Pending> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name", path.display()))?
        .to_owned();
    Ok(Pending {
        name,
        timestamp: timestamp_of(path, fixed)?,
        path: path.to_owned(),
    })
}

/// Sends one batch; answers each file's receipt, or an error when the
/// server did not answer with receipts (nothing is known to be stored).
async fn send_batch(client: &Client, files: &[Pending]) -> anyhow::Result<Vec<Value>> {
    let mut form = reqwest::multipart::Form::new();
    for file in files {
        let handle = tokio::fs::File::open(&file.path)
            .await
            .with_context(|| format!("opening {}", file.path.display()))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(handle));
        form = form.text("timestamp", file.timestamp.clone()).part(
            "file",
            reqwest::multipart::Part::stream(body).file_name(file.name.clone()),
        );
    }
    let response = client
        .request(reqwest::Method::POST, &client.url("/contributions"))
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        if let Some(refused) = refusal(status, &body) {
            return Err(refused.into());
        }
        let message = body["error"]["message"].as_str().unwrap_or("no details");
        if transient(status) {
            bail!("server answered {status}: {message}");
        }
        return Err(Permanent(format!("server refused the batch ({status}): {message}")).into());
    }
    let receipts = body["receipts"].as_array().cloned().unwrap_or_default();
    if receipts.len() != files.len() {
        bail!("expected {} receipts, got {}", files.len(), receipts.len());
    }
    Ok(receipts)
}

/// An answer that retrying will not change (a malformed request, say).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Permanent(String);

/// Prints a receipt; true when the file is in the pool.
fn report(file: &Pending, receipt: &Value) -> bool {
    match receipt["status"].as_str() {
        Some(status @ ("accepted" | "duplicate")) => {
            println!(
                "{status} {} group={} id={}",
                file.name,
                receipt["contribution"]["group"].as_str().unwrap_or("?"),
                receipt["contribution"]["id"].as_str().unwrap_or("?"),
            );
            true
        }
        _ => {
            println!(
                "refused {} {}: {}",
                file.name,
                receipt["reason"].as_str().unwrap_or("?"),
                receipt["message"].as_str().unwrap_or("")
            );
            false
        }
    }
}

/// Sends a batch until the server answers it (or it is time to give up).
async fn send_with_retries(
    client: &Client,
    batch: &[Pending],
    backoff: &mut Backoff,
) -> anyhow::Result<Option<Vec<Value>>> {
    loop {
        match send_batch(client, batch).await {
            Ok(receipts) => {
                backoff.reset();
                return Ok(Some(receipts));
            }
            Err(e) if e.is::<Permanent>() || e.is::<Refused>() => return Err(e),
            Err(e) => {
                if !backoff.wait(&format!("sending failed: {e:#}")).await {
                    return Ok(None);
                }
            }
        }
    }
}

async fn push_direct(
    client: &Client,
    files: &[PathBuf],
    fixed: Option<&str>,
    batch: usize,
    give_up: Option<Duration>,
) -> anyhow::Result<i32> {
    let pending: Vec<Pending> = files
        .iter()
        .map(|p| pending_for(p, fixed))
        .collect::<anyhow::Result<_>>()?;
    let mut backoff = Backoff::new(give_up);
    let mut refused = 0;
    for chunk in pending.chunks(batch.max(1)) {
        let Some(receipts) = send_with_retries(client, chunk, &mut backoff).await? else {
            bail!("gave up: the server did not answer");
        };
        for (file, receipt) in chunk.iter().zip(&receipts) {
            refused += usize::from(!report(file, receipt));
        }
    }
    Ok(if refused > 0 { 1 } else { 0 })
}

/// Copies a file into the spool durably: data, then its entry, each
/// written to a temporary name, synced and renamed.
fn spool_file(spool: &Path, file: &Pending) -> anyhow::Result<()> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let data = spool.join(format!("{id}.data"));
    let tmp = spool.join(format!("{id}.data.tmp"));
    std::fs::copy(&file.path, &tmp)
        .with_context(|| format!("copying {} into the spool", file.path.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &data)?;
    let entry = Pending {
        path: data,
        ..file.clone()
    };
    let tmp = spool.join(format!("{id}.json.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(&entry)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, spool.join(format!("{id}.json")))?;
    std::fs::File::open(spool)?.sync_all()?;
    Ok(())
}

/// Spool entries, oldest first.
fn spooled(spool: &Path) -> anyhow::Result<Vec<(PathBuf, Pending)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(spool)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let pending: Pending = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("reading spool entry {}", path.display()))?;
            entries.push((path, pending));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

async fn push_spooled(
    client: &Client,
    spool: &Path,
    files: &[PathBuf],
    fixed: Option<&str>,
    batch: usize,
    give_up: Option<Duration>,
) -> anyhow::Result<i32> {
    std::fs::create_dir_all(spool)?;
    for path in files {
        spool_file(spool, &pending_for(path, fixed)?)?;
    }
    let mut backoff = Backoff::new(give_up);
    let mut refused = 0;
    loop {
        let entries = spooled(spool)?;
        if entries.is_empty() {
            return Ok(if refused > 0 { 1 } else { 0 });
        }
        let chunk: Vec<_> = entries.into_iter().take(batch.max(1)).collect();
        let pending: Vec<Pending> = chunk.iter().map(|(_, p)| p.clone()).collect();
        let Some(receipts) = send_with_retries(client, &pending, &mut backoff).await? else {
            eprintln!(
                "gave up for now: {} file(s) stay in {}",
                spooled(spool)?.len(),
                spool.display()
            );
            return Ok(75);
        };
        let mut kept = 0;
        for ((entry, file), receipt) in chunk.iter().zip(&receipts) {
            if receipt["reason"] == "quota_exceeded" {
                // Room may be made: keep it for a later run.
                report(file, receipt);
                kept += 1;
                continue;
            }
            refused += usize::from(!report(file, receipt));
            // Any other receipt, even a refusal, is final: the file leaves
            // the spool.
            std::fs::remove_file(entry)?;
            std::fs::remove_file(&file.path)?;
        }
        if kept == chunk.len() {
            eprintln!(
                "the pool's quota is full: {kept} file(s) stay in {}",
                spool.display()
            );
            return Ok(75);
        }
    }
}

/// What `watch` remembers between runs.
#[derive(Serialize, Deserialize, Default)]
struct WatchState {
    last_event_id: i64,
    latest_etag: Option<String>,
}

const WATCH_STATE: &str = ".cistern-watch.json";

fn save_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(value)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Downloads a result into `out` (through a temporary file); answers its
/// ETag, or `None` when the server says nothing is newer.
async fn download_result(
    client: &Client,
    path: &str,
    if_none_match: Option<&str>,
    out: &Path,
) -> anyhow::Result<Option<(String, String)>> {
    let mut request = client.request(reqwest::Method::GET, &client.url(path));
    if let Some(etag) = if_none_match {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await?;
    match response.status() {
        reqwest::StatusCode::NOT_MODIFIED | reqwest::StatusCode::NOT_FOUND => return Ok(None),
        status if !status.is_success() => {
            return Err(failure(response, &format!("downloading {path}")).await);
        }
        _ => {}
    }
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let group = response
        .headers()
        .get("x-cistern-group")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let file_name = format!("{}.result", group.replace(':', "-"));
    let tmp = out.join(format!(".{file_name}.part"));
    let mut file = tokio::fs::File::create(&tmp).await?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk?).await?;
    }
    file.sync_all().await?;
    drop(file);
    std::fs::rename(&tmp, out.join(&file_name))?;
    std::fs::copy(out.join(&file_name), out.join("latest.tmp"))?;
    std::fs::rename(out.join("latest.tmp"), out.join("latest"))?;
    println!("result {group} -> {}", out.join(&file_name).display());
    Ok(Some((etag, group)))
}

/// Words for a `member.*` event after which the server may no longer
/// serve this member; `None` for the others.
fn member_change(kind: &str) -> Option<&'static str> {
    match kind {
        "member.disabled" => Some("this member was disabled by the pool owner"),
        "member.removed" => Some("this member was removed from the pool by its owner"),
        "member.rekeyed" => Some("the pool owner gave this member a new token"),
        _ => None,
    }
}

async fn watch(client: &Client, out: &Path, count: Option<usize>) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let state_path = out.join(WATCH_STATE);
    let mut state: WatchState = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut received = 0;
    let mut backoff = Backoff::new(None);
    // After a `member.*` event the next request tells whether the member
    // may go on (the event alone does not: it may be replayed from before
    // a new token, or be about another member when an owner watches); a
    // refusal then is told in the event's words.
    let mut changed: Option<&str> = None;
    let refused = |e: anyhow::Error, changed: Option<&str>| match changed {
        Some(why) if e.is::<Refused>() => Refused(why.to_owned()).into(),
        _ => e,
    };
    loop {
        // After any gap, first catch up on the newest result...
        match download_result(client, "/results/latest", state.latest_etag.as_deref(), out).await {
            Ok(Some((etag, _))) => {
                state.latest_etag = Some(etag);
                save_json(&state_path, &state)?;
                received += 1;
            }
            Ok(None) => {}
            Err(e) if e.is::<Refused>() => return Err(refused(e, changed)),
            Err(e) => {
                backoff
                    .wait(&format!("fetching the latest result failed: {e:#}"))
                    .await;
                continue;
            }
        }
        changed = None;
        if count.is_some_and(|c| received >= c) {
            return Ok(());
        }
        // ...then follow events from where we stopped.
        let url = format!(
            "{}/api/v1/events?pool={}",
            client.member.server.trim_end_matches('/'),
            client.member.pool
        );
        let response = client
            .request(reqwest::Method::GET, &url)
            .header("last-event-id", state.last_event_id.to_string())
            .send()
            .await;
        let response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) if !transient(r.status()) => return Err(failure(r, "following events").await),
            Ok(r) => {
                backoff
                    .wait(&format!("the server answered {}", r.status()))
                    .await;
                continue;
            }
            Err(e) => {
                backoff.wait(&format!("connecting failed: {e}")).await;
                continue;
            }
        };
        backoff.reset();
        let mut stream = response.bytes_stream();
        // Raw bytes until a whole event is in: a chunk may end inside a
        // multi-byte character.
        let mut raw: Vec<u8> = Vec::new();
        'stream: while let Some(Ok(chunk)) = stream.next().await {
            raw.extend_from_slice(&chunk);
            while let Some(end) = raw.windows(2).position(|w| w == b"\n\n") {
                let block_bytes: Vec<u8> = raw.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block_bytes);
                let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                let event: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                changed = event["kind"].as_str().and_then(member_change);
                if event["kind"] == "group.published"
                    && let Some(group) = event["group"].as_str()
                {
                    let path = format!("/groups/{group}/result");
                    match download_result(client, &path, None, out).await {
                        Ok(Some((etag, _))) => {
                            state.latest_etag = Some(etag);
                            received += 1;
                        }
                        Ok(None) => {}
                        Err(e) if e.is::<Refused>() => return Err(e),
                        Err(e) => {
                            // Without moving past this event: reconnect and
                            // catch up through the latest result.
                            eprintln!("downloading {group} failed: {e:#}");
                            break 'stream;
                        }
                    }
                }
                if let Some(id) = event["id"].as_i64() {
                    state.last_event_id = id;
                }
                save_json(&state_path, &state)?;
                if count.is_some_and(|c| received >= c) {
                    return Ok(());
                }
                if changed.is_some() {
                    // The server ends a refused member's stream; ask at once.
                    break 'stream;
                }
            }
        }
        if changed.is_none() {
            backoff.wait("the event stream ended").await;
        }
    }
}

/// Quotes a path for `sh -c`.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// What `process` does with each group it claims.
struct Work {
    /// The command, with `{input}` and `{output}`.
    exec: String,
    lease_secs: u64,
    /// The command's exit status that makes a failure final.
    final_exit_code: Option<i32>,
}

/// Claims groups and works on them until `count` are done; answers how
/// many were not published.
async fn process(
    client: &Client,
    work: &Work,
    poll: Duration,
    count: Option<usize>,
) -> anyhow::Result<usize> {
    let mut done = 0;
    let mut failed = 0;
    let mut backoff = Backoff::new(None);
    while count.is_none_or(|c| done < c) {
        let claim = client
            .request(reqwest::Method::POST, &client.url("/claims"))
            .json(&serde_json::json!({"lease_secs": work.lease_secs}))
            .send()
            .await;
        let claim = match claim {
            Ok(r) if r.status() == reqwest::StatusCode::NO_CONTENT => {
                tokio::time::sleep(poll).await;
                continue;
            }
            Ok(r) if r.status().is_success() => r.json::<Value>().await?,
            Ok(r) if !transient(r.status()) => return Err(failure(r, "claiming refused").await),
            Ok(r) => {
                backoff
                    .wait(&format!("claiming failed: {}", r.status()))
                    .await;
                continue;
            }
            Err(e) => {
                backoff.wait(&format!("claiming failed: {e}")).await;
                continue;
            }
        };
        backoff.reset();
        let group = claim["group"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let lease = claim["lease_id"].as_str().unwrap_or_default().to_owned();
        eprintln!("claimed {group}");
        match process_group(client, work, &group, &lease).await {
            Ok(()) => println!("published {group}"),
            Err(e) => {
                failed += 1;
                eprintln!("group {group} failed: {e:#}");
                report_failure(client, work, &group, &lease, &e).await;
            }
        }
        done += 1;
    }
    Ok(failed)
}

/// The command ended badly.
#[derive(Debug, thiserror::Error)]
#[error("the command exited with {status}; stderr ends with:\n{tail}")]
struct CommandFailed {
    status: std::process::ExitStatus,
    /// The end of its stderr.
    tail: String,
}

/// Tells the server why the work failed, so the group goes back to the
/// pool now rather than when the lease lapses; final when the command
/// exited with `--final-exit-code`. Unreported, the lease lapses and counts
/// the same attempt.
async fn report_failure(
    client: &Client,
    work: &Work,
    group: &str,
    lease: &str,
    error: &anyhow::Error,
) {
    let last = work.final_exit_code.is_some_and(|code| {
        error
            .downcast_ref::<CommandFailed>()
            .and_then(|failed| failed.status.code())
            == Some(code)
    });
    let reported = client
        .request(
            reqwest::Method::POST,
            &client.url(&format!("/groups/{group}/fail")),
        )
        .json(
            &serde_json::json!({"lease_id": lease, "reason": format!("{error:#}"), "final": last}),
        )
        .send()
        .await;
    let problem = match reported {
        Ok(r) if r.status().is_success() => {
            let now: Value = r.json().await.unwrap_or(Value::Null);
            let attempts = now["attempts"].as_i64().unwrap_or_default();
            match now["state"].as_str() {
                Some("sealed") => eprintln!(
                    "group {group} is back in the pool for another attempt ({attempts} made)"
                ),
                _ => eprintln!("group {group} has failed for good after {attempts} attempt(s)"),
            }
            return;
        }
        Ok(r) => failure(r, "the server refused the report").await,
        Err(e) => e.into(),
    };
    eprintln!(
        "reporting the failure failed ({problem:#}); its lease lapses instead, the same attempt"
    );
}

/// Downloads, runs the command, uploads; the lease is renewed all along,
/// so a slow download or upload cannot let it lapse either.
async fn process_group(
    client: &Client,
    work: &Work,
    group: &str,
    lease: &str,
) -> anyhow::Result<()> {
    let uploading = std::sync::atomic::AtomicBool::new(false);
    tokio::select! {
        done = work_on_group(client, &work.exec, group, lease, &uploading) => done,
        lapsed = keep_lease(client, group, lease, work.lease_secs, &uploading) => Err(lapsed),
    }
}

/// The command's process group (the shell and everything it started),
/// killed when the work is dropped before the command ended: a lapsed
/// lease must not leave a pipeline running.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(id) = self.0.and_then(|id| libc::pid_t::try_from(id).ok()) {
            // SAFETY: kill(2) takes plain integers; a negative pid names the
            // group that `process_group(0)` made with the shell as leader.
            unsafe {
                libc::kill(-id, libc::SIGKILL);
            }
        }
    }
}

/// Renews the lease at a third of its length; answers only once it has
/// lapsed (the caller then drops the work, which kills the command). Once
/// the result is on its way, the upload's own answer decides: a refused
/// renewal then may only mean that the result was just published.
async fn keep_lease(
    client: &Client,
    group: &str,
    lease: &str,
    lease_secs: u64,
    uploading: &std::sync::atomic::AtomicBool,
) -> anyhow::Error {
    let renew_every = Duration::from_secs((lease_secs / 3).max(1));
    loop {
        tokio::time::sleep(renew_every).await;
        let renewed = client
            .request(
                reqwest::Method::POST,
                &client.url(&format!("/groups/{group}/lease")),
            )
            .json(&serde_json::json!({"lease_id": lease, "lease_secs": lease_secs}))
            .send()
            .await;
        match renewed {
            Ok(r) if r.status().is_success() => {}
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                if uploading.load(std::sync::atomic::Ordering::Acquire) {
                    return std::future::pending().await;
                }
                return anyhow::anyhow!("the lease lapsed; another processor may have the group");
            }
            other => eprintln!("renewing the lease failed ({other:?}); trying again"),
        }
    }
}

async fn work_on_group(
    client: &Client,
    exec: &str,
    group: &str,
    lease: &str,
    uploading: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let input = work.path().join("input");
    std::fs::create_dir_all(&input)?;
    let output = work.path().join("output");
    let archive = client
        .request(
            reqwest::Method::GET,
            &client.url(&format!("/groups/{group}/archive")),
        )
        .send()
        .await?
        .error_for_status()?;
    let tar_path = work.path().join("group.tar");
    let mut file = tokio::fs::File::create(&tar_path).await?;
    let mut body = archive.bytes_stream();
    while let Some(chunk) = body.next().await {
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk?).await?;
    }
    drop(file);
    let unpack_into = input.clone();
    tokio::task::spawn_blocking(move || {
        tar::Archive::new(std::fs::File::open(&tar_path)?).unpack(&unpack_into)
    })
    .await??;

    let command = exec
        .replace("{input}", &shell_quote(&input))
        .replace("{output}", &shell_quote(&output));
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .context("starting the command")?;
    let mut running = ProcessGroup(child.id());
    let mut stderr = child.stderr.take().context("no stderr")?;
    let stderr_tail = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut all).await;
        let start = all.len().saturating_sub(2000);
        String::from_utf8_lossy(&all[start..]).into_owned()
    });
    let status = child.wait().await?;
    running.0 = None;
    let tail = stderr_tail.await.unwrap_or_default();
    if !status.success() {
        return Err(CommandFailed { status, tail }.into());
    }
    let file = tokio::fs::File::open(&output)
        .await
        .context("the command did not write {output}")?;
    uploading.store(true, std::sync::atomic::Ordering::Release);
    let uploaded = client
        .request(
            reqwest::Method::PUT,
            &format!(
                "{}?lease={lease}",
                client.url(&format!("/groups/{group}/result"))
            ),
        )
        .body(reqwest::Body::wrap_stream(
            tokio_util::io::ReaderStream::new(file),
        ))
        .send()
        .await?;
    if !uploaded.status().is_success() {
        let status = uploaded.status();
        let body: Value = uploaded.json().await.unwrap_or(Value::Null);
        bail!(
            "uploading the result failed ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
