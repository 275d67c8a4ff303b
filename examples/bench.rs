//! S3 benchmark with the real `aws-sdk-s3` client: PUT and GET at 4 KiB
//! (concurrency 32), 1 MiB (16) and 64 MiB multipart (4). Prints ops/s,
//! MiB/s, p50/p99 latency and, given the server's pid, its CPU time per
//! operation and per MiB and its peak RSS.
//!
//! ```text
//! cargo run --release --example bench -- --endpoint http://127.0.0.1:9000 \
//!     --access-key KEY --secret-key SECRET --server-pid PID
//! ```
//! `bench/run.sh` starts Cistern (and s3s-fs, when built) and runs this
//! against each.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::StreamExt;

const MIB: usize = 1024 * 1024;

struct Args {
    endpoint: String,
    access_key: String,
    secret_key: String,
    /// The server's processes (several nodes: their CPU is summed).
    server_pids: Vec<u32>,
    label: String,
    scale: f64,
    loopback: bool,
    /// Run only cases whose name contains this (`PUT 4 KiB`, `GET`, ...).
    only: Option<String>,
    /// PUT and GET one object of this many GiB, then report the server's peak RSS.
    big_gib: Option<u64>,
}

fn parse_args() -> Args {
    let mut args = Args {
        endpoint: "http://127.0.0.1:9000".into(),
        access_key: String::new(),
        secret_key: String::new(),
        server_pids: Vec::new(),
        label: "cistern".into(),
        scale: 1.0,
        loopback: false,
        only: None,
        big_gib: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--loopback" {
            args.loopback = true;
            continue;
        }
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--endpoint" => args.endpoint = value,
            "--access-key" => args.access_key = value,
            "--secret-key" => args.secret_key = value,
            // A comma-separated list for several nodes.
            "--server-pid" => {
                args.server_pids = value.split(',').filter_map(|p| p.parse().ok()).collect()
            }
            "--label" => args.label = value,
            "--scale" => args.scale = value.parse().unwrap_or(1.0),
            "--only" => args.only = Some(value),
            "--big-gib" => args.big_gib = value.parse().ok(),
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    args
}

/// utime + stime of the processes, in seconds.
fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().map(|pid| process_cpu_seconds(*pid)).sum()
}

fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The largest peak RSS among the processes.
fn peak_rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|pid| process_peak_rss_mib(*pid))
        .fold(0.0, f64::max)
}

fn process_peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[derive(Clone, Copy)]
enum Kind {
    Put,
    Get,
}

async fn one_op(client: &Client, kind: Kind, key: String, size: usize, body: Bytes) {
    let bucket = "bench";
    match kind {
        Kind::Put if size >= 64 * MIB => {
            let upload = client
                .create_multipart_upload()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .expect("create");
            let id = upload.upload_id().expect("id").to_owned();
            let part_size = 8 * MIB;
            let mut parts = Vec::new();
            for (i, offset) in (0..size).step_by(part_size).enumerate() {
                let chunk = body.slice(offset..(offset + part_size).min(size));
                let out = client
                    .upload_part()
                    .bucket(bucket)
                    .key(&key)
                    .upload_id(&id)
                    .part_number(i as i32 + 1)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .expect("part");
                parts.push(
                    CompletedPart::builder()
                        .part_number(i as i32 + 1)
                        .e_tag(out.e_tag().unwrap_or_default())
                        .build(),
                );
            }
            client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(&key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .expect("complete");
        }
        Kind::Put => {
            client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(ByteStream::from(body))
                .send()
                .await
                .expect("put");
        }
        Kind::Get => {
            let out = client
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .expect("get");
            let mut stream = out.body;
            let mut read = 0;
            while let Some(chunk) = stream.next().await {
                read += chunk.expect("chunk").len();
            }
            assert_eq!(read, size);
        }
    }
}

async fn run_case(
    client: &Client,
    args: &Args,
    kind: Kind,
    size: usize,
    concurrency: usize,
    ops: usize,
) {
    let name = match kind {
        Kind::Put => "PUT",
        Kind::Get => "GET",
    };
    let size_label = if size >= MIB {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / 1024)
    };
    let case = format!("{name} {size_label}");
    if args
        .only
        .as_ref()
        .is_some_and(|only| !case.contains(only.as_str()))
    {
        return;
    }
    let body = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let cpu_before = cpu_seconds(&args.server_pids);
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..ops)
        .map(|i| {
            let client = client.clone();
            let body = body.clone();
            async move {
                let key = format!("obj-{size}-{}", i % ops);
                let t = Instant::now();
                one_op(&client, kind, key, size, body).await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&args.server_pids) - cpu_before;
    let mut sorted = latencies;
    sorted.sort();
    let pct = |p: f64| {
        sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
    };
    let mib = (size * ops) as f64 / MIB as f64;
    let name = match kind {
        Kind::Put => "PUT",
        Kind::Get => "GET",
    };
    let size_label = if size >= MIB {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / 1024)
    };
    println!(
        "| {} | {name} {size_label} | {concurrency} | {ops} | {:.0} | {:.1} | {:.2} | {:.2} | {:.3} | {:.2} |",
        args.label,
        ops as f64 / elapsed,
        mib / elapsed,
        pct(0.50),
        pct(0.99),
        cpu * 1000.0 / ops as f64,
        cpu * 1000.0 / mib,
    );
}

