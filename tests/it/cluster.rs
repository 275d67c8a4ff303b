//! Several nodes, one service: three real `cistern` processes share one
//! PostgreSQL database and one real S3 server (s3s-fs) as their blob store,
//! each behind a TCP relay of the test's own that can cut it off. Clients
//! spread their requests over the nodes.
//!
//! These tests need `CISTERN_TEST_DATABASE_URL` (a PostgreSQL server) and
//! `CISTERN_TEST_S3S_FS` (an `s3s-fs` binary), so they are ignored by a
//! plain `cargo test`; `.ci/run` runs them with `--ignored`. The race runs
//! `CISTERN_CLUSTER_RACE_SECS` (30); `CISTERN_TEST_BIN` names another
//! `cistern` build to start instead of this one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use sqlx::Row;
use tokio::task::JoinHandle;

use crate::helpers::*;

/// A loopback port that was free a moment ago, chosen below the kernel's
/// ephemeral range: the nodes bind it only after they start (and again
/// after a restart), and a port inside that range can meanwhile become the
/// source port of any outgoing connection (the nodes open dozens to the
/// database and the blob store), which makes the node's bind fail.
fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral: Vec<u16> = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .map(|range| {
            range
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let (start, end) = match ephemeral[..] {
        [start, end] => (start, end),
        _ => (32768, 60999),
    };
    // Below the range where it leaves room, else above it.
    let outside = if start > 12_000 {
        10_000..start
    } else {
        end.saturating_add(1).min(65_000)..65_535
    };
    let mut handed_out = HANDED_OUT.lock().unwrap();
    for _ in 0..1000 {
        let port = rand::rng().random_range(outside.clone());
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {outside:?}");
}

/// A TCP relay on a loopback port of its own to `target`. `cut` drops every
/// relayed connection and refuses new ones (as a database or blob store
/// that went away); `restore` serves the same port again.
struct Relay {
    port: u16,
    target: SocketAddr,
    state: Arc<Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    accepting: Option<JoinHandle<()>>,
    connections: Vec<tokio::task::AbortHandle>,
    /// While cut: the port, bound and not listening, so that connections
    /// are refused and nothing else takes it.
    parked: Option<tokio::net::TcpSocket>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let relay = Relay {
            port: free_port(),
            target,
            state: Arc::default(),
        };
        relay.restore();
        relay
    }

    fn socket(&self) -> tokio::net::TcpSocket {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket
            .bind(([127, 0, 0, 1], self.port).into())
            .expect("the relay's port");
        socket
    }

    fn restore(&self) {
        let mut state = self.state.lock().unwrap();
        state.parked = None;
        let listener = self.socket().listen(1024).expect("listen");
        let target = self.target;
        let shared = self.state.clone();
        state.accepting = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut state = shared.lock().unwrap();
                state.connections.retain(|c| !c.is_finished());
                state.connections.push(task.abort_handle());
            }
        }));
    }

    async fn cut(&self) {
        {
            let mut state = self.state.lock().unwrap();
            if let Some(accepting) = state.accepting.take() {
                accepting.abort();
            }
            for connection in state.connections.drain(..) {
                connection.abort();
            }
        }
        // The aborted listener is dropped on its task; wait until the port
        // can be parked.
        let parked = loop {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            socket.set_reuseaddr(true).expect("reuseaddr");
            if socket.bind(([127, 0, 0, 1], self.port).into()).is_ok() {
                break socket;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.state.lock().unwrap().parked = Some(parked);
    }
}

/// One `cistern serve` process.
struct Node {
    name: &'static str,
    s3_port: u16,
    web_port: u16,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        // `CISTERN_TEST_BIN` runs the tests against another build (an
        // older one, to see what a test catches).
        let binary = std::env::var("CISTERN_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cistern").to_owned());
        let child = Command::new(binary)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a node");
        self.child = Some(child);
    }

    fn s3_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    fn web_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.web_port)
    }

    fn api(&self) -> ApiClient {
        ApiClient::at(&self.web_url())
    }

    /// The root user's S3 client; the SDK retries as it does by default.
    fn s3(&self) -> Client {
        client_for(&self.s3_url(), ROOT_USER, ROOT_PASSWORD, None)
    }

    /// An S3 client that tries each request once: what the node answered.
    fn s3_once(&self) -> Client {
        client_trying_once(&self.s3_url(), ROOT_USER, ROOT_PASSWORD)
    }

    async fn readiness(&self) -> Option<u16> {
        let response = reqwest::Client::new()
            .get(format!("{}/health/ready", self.web_url()))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    async fn wait_ready(&self) {
        let ready = poll_for(Duration::from_secs(60), || async {
            (self.readiness().await == Some(200)).then_some(())
        })
        .await;
        if ready.is_err() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            // A failed start ends in a long backtrace: show its cause too.
            let cause: Vec<&str> = log
                .lines()
                .filter(|line| line.contains("Error") || line.contains("ERROR"))
                .take(5)
                .collect();
            panic!(
                "node {} is not ready after 60 s; its errors:\n{}\nits log ends:\n{tail}",
                self.name,
                cause.join("\n")
            );
        }
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the process to finish.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    nodes: Vec<Node>,
    database_url: String,
    database_relay: Relay,
    blob_relay: Relay,
    blob_server: S3sFs,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Three nodes started at the same moment against an empty database.
    async fn start(extra: &[&str]) -> Cluster {
        let server = std::env::var("CISTERN_TEST_DATABASE_URL")
            .expect("CISTERN_TEST_DATABASE_URL names the PostgreSQL server for the cluster tests");
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = cistern::testing::fresh_postgres_database(&server).await;

        let blob_server = S3sFs::start(&dir.path().join("s3s-fs")).await;
        std::fs::create_dir_all(blob_server.root.join("blobs")).expect("the blob bucket");
        let blob_addr = blob_server.addr;

        let mut db = url::Url::parse(&database_url).expect("a database url");
        let db_addr: SocketAddr = format!(
            "{}:{}",
            db.host_str().unwrap_or("127.0.0.1"),
            db.port().unwrap_or(5432)
        )
        .parse()
        .expect("the database server is given by address");
        let database_relay = Relay::start(db_addr);
        let blob_relay = Relay::start(blob_addr);
        db.set_port(Some(database_relay.port)).unwrap();

        let mut nodes = Vec::new();
        for name in ["a", "b", "c"] {
            let (s3_port, web_port) = (free_port(), free_port());
            let data_dir = dir.path().join(format!("node-{name}"));
            let mut args: Vec<String> = [
                "serve",
                "--s3-listen",
                &format!("127.0.0.1:{s3_port}"),
                "--web-listen",
                &format!("127.0.0.1:{web_port}"),
                "--data-dir",
                &data_dir.to_string_lossy(),
                "--root-user",
                ROOT_USER,
                "--root-password",
                ROOT_PASSWORD,
                "--shutdown-grace-secs",
                "2",
                "--database-wait-ms",
                "1000",
                "--log-level",
                "warn",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            let env = [
                ("CISTERN_DATABASE_URL", db.to_string()),
                ("CISTERN_BLOB_URL", "s3://blobs/cistern".to_owned()),
                (
                    "AWS_ENDPOINT",
                    format!("http://127.0.0.1:{}", blob_relay.port),
                ),
                ("AWS_ACCESS_KEY_ID", S3sFs::KEY.to_owned()),
                ("AWS_SECRET_ACCESS_KEY", S3sFs::SECRET.to_owned()),
                ("AWS_REGION", "us-east-1".to_owned()),
                ("AWS_ALLOW_HTTP", "true".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            nodes.push(Node {
                name,
                s3_port,
                web_port,
                args,
                env,
                log: dir.path().join(format!("node-{name}.log")),
                child: None,
            });
        }
        for node in &mut nodes {
            node.spawn();
        }
        for node in &nodes {
            node.wait_ready().await;
        }
        Cluster {
            nodes,
            database_url,
            database_relay,
            blob_relay,
            blob_server,
            _dir: dir,
        }
    }

    /// A direct connection to the shared database, for checking rows.
    async fn database(&self) -> sqlx::AnyConnection {
        <sqlx::AnyConnection as sqlx::Connection>::connect(&self.database_url)
            .await
            .expect("connect to the cluster's database")
    }

    /// Ids of the blob files the blob store holds.
    fn stored_blobs(&self) -> BTreeSet<String> {
        let dir = self.blob_server.root.join("blobs/cistern/blobs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return BTreeSet::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // s3s-fs keeps an upload's parts and metadata beside objects
            // under names of its own.
            .filter(|name| name.chars().all(|c| c.is_ascii_hexdigit()))
            .collect()
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i % self.nodes.len()]
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and s3s-fs: run by .ci/run"]
async fn three_nodes_start_together_and_read_what_the_others_wrote() {
    let cluster = Cluster::start(&[]).await;
    let mut db = cluster.database().await;
    let applied: Vec<(i64, i64)> = sqlx::query(
        "SELECT version, COUNT(*) AS n FROM _sqlx_migrations GROUP BY version ORDER BY version",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("version"), r.get("n")))
    .collect();
    assert!(applied.len() >= 10, "{applied:?}");
    assert!(
        applied.iter().all(|(_, n)| *n == 1),
        "each migration ran once: {applied:?}"
    );

    let (a, b, c) = (
        cluster.node(0).s3(),
        cluster.node(1).s3(),
        cluster.node(2).s3(),
    );
    a.create_bucket().bucket("shared").send().await.unwrap();
    let small = pattern(1_000, 1);
    let large = pattern(300_000, 2);
    put_bytes(&a, "shared", "small", small.clone()).await;
    put_bytes(&a, "shared", "large", large.clone()).await;
    for reader in [&b, &c] {
        assert_eq!(get_bytes(reader, "shared", "small").await, small);
        assert_eq!(get_bytes(reader, "shared", "large").await, large);
    }

    // A multipart upload whose parts go through different nodes.
    let upload = a
        .create_multipart_upload()
        .bucket("shared")
        .key("parts")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let first = pattern(5 * 1024 * 1024, 3);
    let second = pattern(1024 * 1024 + 7, 4);
    let mut parts = Vec::new();
    for (number, (client, data)) in [(&b, &first), (&c, &second)].into_iter().enumerate() {
        let number = number as i32 + 1;
        let part = client
            .upload_part()
            .bucket("shared")
            .key("parts")
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    a.complete_multipart_upload()
        .bucket("shared")
        .key("parts")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let whole = [first, second].concat();
    for reader in [&b, &c] {
        assert_eq!(get_bytes(reader, "shared", "parts").await, whole);
    }
}

/// What the racing writers saw: operations done, and answers that no
/// race may cause.
#[derive(Default)]
struct RaceTally {
    done: BTreeMap<&'static str, u64>,
    refused: BTreeMap<String, u64>,
    broken: Vec<String>,
}

/// Error codes a racing operation may meet: another writer got there first.
const RACE_OUTCOMES: &[&str] = &[
    "NoSuchKey",
    "NoSuchUpload",
    "PreconditionFailed",
    "InvalidPart",
];

fn tally<T, E>(
    tally: &Mutex<RaceTally>,
    op: &'static str,
    result: Result<T, aws_sdk_s3::error::SdkError<E>>,
) -> Option<T>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    let mut tally = tally.lock().unwrap();
    match result {
        Ok(value) => {
            *tally.done.entry(op).or_default() += 1;
            Some(value)
        }
        Err(e) => {
            let code = e
                .as_service_error()
                .and_then(|s| s.code())
                .unwrap_or("no answer")
                .to_owned();
            if RACE_OUTCOMES.contains(&code.as_str()) {
                *tally.refused.entry(format!("{op} {code}")).or_default() += 1;
            } else {
                let message = e
                    .as_service_error()
                    .and_then(|s| s.message())
                    .unwrap_or_default();
                tally.broken.push(format!("{op}: {code}: {message}"));
            }
            None
        }
    }
}

/// One racing writer: random operations on the shared keys through random
/// nodes until `until`.
async fn race(clients: Vec<Client>, until: Instant, seen: Arc<Mutex<RaceTally>>) {
    let key = |i: usize| format!("k{:02}", i % 20);
    while Instant::now() < until {
        let (op, a, b, n1, n2, n3, big) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..4),
                rng.random_range(0..20),
                // Never the first key: a copy onto itself is refused.
                rng.random_range(1..20),
                rng.random_range(0..3),
                rng.random_range(0..3),
                rng.random_range(0..3),
                rng.random_bool(0.5),
            )
        };
        // Inline rows and blob-backed objects both race.
        let size = if big { 100_000 } else { 2_000 };
        match op {
            0 => {
                let result = clients[n1]
                    .put_object()
                    .bucket("race")
                    .key(key(a))
                    .body(ByteStream::from(pattern(size, a as u8)))
                    .send()
                    .await;
                tally(&seen, "put", result);
            }
            1 => {
                let result = clients[n1]
                    .delete_object()
                    .bucket("race")
                    .key(key(a))
                    .send()
                    .await;
                tally(&seen, "delete", result);
            }
            2 => {
                let result = clients[n1]
                    .copy_object()
                    .bucket("race")
                    .key(key(a + b))
                    .copy_source(format!("race/{}", key(a)))
                    .send()
                    .await;
                tally(&seen, "copy", result);
            }
            _ => {
                let created = clients[n1]
                    .create_multipart_upload()
                    .bucket("race")
                    .key(key(a))
                    .send()
                    .await;
                let Some(created) = tally(&seen, "create upload", created) else {
                    continue;
                };
                let upload_id = created.upload_id().unwrap().to_owned();
                let part = clients[n2]
                    .upload_part()
                    .bucket("race")
                    .key(key(a))
                    .upload_id(&upload_id)
                    .part_number(1)
                    .body(ByteStream::from(pattern(size, b as u8)))
                    .send()
                    .await;
                let Some(part) = tally(&seen, "upload part", part) else {
                    continue;
                };
                let completed = clients[n3]
                    .complete_multipart_upload()
                    .bucket("race")
                    .key(key(a))
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .parts(
                                CompletedPart::builder()
                                    .part_number(1)
                                    .e_tag(part.e_tag().unwrap())
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await;
                tally(&seen, "complete upload", completed);
            }
        }
    }
}

/// Blob ids that rows reference, with how many references each has.
async fn referenced_blobs(db: &mut sqlx::AnyConnection) -> BTreeMap<String, i64> {
    let mut refs = BTreeMap::new();
    let rows = sqlx::query("SELECT segments FROM objects WHERE segments IS NOT NULL")
        .fetch_all(&mut *db)
        .await
        .unwrap();
    for row in rows {
        let segments: Value = serde_json::from_str(&row.get::<String, _>("segments")).unwrap();
        for segment in segments.as_array().unwrap() {
            let blob = segment["blob"].as_str().unwrap().to_owned();
            *refs.entry(blob).or_default() += 1;
        }
    }
    let parts = sqlx::query("SELECT blob_id FROM upload_parts")
        .fetch_all(&mut *db)
        .await
        .unwrap();
    for row in parts {
        *refs.entry(row.get::<String, _>("blob_id")).or_default() += 1;
    }
    refs
}

#[tokio::test]
#[ignore = "needs PostgreSQL and s3s-fs: run by .ci/run"]
async fn racing_writers_on_three_nodes_keep_counters_references_and_blobs_exact() {
    let race_secs: u64 = std::env::var("CISTERN_CLUSTER_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut cluster = Cluster::start(&["--trash-delay-secs", "0"]).await;
    cluster
        .node(0)
        .s3()
        .create_bucket()
        .bucket("race")
        .send()
        .await
        .unwrap();
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).s3()).collect();
    let seen = Arc::new(Mutex::new(RaceTally::default()));
    let until = Instant::now() + Duration::from_secs(race_secs);
    let writers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(race(clients.clone(), until, seen.clone())))
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    eprintln!(
        "race over {race_secs} s: done {:?}, refused {:?}",
        seen.done, seen.refused
    );
    assert!(
        seen.broken.is_empty(),
        "{} answers no race may cause, first: {:?}",
        seen.broken.len(),
        seen.broken.iter().take(5).collect::<Vec<_>>()
    );
    assert!(seen.done.values().sum::<u64>() > 100, "{:?}", seen.done);

    let mut db = cluster.database().await;
    let counters = sqlx::query(
        "SELECT b.name, b.object_count, b.bytes_stored, \
         (SELECT COUNT(*) FROM objects o WHERE o.bucket = b.name) AS counted, \
         (SELECT CAST(COALESCE(SUM(o.size), 0) AS BIGINT) FROM objects o WHERE o.bucket = b.name) AS summed \
         FROM buckets b",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    for row in &counters {
        let name: String = row.get("name");
        assert_eq!(
            (
                row.get::<i64, _>("object_count"),
                row.get::<i64, _>("bytes_stored")
            ),
            (row.get::<i64, _>("counted"), row.get::<i64, _>("summed")),
            "bucket {name}: counters against a fresh count"
        );
    }
    let referenced = referenced_blobs(&mut db).await;
    let counted: BTreeMap<String, i64> = sqlx::query("SELECT id, refs FROM blobs")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("id"), r.get("refs")))
        .collect();
    assert_eq!(
        counted, referenced,
        "each blob's reference count equals its references"
    );
    let stored = cluster.stored_blobs();
    let missing: Vec<&String> = referenced
        .keys()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "blobs referenced but not stored: {missing:?}"
    );

    // Every object reads back whole through each node.
    let listed = clients[0]
        .list_objects_v2()
        .bucket("race")
        .send()
        .await
        .unwrap();
    for object in listed.contents() {
        let key = object.key().unwrap();
        for client in &clients {
            let body = get_bytes(client, "race", key).await;
            assert_eq!(body.len() as i64, object.size().unwrap(), "{key}");
        }
    }

    // The sweeps, once nobody writes: the released blobs (trash) and the
    // orphans of writes that lost their race leave nothing unreferenced.
    for node in &mut cluster.nodes {
        node.stop();
    }
    let sweeper = &mut cluster.nodes[0];
    sweeper
        .args
        .extend(["--orphan-grace-secs", "0", "--orphan-scan-secs", "1"].map(str::to_owned));
    sweeper.spawn();
    sweeper.wait_ready().await;
    let expected: BTreeSet<String> = referenced.keys().cloned().collect();
    poll_within(
        Duration::from_secs(30),
        "only referenced blobs are left",
        || async {
            let stored = cluster.stored_blobs();
            if stored == expected {
                Ok(())
            } else {
                Err(format!(
                    "{} stored, {} referenced, {} unreferenced",
                    stored.len(),
                    expected.len(),
                    stored.difference(&expected).count()
                ))
            }
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and s3s-fs: run by .ci/run"]
async fn a_quota_holds_across_nodes() {
    let cluster = Cluster::start(&[]).await;
    let api = cluster.node(0).api();
    api.create_user("quota", "quota-password-1").await;
    let (key, secret) = api.new_key(("quota", "quota-password-1"), json!({})).await;
    let size = 100_000_usize;
    let (status, body) = api
        .put(
            "/admin/users/quota/quota",
            ROOT,
            json!({"bytes": 5 * size as i64}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let clients: Vec<Client> = (0..3)
        .map(|i| client_trying_once(&cluster.node(i).s3_url(), &key, &secret))
        .collect();
    clients[0]
        .create_bucket()
        .bucket("capped")
        .send()
        .await
        .unwrap();
    let uploads: Vec<_> = (0..20)
        .map(|i| {
            let client = clients[i % 3].clone();
            tokio::spawn(async move {
                client
                    .put_object()
                    .bucket("capped")
                    .key(format!("f{i}"))
                    .body(ByteStream::from(pattern(size, i as u8)))
                    .send()
                    .await
                    .map_err(|e| error_code(Err::<(), _>(e)))
            })
        })
        .collect();
    let mut accepted = 0;
    let mut refusals = BTreeMap::<String, usize>::new();
    for upload in uploads {
        match upload.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(code) => *refusals.entry(code).or_default() += 1,
        }
    }
    assert_eq!(accepted, 5, "refusals: {refusals:?}");
    assert_eq!(refusals.keys().collect::<Vec<_>>(), ["QuotaExceeded"]);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and s3s-fs: run by .ci/run"]
async fn a_revocation_on_one_node_holds_on_the_others_at_the_next_request() {
    let cluster = Cluster::start(&[]).await;
    let a = cluster.node(0).api();
    a.create_user("rita", "rita-password-1").await;
    let rita = ("rita", "rita-password-1");
    let works = |i: usize, key: &str, secret: &str| {
        let client = client_trying_once(&cluster.node(i).s3_url(), key, secret);
        async move {
            client
                .list_buckets()
                .send()
                .await
                .map(|_| ())
                .map_err(|e| error_code(Err::<(), _>(e)))
        }
    };

    // Access keys, used (and so cached) on B and C, revoked on A. Several
    // rounds: a design that tells other nodes after answering (a NOTIFY)
    // loses this race in some rounds, not every one.
    for round in 0..5 {
        let (key, secret) = a.new_key(rita, json!({})).await;
        for i in [1, 2] {
            assert_eq!(works(i, &key, &secret).await, Ok(()));
        }
        assert_eq!(a.delete(&format!("/keys/{key}"), rita).await.0, 204);
        for i in [1, 2] {
            assert_eq!(
                works(i, &key, &secret).await,
                Err("InvalidAccessKeyId".to_owned()),
                "round {round}: node {i} at the next request after the revocation"
            );
        }
    }

    // A session, used on B and C, ended on A.
    let (_, session) = a
        .post(
            "/auth/login",
            rita,
            json!({"name": "rita", "password": "rita-password-1"}),
        )
        .await;
    let token = session["token"].as_str().unwrap().to_owned();
    for i in [1, 2] {
        assert_eq!(
            cluster
                .node(i)
                .api()
                .get("/auth/me", Caller::Bearer(&token))
                .await
                .0,
            200
        );
    }
    assert_eq!(
        a.post("/auth/logout", Caller::Bearer(&token), json!({}))
            .await
            .0,
        204
    );
    for i in [1, 2] {
        let (status, body) = cluster
            .node(i)
            .api()
            .get("/auth/me", Caller::Bearer(&token))
            .await;
        assert_eq!(status, 401, "node {i} after sign-out: {body}");
    }

    // A user disabled on A: their key and password stop on B and C.
    let (key, secret) = a.new_key(rita, json!({})).await;
    for i in [1, 2] {
        assert_eq!(works(i, &key, &secret).await, Ok(()));
        assert_eq!(cluster.node(i).api().get("/auth/me", rita).await.0, 200);
    }
    assert_eq!(a.post("/users/rita/disable", ROOT, json!({})).await.0, 204);
    for i in [1, 2] {
        assert!(
            works(i, &key, &secret).await.is_err(),
            "node {i}: the key of a disabled user, at the next request"
        );
        let (status, body) = cluster.node(i).api().get("/auth/me", rita).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("account_disabled")),
            "node {i}: the password of a disabled user"
        );
    }

    // Each node reads the accounts version on a connection of its own. One
    // that the server closed (an idle timeout, a restart, a pooler) is
    // opened again, without failing the requests that were waiting. (The
    // query is named whole: a writer's connection whose last query locked
    // the pool events' counter row begins the same way.)
    let mut db = cluster.database().await;
    let ended: i64 = sqlx::query_scalar(
        // Ended in the aggregate, which runs only for the rows the WHERE
        // kept: conditions may be evaluated in any order.
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND query = 'SELECT generation FROM cluster_notices WHERE channel = ''accounts'''",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(ended, 3, "one reader connection per node");
    let (key, secret) = a.new_key(ROOT, json!({})).await;
    for i in [0, 1, 2] {
        assert_eq!(
            works(i, &key, &secret).await,
            Ok(()),
            "node {i} after its reader's connection was closed"
        );
    }
}

/// Sends one file to a pool as a member; the receipt's status.
async fn contribute(node: &Node, pool: &str, token: &str, name: &str, time_ms: i64) -> String {
    let receipts = send_pool_files(&node.api(), pool, token, &[(name, time_ms, PNG)]).await;
    receipts[0]["status"].as_str().unwrap().to_owned()
}

/// Member tokens by name.
async fn add_members(node: &Node, pool: &str, body: Value) -> HashMap<String, String> {
    let members = add_pool_members(&node.api(), pool, body).await;
    members.into_iter().collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL and s3s-fs: run by .ci/run"]
async fn pool_events_seals_and_webhooks_span_the_nodes() {
    let cluster =
        Cluster::start(&["--webhook-allow-private", "--webhook-retry-base-ms", "50"]).await;
    let hooks = loopback_listener().await;
    let hook_port = hooks.local_addr().unwrap().port();
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| async move {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(&body).unwrap());
            axum::http::StatusCode::NO_CONTENT
        }),
    );
    tokio::spawn(async move { axum::serve(hooks, receiver).await });

    // The previous one-minute window, whose grace ends a few seconds from
    // now: every node's sealer wants to seal it then.
    let now = now_ms();
    let current_start = now - now.rem_euclid(60_000);
    let grace_secs = (now - current_start) / 1000 + 4;
    let (status, body) = cluster
        .node(0)
        .api()
        .post(
            "/pools",
            ROOT,
            json!({"name": "sky", "window_secs": 60, "grace_secs": grace_secs,
                   "webhook_url": format!("http://127.0.0.1:{hook_port}/hook")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let members = add_members(
        cluster.node(0),
        "sky",
        json!({"count": 3, "prefix": "cam", "role": "contributor"}),
    )
    .await;

    // A listener on C hears what is written through A within a second.
    let listen = cluster
        .node(2)
        .api()
        .request(Caller::Bearer(&members["cam1"]), "GET", "/events")
        .send()
        .await
        .unwrap();
    assert_eq!(listen.status(), 200);
    let mut stream = listen.bytes_stream();
    let mut latencies = Vec::new();
    let mut text = String::new();
    for (i, node) in [0, 1, 0].into_iter().enumerate() {
        let name = format!("late{i}.png");
        let status = contribute(
            cluster.node(node),
            "sky",
            &members["cam1"],
            &name,
            current_start - 1_000,
        )
        .await;
        assert_eq!(status, "accepted");
        let sent = Instant::now();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("the event reaches node C")
                .unwrap()
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            if text.contains(&name) {
                latencies.push(sent.elapsed());
                break;
            }
        }
    }
    eprintln!("event from A or B heard on C after {latencies:?}");
    assert!(
        latencies.iter().all(|l| *l < Duration::from_secs(1)),
        "{latencies:?}"
    );

    // Sealed once, though three sealers watch the deadline.
    let db_check = async {
        poll_within(
            Duration::from_secs(30),
            "the late group is sealed",
            || async {
                let (_, groups) = cluster.node(1).api().get("/pools/sky/groups", ROOT).await;
                (groups[0]["state"] == "sealed").then_some(()).ok_or(groups)
            },
        )
        .await;
        let mut db = cluster.database().await;
        // Give a second sealer every chance to seal it again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sealed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pool_events WHERE kind = 'group.sealed'")
                .fetch_one(&mut db)
                .await
                .unwrap();
        assert_eq!(sealed, 1, "one seal across three nodes");
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pool_events")
            .fetch_one(&mut db)
            .await
            .unwrap();
        events
    };
    let events = db_check.await;

    // Each event reaches the webhook once, though three nodes deliver.
    poll_within(Duration::from_secs(30), "every event delivered", || async {
        let n = received.lock().unwrap().len() as i64;
        (n >= events)
            .then_some(())
            .ok_or(format!("{n} of {events}"))
    })
    .await;
    // A later event, once delivered, shows no repeat of an earlier one
    // came (the webhook moves past an event only once it is delivered).
    let status = contribute(
        cluster.node(2),
        "sky",
        &members["cam2"],
        "now.png",
        now_ms(),
    )
    .await;
    assert_eq!(status, "accepted");
    poll_within(
        Duration::from_secs(30),
        "the later event delivered",
        || async {
            received
                .lock()
                .unwrap()
                .iter()
                .any(|e| e["data"]["name"] == "now.png")
                .then_some(())
        },
    )
    .await;
    let ids: Vec<i64> = received
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        distinct.len(),
        "no event delivered twice: {ids:?}"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and s3s-fs: run by .ci/run"]
async fn a_node_killed_during_uploads_leaves_the_others_serving() {
    let mut cluster = Cluster::start(&[]).await;
    cluster
        .node(0)
        .s3()
        .create_bucket()
        .bucket("kept")
        .send()
        .await
        .unwrap();
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).s3_once()).collect();
    let acknowledged: Arc<Mutex<Vec<(String, u8)>>> = Arc::default();
    let until = Instant::now() + Duration::from_secs(6);
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let clients = clients.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let mut i = 0usize;
                while Instant::now() < until {
                    let key = format!("w{w}-{i}");
                    let seed = (w * 31 + i) as u8;
                    let result = clients[i % 3]
                        .put_object()
                        .bucket("kept")
                        .key(&key)
                        .body(ByteStream::from(pattern(200_000, seed)))
                        .send()
                        .await;
                    if result.is_ok() {
                        acknowledged.lock().unwrap().push((key, seed));
                    }
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.nodes[2].kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let through_c_after_kill = acknowledged.len();
    assert!(
        through_c_after_kill > 20,
        "{through_c_after_kill} uploads acknowledged"
    );
    for (key, seed) in &acknowledged {
        for client in &clients[..2] {
            assert_eq!(
                get_bytes(client, "kept", key).await,
                pattern(200_000, *seed),
                "{key} is whole"
            );
        }
    }
    // The killed node comes back into the cluster.
    cluster.nodes[2].spawn();
    cluster.nodes[2].wait_ready().await;
    let (key, seed) = &acknowledged[0];
    assert_eq!(
        get_bytes(&clients[2], "kept", key).await,
        pattern(200_000, *seed)
    );
    put_bytes(&clients[2], "kept", "after", b"back".to_vec()).await;
    assert_eq!(get_bytes(&clients[0], "kept", "after").await, b"back");
}

/// Waits until every node's readiness probe answers `status`; how long
/// the slowest took.
async fn all_ready_as(cluster: &Cluster, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    for node in &cluster.nodes {
        let what = format!("node {} answers {status} when asked if ready", node.name);
        poll_within(within, &what, || async {
            let seen = node.readiness().await;
            if seen == Some(status) {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        })
        .await;
    }
    start.elapsed()
}

/// A PUT of `size` bytes through `node` while a store is away: a 503
/// `ServiceUnavailable`, which the SDK would retry.
async fn put_is_refused_for_now(node: &Node, size: usize) {
    let put = node
        .s3_once()
        .put_object()
        .bucket("calm")
        .key("during")
        .body(ByteStream::from(pattern(size, 1)))
        .send()
        .await;
    assert_eq!(error_code(put), "ServiceUnavailable", "node {}", node.name);
}

/// Once a store is back: every node ready, the object written before
/// reads back whole through each, and each writes again.
async fn all_serve_again(cluster: &Cluster, tag: &str) {
    all_ready_as(cluster, 200, Duration::from_secs(30)).await;
    for i in 0..3 {
        let client = cluster.node(i).s3();
        let before = get_bytes(&client, "calm", "before").await;
        assert_eq!(before, pattern(150_000, 9), "through node {i}");
        put_bytes(
            &client,
            "calm",
            &format!("after-{tag}-{i}"),
            pattern(150_000, 2),
        )
        .await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and s3s-fs: run by .ci/run"]
async fn the_database_or_the_blob_store_going_away_is_a_clean_503_and_passes() {
    let cluster = Cluster::start(&[]).await;
    let s3 = cluster.node(0).s3_once();
    s3.create_bucket().bucket("calm").send().await.unwrap();
    put_bytes(&cluster.node(0).s3(), "calm", "before", pattern(150_000, 9)).await;

    // The database goes away.
    cluster.database_relay.cut().await;
    let took = all_ready_as(&cluster, 503, Duration::from_secs(5)).await;
    eprintln!("every node unready {took:?} after the database went away");
    for node in &cluster.nodes {
        put_is_refused_for_now(node, 1_000).await;
        let (status, body) = node.api().get("/buckets", ROOT).await;
        let code = body["error"]["code"].as_str();
        assert_eq!((status, code), (503, Some("unavailable")), "{body}");
    }
    cluster.database_relay.restore();
    all_serve_again(&cluster, "db").await;

    // The blob store goes away: what lives in rows still reads.
    cluster.blob_relay.cut().await;
    let took = all_ready_as(&cluster, 503, Duration::from_secs(5)).await;
    eprintln!("every node unready {took:?} after the blob store went away");
    for node in &cluster.nodes {
        put_is_refused_for_now(node, 150_000).await;
        let get = node
            .s3_once()
            .get_object()
            .bucket("calm")
            .key("before")
            .send()
            .await;
        assert_eq!(error_code(get), "ServiceUnavailable", "node {}", node.name);
    }
    cluster.blob_relay.restore();
    all_serve_again(&cluster, "blobs").await;
    let listed = s3.list_objects_v2().bucket("calm").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        !keys.contains(&"during"),
        "nothing refused was stored: {keys:?}"
    );
    assert_eq!(keys.len(), 7, "{keys:?}");
}
