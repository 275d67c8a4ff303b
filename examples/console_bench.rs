//! Console benchmarks of part 2, over HTTP against a running server:
//!
//! - **Thumbnails**: `--photos` JPEGs of `--megapixels` (12) are stored
//!   with `aws-sdk-s3`, then their gallery thumbnails are asked for six at
//!   a time (a browser's connections to one host) with the console's
//!   cookie. Prints images per second and, given `--server-pid`, the
//!   server's peak RSS; beside it, 4 KiB GETs on the S3 port one after
//!   another, idle first and then while the thumbnails are made, with
//!   their p50 and p99.
//! - **Pool page**: a pool with `--members` (10,000) members, each of
//!   which sends a file through the API, and `--groups` (1,000) past
//!   groups written into the server's SQLite database (`--data-dir`; the
//!   API opens a group only while its window is open), and the time the
//!   console's pool page takes to answer (request to first byte, as the
//!   server renders the whole page before sending it) and its size.
//!
//! ```text
//! bash bench/console.sh    # starts a release server and runs this
//! ```

#[path = "support/proc_status.rs"]
mod proc_status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use proc_status::peak_rss_mib;
use serde_json::{Value, json};

struct Args {
    s3: String,
    web: String,
    user: String,
    password: String,
    server_pid: Option<u32>,
    photos: usize,
    megapixels: f64,
    members: usize,
    groups: usize,
    /// The server's data folder, whose SQLite database gets the groups.
    data_dir: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        s3: "http://127.0.0.1:9000".into(),
        web: "http://127.0.0.1:9001".into(),
        user: String::new(),
        password: String::new(),
        server_pid: None,
        photos: 1000,
        megapixels: 12.0,
        members: 10_000,
        groups: 1000,
        data_dir: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--s3" => args.s3 = value,
            "--web" => args.web = value,
            "--user" => args.user = value,
            "--password" => args.password = value,
            "--server-pid" => args.server_pid = value.parse().ok(),
            "--photos" => args.photos = value.parse().expect("a number"),
            "--megapixels" => args.megapixels = value.parse().expect("a number"),
            "--members" => args.members = value.parse().expect("a number"),
            "--groups" => args.groups = value.parse().expect("a number"),
            "--data-dir" => args.data_dir = value,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A photo-like JPEG: smooth colour fields with grain, so that it is as
/// large as a camera's (a flat picture would compress to almost nothing).
fn photo(megapixels: f64) -> Vec<u8> {
    let width = (megapixels * 1e6 * 4.0 / 3.0).sqrt() as u32;
    let height = width * 3 / 4;
    let mut seed = 0x9e37_79b9_u32;
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let grain = (seed % 48) as i32 - 24;
        let shade = |v: u32| (v as i32 + grain).clamp(0, 255) as u8;
        image::Rgb([
            shade(x * 255 / width),
            shade(y * 255 / height),
            shade(((x + y) / 16) % 256),
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&image)
        .expect("a JPEG");
    out
}

fn s3_client(args: &Args) -> Client {
    let credentials =
        aws_credential_types::Credentials::new(&args.user, &args.password, None, None, "bench");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version_latest()
        .endpoint_url(&args.s3)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// Signs in to the console: the session cookie.
async fn console_cookie(http: &reqwest::Client, args: &Args) -> String {
    let response = http
        .post(format!("{}/ui/sign-in", args.web))
        .form(&[
            ("name", args.user.as_str()),
            ("password", args.password.as_str()),
            ("next", "/ui/buckets"),
        ])
        .send()
        .await
        .expect("sign in");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cistern_session="))
        .expect("a session cookie");
    cookie.split(';').next().unwrap_or_default().to_owned()
}

/// Sequential 4 KiB GETs until `stop` is set (or `count` are done):
/// each one's time in ms.
async fn small_gets(s3: Client, count: usize, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut times = Vec::new();
    while times.len() < count && !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let object = s3
            .get_object()
            .bucket("photos")
            .key("small/4k.bin")
            .send()
            .await
            .expect("GET");
        let body = object.body.collect().await.expect("body").into_bytes();
        assert_eq!(body.len(), 4096);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times
}

async fn thumbnails(args: &Args, http: &reqwest::Client, s3: &Client) {
    let started = Instant::now();
    let jpeg = Arc::new(photo(args.megapixels));
    println!(
        "one {} MP JPEG of {:.2} MiB made in {:.1} s",
        args.megapixels,
        jpeg.len() as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    s3.create_bucket()
        .bucket("photos")
        .send()
        .await
        .expect("bucket");
    s3.put_object()
        .bucket("photos")
        .key("small/4k.bin")
        .body(ByteStream::from(vec![7u8; 4096]))
        .send()
        .await
        .expect("PUT 4 KiB");
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut uploads = Vec::new();
    for _ in 0..8 {
        let (s3, jpeg, next, total) = (s3.clone(), jpeg.clone(), next.clone(), args.photos);
        uploads.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                s3.put_object()
                    .bucket("photos")
                    .key(format!("camera/IMG_{i:05}.jpg"))
                    .content_type("image/jpeg")
                    .body(ByteStream::from(jpeg.as_ref().clone()))
                    .send()
                    .await
                    .expect("PUT photo");
            }
        }));
    }
    for upload in uploads {
        upload.await.expect("uploader");
    }
    println!(
        "{} photos stored in {:.1} s",
        args.photos,
        started.elapsed().as_secs_f64()
    );

