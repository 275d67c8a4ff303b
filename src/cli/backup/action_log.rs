//! The action log: each backup, restore, forget and mirror run tells a
//! Cistern server when it starts and how it ended (`POST
//! /api/v1/backup-runs`, kept as `backup.*` entries of the audit log),
//! and `cistern backup log` lists them. The server is `--server`, or the
//! web port beside the S3 endpoint (its port + 1, as Cistern's defaults
//! 9000 and 9001 are); the S3 key pair signs in. A store that is not
//! Cistern keeps no log: the run says so once and goes on. The end of a
//! run that could not reach the server (it went away mid-run) is kept in
//! the cache folder and sent by the next run with the same key that
//! reaches a server.

use anyhow::{Context, bail};
use clap::Args;

use super::Output;
use super::store::{Endpoint, Resolved};
use crate::model::BackupRunReport as RunRecord;

#[derive(Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// The Cistern web port that keeps the action log (default: the S3
    /// endpoint's port + 1).
    #[arg(long, env = "CISTERN_SERVER")]
    pub server: Option<String>,
    /// Do not record this run in the server's action log.
    #[arg(long)]
    pub no_log: bool,
}

#[derive(Args, Clone, Debug, Default)]
pub struct ServerArgs {
    /// The Cistern web port (default: the S3 endpoint's port + 1).
    #[arg(long, env = "CISTERN_SERVER")]
    pub server: Option<String>,
    #[command(flatten)]
    pub endpoint: Endpoint,
}

/// The figures a run reports at its end.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub files_scanned: u64,
    pub bytes_scanned: u64,
    pub files_sent: u64,
    pub bytes_sent: u64,
    pub files_skipped: u64,
    pub bytes_skipped: u64,
    pub files_deleted: u64,
    pub bytes_deleted: u64,
    pub snapshots_removed: u64,
    pub errors: Vec<String>,
    pub snapshot: Option<String>,
}

/// A run being logged; `None` inside when there is no server to tell.
pub struct ActionLog {
    server: Option<Server>,
    record: RunRecord,
}

struct Server {
    http: reqwest::Client,
    url: String,
    key: String,
    secret: String,
    /// Where ends that could not be sent wait.
    unsent: Option<std::path::PathBuf>,
}

/// Keeps at most this many error lines in a record.
const ERROR_LINES: usize = 20;

impl ActionLog {
    /// Records the start of a run. A server that cannot be told is
    /// reported on stderr and left alone for the rest of the run.
    pub async fn begin(
        args: &LogArgs,
        resolved: &Resolved,
        kind: &str,
        source: String,
        destination: String,
        cache_dir: Option<&std::path::Path>,
    ) -> Self {
        let record = RunRecord {
            run: uuid::Uuid::now_v7().simple().to_string(),
            kind: kind.to_owned(),
            phase: "started".to_owned(),
            host: super::locks::hostname(),
            source,
            destination,
            started_at: now_rfc3339(),
            ..RunRecord::default()
        };
        let server = match args.no_log {
            true => None,
            false => log_server(args.server.as_deref(), resolved).await,
        };
        let server = server.map(|url| Server {
            http: http_client(),
            url,
            key: resolved.access_key.clone(),
            secret: resolved.secret_key.clone(),
            unsent: cache_dir
                .map(std::path::Path::to_path_buf)
                .or_else(super::cache::default_dir)
                .map(|d| d.join("unsent")),
        });
        let mut log = Self { server, record };
        log.send().await;
        log
    }

    /// Records the end of the run with its figures.
    pub async fn end(mut self, status: &str, figures: Figures) {
        let r = &mut self.record;
        r.phase = "finished".to_owned();
        r.ended_at = Some(now_rfc3339());
        r.status = Some(status.to_owned());
        r.files_scanned = figures.files_scanned;
        r.bytes_scanned = figures.bytes_scanned;
        r.files_sent = figures.files_sent;
        r.bytes_sent = figures.bytes_sent;
        r.files_skipped = figures.files_skipped;
        r.bytes_skipped = figures.bytes_skipped;
        r.files_deleted = figures.files_deleted;
        r.bytes_deleted = figures.bytes_deleted;
        r.snapshots_removed = figures.snapshots_removed;
        r.errors = figures.errors.len() as u64;
        r.error_lines = figures.errors.into_iter().take(ERROR_LINES).collect();
        r.snapshot = figures.snapshot;
        self.send().await;
    }

    /// Sends the report; a start that cannot be sent is told once, an end
    /// that cannot be sent waits in the cache folder for the next run.
    async fn send(&mut self) {
        let Some(server) = &self.server else { return };
        let problem = match server.post(&self.record).await {
            Ok(()) => {
                if self.record.phase == "started" {
                    server.send_unsent().await;
                }
                return;
            }
            Err(problem) => problem,
        };
        if self.record.phase == "finished" {
            server.keep_unsent(&self.record);
        } else {
            eprintln!(
                "note: the action log on {} did not take this run's start: {problem}",
                server.url
            );
        }
    }
}

impl Server {
    /// Sends one report; what went wrong, in words.
    async fn post(&self, record: &RunRecord) -> Result<(), String> {
        let sent = self
            .http
            .post(format!("{}/api/v1/backup-runs", self.url))
            .basic_auth(&self.key, Some(&self.secret))
            .json(record)
            .send()
            .await;
        Err(match sent {
            Ok(answer) if answer.status().is_success() => return Ok(()),
            Ok(answer) if answer.status() == reqwest::StatusCode::NOT_FOUND => {
                format!("{} is not a Cistern server", self.url)
            }
            Ok(answer) => format!("{} answered {}", self.url, answer.status()),
            Err(e) => format!("{} did not answer ({e})", self.url),
        })
    }

