//! `kill -9` during concurrent uploads: every acknowledged object reads back
//! byte for byte, nothing partial is listed, and orphans are reclaimed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::*;

struct Process {
    child: Child,
    s3_url: String,
    web_url: String,
}

fn start(data_dir: &std::path::Path, database_url: Option<&str>, extra: &[&str]) -> Process {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cistern"));
    command
        .args([
            "serve",
            "--s3-listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(["--root-user", ROOT_USER, "--root-password", ROOT_PASSWORD])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let mut child = command.spawn().expect("start cistern");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let (s3, web) = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("line");
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let (Some(s3), Some(web)) = (
            event.get("s3").and_then(|v| v.as_str()),
            event.get("web").and_then(|v| v.as_str()),
        ) {
            break (s3.to_owned(), web.to_owned());
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Process {
        child,
        s3_url: format!("http://{s3}"),
        web_url: format!("http://{web}"),
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_and_partial_ones_never_show() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let database_url = test_database_url().await;
    let mut server = start(data_dir.path(), database_url.as_deref(), &[]);
    let s3 = client_for(&server.s3_url, ROOT_USER, ROOT_PASSWORD, None);
    s3.create_bucket()
        .bucket("crash")
        .send()
        .await
        .expect("bucket");

    let acked: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let attempted: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let mut writers = Vec::new();
    for worker in 0..12u8 {
        let s3 = s3.clone();
        let acked = acked.clone();
        let attempted = attempted.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..10_000u32 {
                // Alternate inline-sized and blob-sized bodies.
                let len = if n % 2 == 0 {
                    3_000
                } else {
                    150_000 + worker as usize * 1000
                };
                let key = format!("w{worker}/{n}");
                let data = pattern(len, worker.wrapping_add(n as u8));
                attempted
                    .lock()
                    .expect("lock")
                    .insert(key.clone(), data.clone());
                match s3
                    .put_object()
                    .bucket("crash")
                    .key(&key)
                    .body(data.clone().into())
                    .send()
                    .await
                {
                    Ok(_) => {
                        acked.lock().expect("lock").insert(key, data);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Let a good number of writes land (or a minute pass), then pull the
    // plug mid-stream.
    let _ = poll_for(Duration::from_secs(60), || async {
        (acked.lock().expect("lock").len() >= 300).then_some(())
    })
    .await;
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reap");
    for writer in writers {
        let _ = writer.await;
    }
    let acked = acked.lock().expect("lock").clone();
    let attempted = attempted.lock().expect("lock").clone();
    assert!(
        acked.len() >= 300,
        "only {} writes were acknowledged",
        acked.len()
    );

    let mut server = start(
        data_dir.path(),
        database_url.as_deref(),
        &["--orphan-grace-secs", "0"],
    );
    let s3 = client_for(&server.s3_url, ROOT_USER, ROOT_PASSWORD, None);
    for (key, data) in &acked {
        let got = s3
            .get_object()
            .bucket("crash")
            .key(key)
            .send()
            .await
            .expect("acknowledged object");
        assert_eq!(&body_bytes(got).await, data, "{key}");
    }
    let listed: Vec<(String, i64)> = s3
        .list_objects_v2()
        .bucket("crash")
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("list")
        .iter()
        .flat_map(|p| {
            p.contents().iter().map(|o| {
                (
                    o.key().unwrap_or_default().to_owned(),
                    o.size().unwrap_or(-1),
                )
            })
        })
        .collect();
    let mut blob_backed = 0;
    for (key, size) in &listed {
        let expected = attempted
            .get(key)
            .unwrap_or_else(|| panic!("{key} was never written"));
        let got = get_bytes(&s3, "crash", key).await;
        assert_eq!(&got, expected, "{key} is listed but not whole");
        assert_eq!(*size as usize, expected.len());
        if expected.len() > 64 * 1024 {
            blob_backed += 1;
        }
    }
    // The start-up sweep (grace 0) leaves exactly the blobs that rows use.
    let what = "only blob-backed objects keep blob files";
    poll_within(Duration::from_secs(30), what, || async {
        let files: usize = std::fs::read_dir(data_dir.path().join("blobs"))
            .expect("blobs")
            .map(|d| {
                std::fs::read_dir(d.expect("shard").path())
                    .expect("dir")
                    .count()
            })
            .sum();
        if files == blob_backed {
            Ok(())
        } else {
            Err(format!(
                "{files} blob files for {blob_backed} blob-backed objects"
            ))
        }
    })
    .await;
    server.child.kill().expect("stop");
    let _ = server.child.wait();
}

/// A pool's contributions as a server reports them: (member, name) to
/// (sha256, key).
async fn listed_contributions(web: &str) -> HashMap<(String, String), (String, String)> {
    let api = ApiClient::at(web);
    let mut all = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/pools/crashpool/contributions?limit=1000".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (_, page) = api.get(&path, ROOT).await;
        for c in page["contributions"].as_array().unwrap() {
            all.insert(
                (
                    c["member"].as_str().unwrap().to_owned(),
                    c["name"].as_str().unwrap().to_owned(),
                ),
                (
                    c["sha256"].as_str().unwrap().to_owned(),
                    c["key"].as_str().unwrap().to_owned(),
                ),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

#[tokio::test]
async fn files_with_a_receipt_survive_kill_9_during_batch_uploads() {
    use sha2::Digest;
    let data_dir = tempfile::tempdir().expect("tempdir");
    let database_url = test_database_url().await;
    let mut server = start(data_dir.path(), database_url.as_deref(), &[]);
    let web = server.web_url.clone();
    let api = ApiClient::at(&web);
    let pool = serde_json::json!({"name": "crashpool", "window_secs": 86400});
    let (status, _) = api.post("/pools", ROOT, pool).await;
    assert_eq!(status, 201);
    let members = serde_json::json!({"count": 6, "prefix": "m", "role": "contributor"});
    let (_, members) = api.post("/pools/crashpool/members", ROOT, members).await;

    let receipted: Arc<Mutex<HashMap<(String, String), String>>> = Arc::default();
    let mut senders = Vec::new();
    for member in members.as_array().unwrap().clone() {
        let (api, receipted) = (ApiClient::at(&web), receipted.clone());
        senders.push(tokio::spawn(async move {
            let name = member["name"].as_str().unwrap().to_owned();
            let token = member["token"].as_str().unwrap().to_owned();
            let now = pool_now_ms(86_400);
            for batch in 0..1000u32 {
                let mut form = reqwest::multipart::Form::new();
                let mut files = Vec::new();
                for i in 0..3u32 {
                    // Inline-sized and blob-sized files.
                    let size = if i == 1 {
                        150_000
                    } else {
                        3_000 + batch as usize
                    };
                    let data = pattern(size, (batch * 3 + i) as u8);
                    let file = format!("b{batch}-{i}.bin");
                    files.push((file.clone(), hex::encode(sha2::Sha256::digest(&data))));
                    let when = chrono::DateTime::from_timestamp_millis(now - i64::from(batch))
                        .unwrap()
                        .to_rfc3339();
                    form = form.text("timestamp", when).part(
                        "file",
                        reqwest::multipart::Part::bytes(data).file_name(file),
                    );
                }
                let Ok(response) = api
                    .request(
                        Caller::Bearer(&token),
                        "POST",
                        "/pools/crashpool/contributions",
                    )
                    .multipart(form)
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    return;
                };
                for (receipt, (file, sha)) in body["receipts"].as_array().unwrap().iter().zip(files)
                {
                    assert_eq!(receipt["status"], "accepted", "{receipt}");
                    receipted.lock().unwrap().insert((name.clone(), file), sha);
                }
            }
        }));
    }
    poll_within(Duration::from_secs(60), "uploads make progress", || async {
        (receipted.lock().unwrap().len() >= 60).then_some(())
    })
    .await;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    for sender in senders {
        let _ = sender.await;
    }
    let receipted = receipted.lock().unwrap().clone();

    let mut server = start(data_dir.path(), database_url.as_deref(), &[]);
    let listed = listed_contributions(&server.web_url).await;
    for (file, sha) in &receipted {
        assert_eq!(
            listed.get(file).map(|l| &l.0),
            Some(sha),
            "{file:?} has a receipt, so it is there"
        );
    }
    // Whatever is listed is whole (a file committed just before the kill
    // may be listed without its receipt having reached the client).
    let s3 = client_for(&server.s3_url, ROOT_USER, ROOT_PASSWORD, None);
    for ((member, name), (sha, key)) in &listed {
        let data = get_bytes(&s3, "pool-crashpool", key).await;
        assert_eq!(
            &hex::encode(sha2::Sha256::digest(&data)),
            sha,
            "{member}/{name} is whole"
        );
    }
    let objects = s3
        .list_objects_v2()
        .bucket("pool-crashpool")
        .send()
        .await
        .expect("list")
        .key_count()
        .unwrap_or(0);
    assert_eq!(
        objects as usize,
        listed.len(),
        "no object without its contribution"
    );
    server.child.kill().expect("stop");
    let _ = server.child.wait();
}
