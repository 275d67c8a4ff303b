//! Objects through the JSON API, share links, purge and the presign cap.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn objects_upload_download_list_and_share_over_the_json_api() {
    let app = spawn_app().await;
    let api = app.api();
    let (status, _) = api.post("/buckets", ROOT, json!({"name": "docs"})).await;
    assert_eq!(status, 201);

    let raw = api
        .request(ROOT, "PUT", "/buckets/docs/objects/notes/a b.txt")
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
    let posted = api
        .request(ROOT, "POST", "/buckets/docs/objects")
        .multipart(form)
        .send()
        .await
        .expect("form");
    assert_eq!(posted.status(), 201);
    let posted: Value = posted.json().await.expect("json");
    assert_eq!(posted[0]["key"], "uploads/photo.jpg");
    assert_eq!(posted[0]["size"], 100_000);

    let got = api
        .request(ROOT, "GET", "/buckets/docs/objects/notes/a b.txt")
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
    let part = api
        .request(ROOT, "GET", "/buckets/docs/objects/uploads/photo.jpg")
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
    let beyond = api
        .request(ROOT, "GET", "/buckets/docs/objects/uploads/photo.jpg")
        .header("range", "bytes=200000-")
        .send()
        .await
        .expect("range");
    assert_eq!(beyond.status(), 416);

    let (_, listed) = api
        .get("/buckets/docs/objects?delimiter=/&limit=1", ROOT)
        .await;
    assert_eq!(listed["prefixes"], json!(["notes/"]));
    let cursor = listed["next_cursor"].as_str().expect("cursor");
    let path = format!("/buckets/docs/objects?delimiter=/&limit=1&cursor={cursor}");
    let (_, rest) = api.get(&path, ROOT).await;
    assert_eq!(rest["prefixes"], json!(["uploads/"]));
    assert!(rest["next_cursor"].is_null());

    let share = json!({"key": "notes/a b.txt", "expires_secs": 600});
    let (_, link) = api.post("/buckets/docs/share", ROOT, share).await;
    let url = link["url"].as_str().expect("url");
    let shared = reqwest::get(url).await.expect("shared get");
    assert_eq!(shared.status(), 200);
    assert_eq!(shared.text().await.expect("text"), "hello world");
    let share = json!({"key": "notes/a b.txt", "expires_secs": 700_000});
    let (status, _) = api.post("/buckets/docs/share", ROOT, share).await;
    assert_eq!(status, 400);

    let (status, _) = api
        .delete("/buckets/docs/objects/notes/a b.txt", ROOT)
        .await;
    assert_eq!(status, 204);
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
    let api = app.api();
    api.create_user("leaver", "leaver-pass").await;
    let (status, _) = api
        .post(
            "/buckets",
            ("leaver", "leaver-pass"),
            json!({"name": "leaver-files"}),
        )
        .await;
    assert_eq!(status, 201);
    put_bytes(&app.client(), "leaver-files", "f", vec![1u8; 100_000]).await;
    let metrics = api
        .http
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
    let (status, _) = api.delete("/users/leaver", ROOT).await;
    assert_eq!(status, 409);
    let (status, _) = api.delete("/users/leaver?purge=true", ROOT).await;
    assert_eq!(status, 204);
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