    /// Where reports wait that could not be sent to this server.
    fn unsent_dir(&self) -> Option<std::path::PathBuf> {
        // By key, not by URL: the server may come back at another address.
        let name = super::manifest::hex_sha256(self.key.as_bytes());
        self.unsent.as_ref().map(|d| d.join(&name[..16]))
    }

    fn keep_unsent(&self, record: &RunRecord) {
        let Some(dir) = self.unsent_dir() else { return };
        let kept = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                dir.join(format!("{}.json", record.run)),
                serde_json::to_vec(record).unwrap_or_default(),
            )
        });
        if kept.is_ok() {
            eprintln!(
                "note: the end of this run will be logged by the next run that reaches {}",
                self.url
            );
        }
    }

    /// Sends the reports earlier runs could not, oldest first.
    async fn send_unsent(&self) {
        let Some(dir) = self.unsent_dir() else { return };
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut files: Vec<_> = listing.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            let Some(record) = std::fs::read(&file)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<RunRecord>(&bytes).ok())
            else {
                let _ = std::fs::remove_file(&file);
                continue;
            };
            if self.post(&record).await.is_err() {
                return;
            }
            let _ = std::fs::remove_file(&file);
        }
    }
}

/// Records that a run failed with `e` after the work in `figures` (when it
/// is being logged at all), and hands the error back.
pub async fn failed(
    log: Option<ActionLog>,
    e: anyhow::Error,
    mut figures: Figures,
) -> anyhow::Error {
    if let Some(log) = log {
        figures.errors.push(format!("{e:#}"));
        log.end("failed", figures).await;
    }
    e
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The server that keeps the log: `--server` as given, or the web port
/// beside the S3 endpoint once it has shown itself to be Cistern's (its
/// `/version`, which needs no key), so that the key pair is never sent to
/// whatever else listens there.
async fn log_server(server: Option<&str>, resolved: &Resolved) -> Option<String> {
    let explicit = server.is_some();
    let url = server_url(server, resolved)?;
    if explicit {
        return Some(url);
    }
    let answer = http_client()
        .get(format!("{url}/version"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    let name = match answer {
        Ok(answer) if answer.status().is_success() => answer
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["name"].as_str().map(str::to_owned)),
        _ => None,
    };
    if name.as_deref() == Some("cistern") {
        return Some(url);
    }
    eprintln!(
        "note: no action log: {url} is not a Cistern web port (name one with --server, or pass --no-log)"
    );
    None
}

/// `--server`, else the web port beside the S3 endpoint.
fn server_url(server: Option<&str>, resolved: &Resolved) -> Option<String> {
    if let Some(server) = server {
        return Some(server.trim_end_matches('/').to_owned());
    }
    let mut url = url::Url::parse(resolved.endpoint.as_deref()?).ok()?;
    let port = url.port_or_known_default()?;
    url.set_port(Some(port.checked_add(1)?)).ok()?;
    Some(url.as_str().trim_end_matches('/').to_owned())
}

/// `cistern backup log`.
pub async fn list(args: &ServerArgs, limit: usize, output: &Output) -> anyhow::Result<i32> {
    let resolved = args.endpoint.resolve()?;
    let Some(url) = server_url(args.server.as_deref(), &resolved) else {
        bail!("name the Cistern server's web port with --server (or CISTERN_SERVER)");
    };
    let answer = http_client()
        .get(format!("{url}/api/v1/backup-runs"))
        .query(&[("limit", limit)])
        .basic_auth(&resolved.access_key, Some(&resolved.secret_key))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !answer.status().is_success() {
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        bail!(
            "{url} answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("no details")
        );
    }
    let runs: Vec<RunRecord> = answer
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|mut body| serde_json::from_value(body["runs"].take()).ok())
        .context("the server's answer is not a list of runs")?;
    if output.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(0);
    }
    println!(
        "{:<20} {:<8} {:<11} {:<12} {:>8} {:>10} {:>8} {:>10} {:>6}  source -> destination",
        "started", "kind", "status", "host", "files", "bytes", "sent", "sent bytes", "errors",
    );
    for run in runs {
        println!(
            "{:<20} {:<8} {:<11} {:<12} {:>8} {:>10} {:>8} {:>10} {:>6}  {} -> {}",
            run.started_at
                .get(..19)
                .unwrap_or(&run.started_at)
                .replace('T', " "),
            run.kind,
            run.status.as_deref().unwrap_or("unfinished"),
            run.host,
            run.files_scanned,
            super::report::size(run.bytes_scanned),
            run.files_sent,
            super::report::size(run.bytes_sent),
            run.errors,
            run.source,
            run.destination,
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_server_is_beside_the_s3_port() {
        let resolved = |endpoint: Option<&str>| Resolved {
            endpoint: endpoint.map(str::to_owned),
            access_key: String::new(),
            secret_key: String::new(),
            region: String::new(),
        };
        assert_eq!(
            server_url(None, &resolved(Some("http://nas:9000"))).as_deref(),
            Some("http://nas:9001")
        );
        assert_eq!(server_url(None, &resolved(None)), None);
        assert_eq!(
            server_url(Some("https://c.example/"), &resolved(None)).as_deref(),
            Some("https://c.example")
        );
    }
}
