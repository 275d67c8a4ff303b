//! Quotas on bytes stored: refused before the bytes are stored, and exact
//! under concurrent uploads.

use serde_json::json;

use crate::helpers::*;

async fn set_quota(app: &TestApp, path: &str, bytes: Option<i64>) {
    let (status, _) = app.api().put(path, ROOT, json!({ "bytes": bytes })).await;
    assert_eq!(status, 204, "{path}");
}

#[tokio::test]
async fn quotas_refuse_uploads_that_do_not_fit_even_concurrently() {
    let app = spawn_app().await;
    let s3 = app.client();
    for bucket in ["capped", "roomy"] {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("bucket");
    }
    set_quota(&app, "/admin/buckets/capped/quota", Some(5_000)).await;
    let too_big = s3
        .put_object()
        .bucket("capped")
        .key("k")
        .body(vec![0u8; 6_000].into())
        .send()
        .await;
    let code = error_code(too_big);
    assert_eq!(code, "QuotaExceeded");
    assert_eq!(
        error_status(s3.head_object().bucket("capped").key("k").send().await),
        404
    );
    put_bytes(&s3, "capped", "fits", vec![0u8; 5_000]).await;

    // The JSON API refuses with 413 and says which quota and how much is used.
    let refused = app
        .api()
        .request(ROOT, "PUT", "/buckets/capped/objects/more")
        .body(vec![0u8; 10])
        .send()
        .await
        .expect("api put");
    assert_eq!(refused.status(), 413);
    let body: serde_json::Value = refused.json().await.expect("json");
    let error = &body["error"];
    assert_eq!(error["code"], "quota_exceeded");
    assert_eq!(error["scope"], "bucket");
    assert_eq!(error["quota"], 5_000);
    assert_eq!(error["used"], 5_000);
    assert!(
        error["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(
        error_status(s3.head_object().bucket("capped").key("more").send().await),
        404
    );

    // The root user's own quota covers both buckets: 5,000 used, 10,000 allowed.
    set_quota(
        &app,
        &format!("/admin/users/{ROOT_USER}/quota"),
        Some(10_000),
    )
    .await;
    let large = s3
        .put_object()
        .bucket("roomy")
        .key("large")
        .body(vec![0u8; 200_000].into())
        .send()
        .await;
    assert_eq!(error_code(large), "QuotaExceeded");
    let blobs = std::fs::read_dir(app.data_dir.path().join("blobs"))
        .expect("blobs")
        .map(|d| {
            std::fs::read_dir(d.expect("shard").path())
                .expect("dir")
                .count()
        })
        .sum::<usize>();
    assert_eq!(blobs, 0, "a refused upload stored nothing");

    let uploads = (0..20).map(|i| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket("roomy")
                .key(format!("part-{i}"))
                .body(vec![1u8; 1_000].into())
                .send()
                .await
                .is_ok()
                .then_some(i)
        }
    });
    let accepted: Vec<i32> = futures::future::join_all(uploads)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        accepted.len(),
        5,
        "exactly the uploads that fit the remaining 5,000 bytes"
    );
    let roomy = app.store.bucket("roomy").await.expect("bucket");
    assert_eq!(roomy.bytes_stored, 5_000);

    // Overwriting with something smaller always fits; removing the quota lifts it.
    put_bytes(
        &s3,
        "roomy",
        &format!("part-{}", accepted[0]),
        vec![1u8; 10],
    )
    .await;
    set_quota(&app, &format!("/admin/users/{ROOT_USER}/quota"), None).await;
    put_bytes(&s3, "roomy", "large", vec![0u8; 200_000]).await;
    app.stop().await;
}
