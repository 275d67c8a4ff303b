//! Objects through the JSON API, share links, purge and the presign cap.

use serde_json::{Value, json};

use crate::helpers::*;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn objects_upload_download_list_and_share_over_the_json_api() {
    let app = spawn_app().await;
    let base = app.web_url("/api/v1/buckets");
    let root = (ROOT_USER, Some(ROOT_PASSWORD));
    let created = http()
        .post(&base)
        .basic_auth(root.0, root.1)
        .json(&json!({"name": "docs"}))
        .send()
        .await
        .expect("bucket");
    assert_eq!(created.status(), 201);

    let raw = http()
        .put(format!("{base}/docs/objects/notes/a b.txt"))
        .basic_auth(root.0, root.1)
        .header("content-type", "text/plain")
        .body("hello world")
        .send()
        .await
        .expect("put");
    assert_eq!(raw.status(), 201);
    let form = reqwest::multipart::Form::new()
        .text("prefix", "uploads/")
        .part(
            "file",
            reqwest::multipart::Part::bytes(pattern(100_000, 4))
                .file_name("photo.jpg")
                .mime_str("image/jpeg")
                .expect("mime"),
        );
    let posted = http()
        .post(format!("{base}/docs/objects"))
        .basic_auth(root.0, root.1)
        .multipart(form)
        .send()
        .await
        .expect("form");
    assert_eq!(posted.status(), 201);
    let posted: Value = posted.json().await.expect("json");
    assert_eq!(posted[0]["key"], "uploads/photo.jpg");
    assert_eq!(posted[0]["size"], 100_000);

    let got = http()
        .get(format!("{base}/docs/objects/notes/a b.txt"))
        .basic_auth(root.0, root.1)
        .send()
        .await
        .expect("get");
    assert_eq!(got.headers()["content-type"], "text/plain");
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .contains("filename*=UTF-8''a%20b")
    );
    assert_eq!(got.text().await.expect("text"), "hello world");
    let part = http()
        .get(format!("{base}/docs/objects/uploads/photo.jpg"))
        .basic_auth(root.0, root.1)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 10-19/100000");
    assert_eq!(
        part.bytes().await.expect("bytes").to_vec(),
        pattern(100_000, 4)[10..20]
    );
    let beyond = http()
        .get(format!("{base}/docs/objects/uploads/photo.jpg"))
        .basic_auth(root.0, root.1)
        .header("range", "bytes=200000-")
        .send()
        .await
        .expect("range");
    assert_eq!(beyond.status(), 416);

    let listed: Value = http()
        .get(format!("{base}/docs/objects?delimiter=/&limit=1"))
        .basic_auth(root.0, root.1)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["prefixes"], json!(["notes/"]));
    let cursor = listed["next_cursor"].as_str().expect("cursor");
    let rest: Value = http()
        .get(format!(
            "{base}/docs/objects?delimiter=/&limit=1&cursor={cursor}"
        ))
        .basic_auth(root.0, root.1)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(rest["prefixes"], json!(["uploads/"]));
    assert!(rest["next_cursor"].is_null());

    let link: Value = http()
        .post(format!("{base}/docs/share"))
        .basic_auth(root.0, root.1)
        .json(&json!({"key": "notes/a b.txt", "expires_secs": 600}))
        .send()
        .await
        .expect("share")
        .json()
        .await
        .expect("json");
    let url = link["url"].as_str().expect("url");
    let shared = reqwest::get(url).await.expect("shared get");
    assert_eq!(shared.status(), 200);
    assert_eq!(shared.text().await.expect("text"), "hello world");
    let too_long = http()
        .post(format!("{base}/docs/share"))
        .basic_auth(root.0, root.1)
        .json(&json!({"key": "notes/a b.txt", "expires_secs": 700_000}))
        .send()
        .await
        .expect("share");
    assert_eq!(too_long.status(), 400);

    let deleted = http()
        .delete(format!("{base}/docs/objects/notes/a b.txt"))
        .basic_auth(root.0, root.1)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    assert_eq!(reqwest::get(url).await.expect("get").status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn presigned_urls_longer_than_a_week_are_refused() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("week")
        .send()
        .await
        .expect("bucket");
    put_bytes(&s3, "week", "k", b"x".to_vec()).await;
    let (key, secret) = (ROOT_USER, ROOT_PASSWORD);
    let url = cistern::core::presign::presign_get(&cistern::core::presign::PresignRequest {
        endpoint: &app.s3_url(),
        region: "us-east-1",
        access_key: key,
        secret,
        bucket: "week",
        key: "k",
        expires_secs: 700_000,
        now_secs: cistern::core::now_ms() / 1000,
    });
    let response = reqwest::get(&url).await.expect("get");
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("AuthorizationQueryParametersError")
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_user_with_data_needs_purge() {
    let app = spawn_app().await;
    let root = (ROOT_USER, Some(ROOT_PASSWORD));
    let users = app.web_url("/api/v1/users");
    let made = http()
        .post(&users)
        .basic_auth(root.0, root.1)
        .json(&json!({"name": "leaver", "password": "leaver-pass"}))
        .send()
        .await
        .expect("user");
    assert_eq!(made.status(), 201);
    let bucket = http()
        .post(app.web_url("/api/v1/buckets"))
        .basic_auth("leaver", Some("leaver-pass"))
        .json(&json!({"name": "leaver-files"}))
        .send()
        .await
        .expect("bucket");
    assert_eq!(bucket.status(), 201);
    put_bytes(&app.client(), "leaver-files", "f", vec![1u8; 100_000]).await;
    let metrics = http()
        .get(app.web_url("/metrics"))
        .basic_auth(ROOT_USER, Some(ROOT_PASSWORD))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("cistern_bucket_bytes{bucket=\"leaver-files\"} 100000"),
        "{metrics}"
    );
    let refused = http()
        .delete(format!("{users}/leaver"))
        .basic_auth(root.0, root.1)
        .send()
        .await
        .expect("delete");
    assert_eq!(refused.status(), 409);
    let purged = http()
        .delete(format!("{users}/leaver?purge=true"))
        .basic_auth(root.0, root.1)
        .send()
        .await
        .expect("purge");
    assert_eq!(purged.status(), 204);
    assert_eq!(
        error_status(
            app.client()
                .head_bucket()
                .bucket("leaver-files")
                .send()
                .await
        ),
        404
    );
    app.stop().await;
}
