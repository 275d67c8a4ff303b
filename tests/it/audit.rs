//! The audit log and usage figures, as users and admins read them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn get_json(app: &TestApp, path: &str, who: (&str, &str)) -> Value {
    let response = reqwest::Client::new()
        .get(app.web_url(path))
        .basic_auth(who.0, Some(who.1))
        .send()
        .await
        .expect("get");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// Polls until `check` holds for the answer at `path` (audit writes are
/// batched off the request path), or fails after a deadline.
async fn eventually(
    app: &TestApp,
    path: &str,
    who: (&str, &str),
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = get_json(app, path, who).await;
        if check(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never matched: {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const ALICE: (&str, &str) = ("alice", "alice-password");
const ROOT: (&str, &str) = (ROOT_USER, ROOT_PASSWORD);

async fn alice_client(app: &TestApp) -> aws_sdk_s3::Client {
    let http = reqwest::Client::new();
    let created = http
        .post(app.web_url("/api/v1/users"))
        .basic_auth(ROOT.0, Some(ROOT.1))
        .json(&json!({"name": ALICE.0, "password": ALICE.1}))
        .send()
        .await
        .expect("create user");
    assert_eq!(created.status(), 201);
    let key: Value = http
        .post(app.web_url("/api/v1/keys"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .json(&json!({}))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    client_for(
        &app.s3_url(),
        key["access_key"].as_str().expect("key"),
        key["secret_key"].as_str().expect("secret"),
        None,
    )
}

#[tokio::test]
async fn every_request_is_audited_and_users_see_their_own() {
    let app = spawn_app().await;
    let alice = alice_client(&app).await;
    alice
        .create_bucket()
        .bucket("audited")
        .send()
        .await
        .expect("bucket");
    put_bytes(&alice, "audited", "a.txt", vec![1u8; 1000]).await;
    assert_eq!(get_bytes(&alice, "audited", "a.txt").await.len(), 1000);
    let _ = app
        .client()
        .list_buckets()
        .send()
        .await
        .expect("root lists");
    let wrong = client_for(&app.s3_url(), "CKNOSUCHKEY", "whatever-secret", None);
    assert!(wrong.list_buckets().send().await.is_err());
    let bad_login = reqwest::Client::new()
        .get(app.web_url("/api/v1/auth/me"))
        .basic_auth("alice", Some("wrong-password"))
        .send()
        .await
        .expect("me");
    assert_eq!(bad_login.status(), 401);

    let page = eventually(&app, "/api/v1/audit?action=s3:PutObject", ALICE, |v| {
        v["records"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let put = &page["records"][0];
    assert_eq!(put["actor"], "alice");
    assert_eq!(put["bucket"], "audited");
    assert_eq!(put["key"], "a.txt");
    assert_eq!(put["status"], 200);
    assert_eq!(put["bytes_in"], 1000);
    assert_eq!(put["source"], "127.0.0.1");
    assert!(put["request_id"].as_str().is_some_and(|id| id.len() == 16));
    assert!(put["user_agent"].as_str().is_some());

    let mine = get_json(&app, "/api/v1/audit?limit=1000", ALICE).await;
    let actors: Vec<&str> = mine["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["actor"].as_str())
        .collect();
    assert!(
        actors.iter().all(|a| *a == "alice"),
        "a user sees only her own records: {actors:?}"
    );

    let failed = eventually(&app, "/api/v1/audit?status=401", ROOT, |v| {
        v["records"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["actor"] == "alice"))
    })
    .await;
    assert!(
        failed["records"]
            .as_array()
            .expect("records")
            .iter()
            .any(|r| r["action"] == "auth.me")
    );
    let refused = eventually(&app, "/api/v1/audit?actor=unauthenticated", ROOT, |v| {
        v["records"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert_eq!(refused["records"][0]["access_key"], "CKNOSUCHKEY");
    assert_eq!(refused["records"][0]["status"], 403);
    app.stop().await;
}

#[tokio::test]
async fn audit_pages_by_cursor_and_exports_ndjson() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("pages")
        .send()
        .await
        .expect("bucket");
    for i in 0..7 {
        put_bytes(&s3, "pages", &format!("k{i}"), b"x".to_vec()).await;
    }
    let all = eventually(&app, "/api/v1/audit?bucket=pages&limit=1000", ROOT, |v| {
        v["records"].as_array().is_some_and(|r| r.len() == 8)
    })
    .await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/audit?bucket=pages&limit=3".to_owned();
    loop {
        let page = get_json(&app, &path, ROOT).await;
        seen.extend(
            page["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| r["id"].as_i64().expect("id")),
        );
        match page["next_cursor"].as_i64() {
            Some(cursor) => path = format!("/api/v1/audit?bucket=pages&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let ids: Vec<i64> = all["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(
        seen, ids,
        "cursor pages cover every record once, newest first"
    );

    let export = reqwest::Client::new()
        .get(app.web_url("/api/v1/audit?bucket=pages&format=ndjson"))
        .basic_auth(ROOT.0, Some(ROOT.1))
        .send()
        .await
        .expect("export");
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let text = export.text().await.expect("text");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 8);
    let bad = reqwest::Client::new()
        .get(app.web_url("/api/v1/audit?limit=0"))
        .basic_auth(ROOT.0, Some(ROOT.1))
        .send()
        .await
        .expect("bad");
    assert_eq!(bad.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn usage_matches_what_was_moved_to_the_byte_and_survives_shutdown() {
    let app = spawn_app().await;
    let alice = alice_client(&app).await;
    alice
        .create_bucket()
        .bucket("metered")
        .send()
        .await
        .expect("bucket");
    let sizes = [1usize, 5_000, 300_000];
    for (i, size) in sizes.iter().enumerate() {
        put_bytes(&alice, "metered", &format!("o{i}"), pattern(*size, i as u8)).await;
    }
    let mut downloaded = 0;
    for i in [0, 2, 2] {
        downloaded += get_bytes(&alice, "metered", &format!("o{i}")).await.len();
    }
    let ranged = alice
        .get_object()
        .bucket("metered")
        .key("o1")
        .range("bytes=0-99")
        .send()
        .await
        .expect("range");
    downloaded += body_bytes(ranged).await.len();
    let _ = alice
        .head_object()
        .bucket("metered")
        .key("o2")
        .send()
        .await
        .expect("head");
    let uploaded: usize = sizes.iter().sum();

    // Stopping flushes the audit queue; the figures are there after a restart.
    let app = app.restart().await;
    let usage = get_json(&app, "/api/v1/usage", ALICE).await;
    assert_eq!(usage["totals"]["objects"], 3);
    assert_eq!(usage["totals"]["bytes_stored"], uploaded as i64);
    let metered: Vec<&Value> = usage["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .filter(|d| d["bucket"] == "metered")
        .collect();
    assert_eq!(metered.len(), 1);
    assert_eq!(metered[0]["bytes_in"], uploaded as i64);
    assert_eq!(metered[0]["bytes_out"], downloaded as i64);

    let everyone = get_json(&app, "/api/v1/admin/usage?sort=bytes_in", ROOT).await;
    assert_eq!(everyone[0]["user"], "alice");
    // API calls count too (the 2-byte `{}` that created the key), so the
    // user's total is the sum of her daily rows.
    assert_eq!(everyone[0]["bytes_in"], usage["totals"]["bytes_in"]);
    assert_eq!(usage["totals"]["bytes_in"], uploaded as i64 + 2);
    let refused = reqwest::Client::new()
        .get(app.web_url("/api/v1/admin/usage"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .expect("admin usage");
    assert_eq!(refused.status(), 403);
    app.stop().await;
}