    let idle = small_gets(s3.clone(), 2000, Arc::new(AtomicBool::new(false))).await;
    let cookie = console_cookie(http, args).await;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = tokio::spawn(small_gets(s3.clone(), usize::MAX, stop.clone()));
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let placeholders = Arc::new(AtomicUsize::new(0));
    let mut browsers = Vec::new();
    for _ in 0..6 {
        let (http, cookie, next, placeholders) = (
            http.clone(),
            cookie.clone(),
            next.clone(),
            placeholders.clone(),
        );
        let (web, total) = (args.web.clone(), args.photos);
        browsers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let response = http
                    .get(format!(
                        "{web}/ui/buckets/photos/thumb?key=camera%2FIMG_{i:05}.jpg"
                    ))
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .expect("thumbnail");
                assert!(response.status().is_success(), "{}", response.status());
                let jpeg = response.headers()["content-type"] == "image/jpeg";
                let bytes = response.bytes().await.expect("thumbnail body");
                if !jpeg || bytes.is_empty() {
                    placeholders.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for browser in browsers {
        browser.await.expect("browser");
    }
    let took = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let during = busy.await.expect("GETs");
    println!(
        "thumbnails: {} in {took:.1} s = {:.2} images/s ({} placeholders); peak RSS {:.0} MiB",
        args.photos,
        args.photos as f64 / took,
        placeholders.load(Ordering::Relaxed),
        peak_rss_mib(args.server_pid).unwrap_or(f64::NAN),
    );
    let (idle_p50, idle_p99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let (busy_p50, busy_p99) = (percentile(&during, 0.5), percentile(&during, 0.99));
    println!(
        "S3 GET 4 KiB idle: p50 {idle_p50:.2} ms, p99 {idle_p99:.2} ms ({} requests)",
        idle.len()
    );
    println!(
        "S3 GET 4 KiB while thumbnailing: p50 {busy_p50:.2} ms, p99 {busy_p99:.2} ms ({} requests); p99 ratio {:.2}",
        during.len(),
        busy_p99 / idle_p99
    );
}

async fn admin(http: &reqwest::Client, args: &Args, path: &str, body: Value) -> Value {
    let response = http
        .post(format!("{}/api/v1{path}", args.web))
        .basic_auth(&args.user, Some(&args.password))
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

/// Adds `--groups` past groups to the pool "crowd" in the server's SQLite
/// database: windows are at least a minute and take files only while
/// open, so a thousand groups would take the API a thousand minutes. Most
/// are published, some failed or waiting, all long past their seal time.
async fn seed_groups(args: &Args) {
    use sqlx::Connection;
    let started = Instant::now();
    let path = format!("sqlite://{}/cistern.db", args.data_dir);
    let mut db = sqlx::SqliteConnection::connect(&path)
        .await
        .expect("the server's database");
    let (pool_id,): (String,) = sqlx::query_as("SELECT id FROM pools WHERE name = 'crowd'")
        .fetch_one(&mut db)
        .await
        .expect("the pool");
    let week_ago = chrono::Utc::now().timestamp_millis() / 60_000 * 60_000 - 7 * 86_400_000;
    let mut tx = db.begin().await.expect("a transaction");
    for i in 0..args.groups as i64 {
        let start = week_ago - i * 60_000;
        let state = match i % 20 {
            0 => "failed",
            1 => "sealed",
            _ => "published",
        };
        let published = state == "published";
        sqlx::query(
            "INSERT INTO pool_groups (pool_id, start_ms, end_ms, seal_at_ms, state, files, bytes, \
             attempts, result_key, result_size, result_etag, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&pool_id)
        .bind(start)
        .bind(start + 60_000)
        .bind(start + 75_000)
        .bind(state)
        .bind(10 + i % 7)
        .bind(1_000_000 + i * 13)
        .bind(if state == "sealed" { 0 } else { 1 })
        .bind(published.then(|| format!("results/{start}/result")))
        .bind(published.then_some(4096_i64))
        .bind(published.then_some("\"seeded\""))
        .bind(start + 120_000)
        .execute(&mut *tx)
        .await
        .expect("a group");
    }
    tx.commit().await.expect("commit");
    println!(
        "{} past groups added to the database in {:.1} s",
        args.groups,
        started.elapsed().as_secs_f64()
    );
}

async fn pool_page(args: &Args, http: &reqwest::Client) {
    admin(
        http,
        args,
        "/pools",
        json!({"name": "crowd", "window_secs": 60, "grace_secs": 3600}),
    )
    .await;
    let started = Instant::now();
    let mut tokens = Vec::new();
    for start in (0..args.members).step_by(5000) {
        let count = (args.members - start).min(5000);
        let added = admin(
            http,
            args,
            "/pools/crowd/members",
            json!({"count": count, "prefix": format!("cam-{start}-"), "role": "contributor"}),
        )
        .await;
        tokens.extend(
            added
                .as_array()
                .expect("members")
                .iter()
                .map(|m| m["token"].as_str().unwrap_or_default().to_owned()),
        );
    }
    println!(
        "{} members added in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    // One file from every member, sixteen at a time.
    let started = Instant::now();
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (http, tokens, next, stamp) =
            (http.clone(), tokens.clone(), next.clone(), stamp.clone());
        let web = args.web.clone();
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(i) else {
                    return;
                };
                let form = reqwest::multipart::Form::new()
                    .text("timestamp", stamp.clone())
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(format!("reading {i}").into_bytes())
                            .file_name(format!("r{i}.txt")),
                    );
                let response = http
                    .post(format!("{web}/api/v1/pools/crowd/contributions"))
                    .bearer_auth(token)
                    .multipart(form)
                    .send()
                    .await
                    .expect("contribute");
                assert!(response.status().is_success());
                let receipts: Value = response.json().await.expect("receipts");
                assert_eq!(receipts["receipts"][0]["status"], "accepted", "{receipts}");
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    println!(
        "{} files sent in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    seed_groups(args).await;
    let cookie = console_cookie(http, args).await;
    let mut times = Vec::new();
    let mut size = 0;
    for run in 0..25 {
        let started = Instant::now();
        let response = http
            .get(format!("{}/ui/pools/crowd", args.web))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("pool page");
        assert!(response.status().is_success(), "{}", response.status());
        let first_byte = started.elapsed().as_secs_f64() * 1000.0;
        size = response.bytes().await.expect("page").len();
        if run >= 5 {
            times.push(first_byte);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "pool page with {} members and {} groups: median {:.1} ms, p95 {:.1} ms to first byte; {} KB",
        args.members,
        args.groups,
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        size / 1000
    );
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    if args.members > 0 {
        pool_page(&args, &http).await;
    }
    if args.photos > 0 {
        thumbnails(&args, &http, &s3_client(&args)).await;
    }
}