/// The machine's loopback TCP throughput with one stream, for comparison.
async fn loopback() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let total: usize = 4096 * MIB;
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 256 * 1024];
        let mut read = 0;
        while read < total {
            let n = socket.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            read += n;
        }
        read
    });
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let chunk = vec![7u8; 256 * 1024];
    for _ in 0..total / chunk.len() {
        socket.write_all(&chunk).await.expect("write");
    }
    drop(socket);
    let read = reader.await.expect("reader");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loopback TCP, one stream: {:.0} MiB/s",
        read as f64 / MIB as f64 / secs
    );
}

/// One PUT and one GET of a large object streamed from a sparse file: the
/// server's memory must not grow with the object.
async fn big_object(client: &Client, args: &Args, gib: u64) {
    let size = gib * 1024 * MIB as u64;
    let dir = std::env::temp_dir().join(format!("cistern-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("big.bin");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(size))
        .expect("sparse file");
    let rss_before = peak_rss_mib(&args.server_pids);
    let started = Instant::now();
    let body = ByteStream::from_path(&path).await.expect("body");
    client
        .put_object()
        .bucket("bench")
        .key("big")
        .body(body)
        .send()
        .await
        .expect("put big");
    let put_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut stream = client
        .get_object()
        .bucket("bench")
        .key("big")
        .send()
        .await
        .expect("get big")
        .body;
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        read += chunk.expect("chunk").len() as u64;
    }
    assert_eq!(read, size);
    let get_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    let mib = size as f64 / MIB as f64;
    println!(
        "{}: {gib} GiB object: PUT {:.0} MiB/s, GET {:.0} MiB/s; server peak RSS {:.0} MiB before, {:.0} MiB after",
        args.label,
        mib / put_secs,
        mib / get_secs,
        rss_before,
        peak_rss_mib(&args.server_pids)
    );
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if args.loopback {
        loopback().await;
        return;
    }
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&args.endpoint)
        .credentials_provider(Credentials::new(
            &args.access_key,
            &args.secret_key,
            None,
            None,
            "bench",
        ))
        .force_path_style(true)
        .build();
    let client = Client::from_conf(config);
    let _ = client.create_bucket().bucket("bench").send().await;
    if let Some(gib) = args.big_gib {
        big_object(&client, &args, gib).await;
        return;
    }
    let n = |base: usize| ((base as f64 * args.scale) as usize).max(8);
    println!(
        "| server | case | concurrency | ops | ops/s | MiB/s | p50 ms | p99 ms | server CPU ms/op | server CPU ms/MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let cases: [(usize, usize, usize); 3] = [
        (4 * 1024, 32, n(20_000)),
        (MIB, 16, n(1_000)),
        (64 * MIB, 4, n(24)),
    ];
    for (size, concurrency, ops) in cases {
        run_case(&client, &args, Kind::Put, size, concurrency, ops).await;
        run_case(&client, &args, Kind::Get, size, concurrency, ops).await;
    }
    println!(
        "\n{}: server peak RSS {:.0} MiB",
        args.label,
        peak_rss_mib(&args.server_pids)
    );
}
