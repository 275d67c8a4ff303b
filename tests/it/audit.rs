//! The audit log and usage figures, as users and admins read them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// The JSON body of a GET that must succeed.
async fn get_json(app: &TestApp, path: &str, who: (&str, &str)) -> Value {
    let (status, body) = app.api().get(path, who).await;
    assert!((200..300).contains(&status), "{path}: {status}");
    body
}

/// Polls until `check` holds for the answer at `path` (audit writes are
/// batched off the request path), or fails after a deadline.
async fn eventually(
    app: &TestApp,
    path: &str,
    who: (&str, &str),
    check: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("{path} matches");
    poll_within(Duration::from_secs(10), &what, || async {
        let value = get_json(app, path, who).await;
        if check(&value) {
            Ok(value)
        } else {
            Err(format!("{path} never matched: {value}"))
        }
    })
    .await
}

const ALICE: (&str, &str) = ("alice", "alice-password");

async fn alice_client(app: &TestApp) -> aws_sdk_s3::Client {
    let api = app.api();
    api.create_user(ALICE.0, ALICE.1).await;
    let (key, secret) = api.new_key(ALICE, json!({})).await;
    client_for(&app.s3_url(), &key, &secret, None)
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
    let (status, _) = app.api().get("/auth/me", ("alice", "wrong-password")).await;
    assert_eq!(status, 401);

    let page = eventually(&app, "/audit?action=s3:PutObject", ALICE, |v| {
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

    let mine = get_json(&app, "/audit?limit=1000", ALICE).await;
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

    let failed = eventually(&app, "/audit?status=401", ROOT, |v| {
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
    let refused = eventually(&app, "/audit?actor=unauthenticated", ROOT, |v| {
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
    let all = eventually(&app, "/audit?bucket=pages&limit=1000", ROOT, |v| {
        v["records"].as_array().is_some_and(|r| r.len() == 8)
    })
    .await;
    let mut seen = Vec::new();
    let mut path = "/audit?bucket=pages&limit=3".to_owned();
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
            Some(cursor) => path = format!("/audit?bucket=pages&limit=3&cursor={cursor}"),
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

    let export = app
        .api()
        .request(ROOT, "GET", "/audit?bucket=pages&format=ndjson")
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
    let (status, _) = app.api().get("/audit?limit=0", ROOT).await;
    assert_eq!(status, 400);
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
    let usage = get_json(&app, "/usage", ALICE).await;
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

    let everyone = get_json(&app, "/admin/usage?sort=bytes_in", ROOT).await;
    assert_eq!(everyone[0]["user"], "alice");
    // API calls count too (the 2-byte `{}` that created the key), so the
    // user's total is the sum of her daily rows.
    assert_eq!(everyone[0]["bytes_in"], usage["totals"]["bytes_in"]);
    assert_eq!(usage["totals"]["bytes_in"], uploaded as i64 + 2);
    let (status, _) = app.api().get("/admin/usage", ALICE).await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn a_bucket_made_through_the_api_is_named_in_its_record() {
    let app = spawn_app().await;
    let api = app.api();
    let (status, _) = api
        .post("/buckets", ROOT, json!({"name": "named-here"}))
        .await;
    assert_eq!(status, 201);
    let record = poll_until("the creation in the audit log", || async {
        let (_, page) = api.get("/audit?action=bucket.create", ROOT).await;
        page["records"].as_array().and_then(|r| r.first().cloned())
    })
    .await;
    assert_eq!(record["bucket"], "named-here", "{record}");
    app.stop().await;
}

/// The sources the audit log recorded for `GET /auth/me`, newest first.
async fn me_sources(app: &TestApp, expected: usize) -> Vec<String> {
    let page = eventually(app, "/audit?action=auth.me", ROOT, |v| {
        v["records"].as_array().is_some_and(|r| r.len() >= expected)
    })
    .await;
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_recorded() {
    let forwarded = |app: &TestApp, header: &'static str| {
        let request = app.api().request(ROOT, "GET", "/auth/me");
        async move {
            let response = request
                .header("x-forwarded-for", header)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    // Loopback is the proxy here: its X-Forwarded-For is believed, up to
    // the right-most address that is not itself trusted.
    let app = spawn_app_with(&["--trusted-proxies", "127.0.0.1/32"]).await;
    forwarded(&app, "198.51.100.1, 203.0.113.9").await;
    assert_eq!(me_sources(&app, 1).await, ["203.0.113.9"]);
    app.stop().await;

    // Without the setting nobody is believed.
    let app = spawn_app().await;
    forwarded(&app, "203.0.113.9").await;
    assert_eq!(me_sources(&app, 1).await, ["127.0.0.1"]);
    app.stop().await;
}
