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
    let s3 = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("line");
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(addr) = event.get("s3").and_then(|v| v.as_str()) {
            break addr.to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Process {
        child,
        s3_url: format!("http://{s3}"),
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
    // Let a good number of writes land, then pull the plug mid-stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < 300 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let files: usize = std::fs::read_dir(data_dir.path().join("blobs"))
            .expect("blobs")
            .map(|d| {
                std::fs::read_dir(d.expect("shard").path())
                    .expect("dir")
                    .count()
            })
            .sum();
        if files == blob_backed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{files} blob files for {blob_backed} blob-backed objects"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.child.kill().expect("stop");
    let _ = server.child.wait();
}
