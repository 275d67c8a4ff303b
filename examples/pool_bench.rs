//! Pool benchmark over HTTP: `--members` contributors each upload one file
//! of `--file-mib` into the same window, the group is sealed, a processor
//! (following events) claims it, downloads the tar and uploads a result of
//! `--result-mib`, and `--listeners` members connected by SSE each receive
//! the publication and download the result. Prints ingest MiB/s,
//! seal-to-claim latency, fan-out latency (p50, p99, max from publication
//! to receipt) and, given `--server-pid`, the server's peak RSS. With
//! `--idle-streams N` it then opens N more event streams and reports the
//! RSS with all of them open.
//!
//! ```text
//! cargo run --release --example pool_bench -- --web http://127.0.0.1:9301 \
//!     --user USER --password PASSWORD --server-pid PID
//! ```
//! `bench/pool.sh` starts a server and runs this against it.

#[path = "support/proc_status.rs"]
mod proc_status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use proc_status::{peak_rss_mib, rss_mib};
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

struct Args {
    web: String,
    user: String,
    password: String,
    /// The server's process (memory figures are its own).
    server_pid: Option<u32>,
    /// Every node's process, when several share the work: CPU is summed.
    server_pids: Vec<u32>,
    members: usize,
    listeners: usize,
    file_mib: usize,
    result_mib: usize,
    concurrency: usize,
    idle_streams: usize,
    /// Skip the pool run: only open `idle_streams` streams on a fresh server.
    idle_only: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        web: "http://127.0.0.1:9001".into(),
        user: String::new(),
        password: String::new(),
        server_pid: None,
        server_pids: Vec::new(),
        members: 2000,
        listeners: 2000,
        file_mib: 1,
        result_mib: 10,
        concurrency: 16,
        idle_streams: 0,
        idle_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        let number = || value.parse::<usize>().expect("a number");
        match flag.as_str() {
            "--web" => args.web = value.clone(),
            "--user" => args.user = value.clone(),
            "--password" => args.password = value.clone(),
            // A comma-separated list for several nodes.
            "--server-pid" => {
                args.server_pids = value.split(',').filter_map(|p| p.parse().ok()).collect();
                args.server_pid = args.server_pids.first().copied();
            }
            "--members" => args.members = number(),
            "--listeners" => args.listeners = number(),
            "--file-mib" => args.file_mib = number(),
            "--result-mib" => args.result_mib = number(),
            "--concurrency" => args.concurrency = number(),
            "--idle-streams" => args.idle_streams = number(),
            "--idle-only" => args.idle_only = value == "1",
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// CPU seconds (user + system) the processes have used.
fn cpu_secs(pids: &[u32]) -> f64 {
    let mut ticks = 0.0;
    for pid in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        ticks += [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
            .sum::<f64>();
    }
    ticks / 100.0
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Bench {
    http: reqwest::Client,
    args: Args,
    pool: String,
}

impl Bench {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.args.web.trim_end_matches('/'))
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, self.url(path))
            .basic_auth(&self.args.user, Some(&self.args.password))
            .json(&body)
            .send()
            .await
            .expect("admin call");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn members(&self, count: usize, prefix: &str, role: &str) -> Vec<String> {
        let created = self
            .admin(
                reqwest::Method::POST,
                &format!("/pools/{}/members", self.pool),
                json!({"count": count, "prefix": prefix, "role": role}),
            )
            .await;
        created
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["token"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Opens an event stream and resolves once it answers.
    async fn stream(&self, token: &str) -> reqwest::Response {
        let response = self
            .http
            .get(self.url("/events"))
            .bearer_auth(token)
            .send()
            .await
            .expect("event stream");
        assert!(response.status().is_success());
        response
    }
}

/// Reads an event stream until an event of `kind`; answers the receipt
/// time (ms) and the event.
async fn wait_for(response: reqwest::Response, kind: &str) -> (i64, Value) {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                let event: Value = serde_json::from_str(data).expect("event");
                if event["kind"] == kind {
                    return (now_ms(), event);
                }
            }
        }
    }
    panic!("the stream ended before {kind}");
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.listeners + args.concurrency + 8)
        .build()
        .unwrap();
    let bench = Arc::new(Bench {
        http,
        pool: format!("bench-{}", now_ms() % 1_000_000),
        args,
    });
    let a = &bench.args;
    println!(
        "pool benchmark: {} members x {} MiB, {} listeners, result {} MiB, upload concurrency {}",
        a.members, a.file_mib, a.listeners, a.result_mib, a.concurrency
    );
    bench
        .admin(
            reqwest::Method::POST,
            "/pools",
            json!({"name": bench.pool, "window_secs": 86400, "max_file_size": (a.result_mib.max(a.file_mib) * MIB) as i64 + 1}),
        )
        .await;
    if a.idle_only {
        idle_streams(&bench).await;
        return;
    }
    let started = Instant::now();
    let contributors = bench.members(a.members, "c", "contributor").await;
    let listeners = bench.members(a.listeners, "l", "listener").await;
    let processor = bench.members(1, "p", "processor").await.remove(0);
    println!(
        "members created: {} in {:.2} s",
        a.members + a.listeners + 1,
        started.elapsed().as_secs_f64()
    );

    // Everyone who waits for an event connects first.
    let mut waiting = Vec::new();
    for token in &listeners {
        let response = bench.stream(token).await;
        let (bench, token) = (bench.clone(), token.clone());
        waiting.push(tokio::spawn(async move {
            let (received, event) = wait_for(response, "group.published").await;
            let result = bench
                .http
                .get(bench.url(&format!("/pools/{}/results/latest", bench.pool)))
                .bearer_auth(&token)
                .send()
                .await
                .expect("result");
            // Counted as it arrives: 2,000 results held whole would weigh
            // on the machine the server shares.
            let mut body = result.bytes_stream();
            let mut size = 0;
            while let Some(chunk) = body.next().await {
                size += chunk.expect("result body").len();
            }
            (received, event, size, now_ms())
        }));
    }
    let processor_events = bench.stream(&processor).await;
    println!("{} event streams open", waiting.len() + 1);

    // Ingest.
    let file = bytes::Bytes::from(vec![7u8; a.file_mib * MIB]);
    let timestamp = chrono::Utc::now().to_rfc3339();
    let ingest_started = Instant::now();
    let ingest_cpu = cpu_secs(&bench.args.server_pids);
    let uploads = futures::stream::iter(contributors.iter().enumerate())
        .map(|(i, token)| {
            let (bench, file, timestamp) = (bench.clone(), file.clone(), timestamp.clone());
            async move {
                let form = reqwest::multipart::Form::new()
                    .text("timestamp", timestamp)
                    .part(
                        "file",
                        reqwest::multipart::Part::stream(file).file_name(format!("f{i}.bin")),
                    );
                let response = bench
                    .http
                    .post(bench.url(&format!("/pools/{}/contributions", bench.pool)))
                    .bearer_auth(token)
                    .multipart(form)
                    .send()
                    .await
                    .expect("upload");
                let body: Value = response.json().await.expect("receipts");
                assert_eq!(body["receipts"][0]["status"], "accepted", "{body}");
            }
        })
        .buffer_unordered(a.concurrency)
        .collect::<Vec<()>>();
    uploads.await;
    let ingest_secs = ingest_started.elapsed().as_secs_f64();
    let ingest_mib = (a.members * a.file_mib) as f64;
    let ingest_cpu_ms = (cpu_secs(&a.server_pids) - ingest_cpu) * 1000.0;
    println!(
        "ingest: {ingest_mib:.0} MiB in {ingest_secs:.2} s = {:.1} MiB/s, server CPU {:.2} ms/MiB",
        ingest_mib / ingest_secs,
        ingest_cpu_ms / ingest_mib
    );

    // Seal; the processor hears of it and claims.
    let groups = bench
        .admin(
            reqwest::Method::GET,
            &format!("/pools/{}/groups", bench.pool),
            Value::Null,
        )
        .await;
    let group = groups[0]["group"].as_str().unwrap().to_owned();
    let sealing = tokio::spawn(wait_for(processor_events, "group.sealed"));
    let sealed_at = now_ms();
    bench
        .admin(
            reqwest::Method::POST,
            &format!("/pools/{}/groups/{group}/seal", bench.pool),
            json!({}),
        )
        .await;
    sealing.await.unwrap();
    let claim: Value = bench
        .http
        .post(bench.url(&format!("/pools/{}/claims", bench.pool)))
        .bearer_auth(&processor)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claimed_at = now_ms();
    println!("seal to claim: {} ms", claimed_at - sealed_at);
    let lease = claim["lease_id"].as_str().unwrap().to_owned();

    let tar_started = Instant::now();
    let mut tar = bench
        .http
        .get(bench.url(&format!("/pools/{}/groups/{group}/archive", bench.pool)))
        .bearer_auth(&processor)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut tar_bytes = 0usize;
    while let Some(chunk) = tar.next().await {
        tar_bytes += chunk.unwrap().len();
    }
    let tar_secs = tar_started.elapsed().as_secs_f64();
    println!(
        "tar download: {:.0} MiB in {tar_secs:.2} s = {:.1} MiB/s",
        tar_bytes as f64 / MIB as f64,
        tar_bytes as f64 / MIB as f64 / tar_secs
    );

    let result = vec![3u8; a.result_mib * MIB];
    let published = bench
        .http
        .put(bench.url(&format!(
            "/pools/{}/groups/{group}/result?lease={lease}",
            bench.pool
        )))
        .bearer_auth(&processor)
        .body(result)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201);

    let mut latencies = Vec::new();
    let mut last_download = 0;
    let mut published_ms = 0;
    for task in waiting {
        let (received, event, size, downloaded) = task.await.unwrap();
        assert_eq!(size, a.result_mib * MIB);
        published_ms = chrono::DateTime::parse_from_rfc3339(event["time"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        latencies.push(received - published_ms);
        last_download = last_download.max(downloaded);
    }
    latencies.sort_unstable();
    println!(
        "fan-out to {} listeners (publication to receipt): p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    println!(
        "every listener had the {} MiB result {} ms after publication",
        a.result_mib,
        last_download - published_ms
    );
    if let Some(rss) = peak_rss_mib(a.server_pid) {
        println!("server peak RSS: {rss:.0} MiB");
    }

    idle_streams(&bench).await;
}

/// Opens `--idle-streams` event streams and reports the server's RSS.
async fn idle_streams(bench: &Bench) {
    let a = &bench.args;
    if a.idle_streams > 0 {
        let idle = bench.members(a.idle_streams, "i", "listener").await;
        let mut open = Vec::with_capacity(idle.len());
        let before = rss_mib(a.server_pid);
        for token in &idle {
            open.push(bench.stream(token).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "{} idle event streams open: server RSS {:.0} MiB (before opening them {:.0} MiB), peak {:.0} MiB",
            open.len(),
            rss_mib(a.server_pid).unwrap_or(0.0),
            before.unwrap_or(0.0),
            peak_rss_mib(a.server_pid).unwrap_or(0.0)
        );
    }
}
