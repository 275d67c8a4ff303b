use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn health_version_and_metrics_answer_on_the_web_port() {
    let app = spawn_app().await;
    let live = reqwest::get(app.web_url("/health/live"))
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    let ready = reqwest::get(app.web_url("/health/ready"))
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(ready["metadata"], "ok");
    assert_eq!(ready["blobs"], "ok");
    let version: serde_json::Value = reqwest::get(app.web_url("/version"))
        .await
        .expect("version")
        .json()
        .await
        .expect("json");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert!(version["commit"].as_str().is_some_and(|c| !c.is_empty()));

    let s3 = app.client();
    s3.create_bucket()
        .bucket("metrics")
        .send()
        .await
        .expect("bucket");
    s3.put_object()
        .bucket("metrics")
        .key("k")
        .body(vec![0u8; 1000].into())
        .send()
        .await
        .expect("put");
    let text = reqwest::Client::new()
        .get(app.web_url("/metrics"))
        .basic_auth(ROOT_USER, Some(ROOT_PASSWORD))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("cistern_s3_requests_total{operation=\"PutObject\",status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("cistern_s3_request_duration_seconds_bucket{operation=\"PutObject\""),
        "{text}"
    );
    assert!(text.contains("cistern_s3_bytes_received_total"));
    assert!(text.contains("cistern_objects_stored"));
    assert!(text.contains("cistern_bytes_stored"));
    app.stop().await;
}

#[tokio::test]
async fn the_sweeper_reclaims_released_and_orphan_blobs() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("sweep")
        .send()
        .await
        .expect("bucket");
    put_bytes(&s3, "sweep", "k", pattern(200_000, 1)).await;
    put_bytes(&s3, "sweep", "k", pattern(200_000, 2)).await;
    assert_eq!(
        blob_files(app.data_dir.path()).len(),
        2,
        "the old blob waits in the trash"
    );
    app.store
        .sweep_trash(Duration::ZERO)
        .await
        .expect("sweep trash");
    assert_eq!(blob_files(app.data_dir.path()).len(), 1);

    // A blob that no row points at, as an interrupted write leaves behind.
    let orphan = app
        .data_dir
        .path()
        .join("blobs/ab/0000000000000000000000000000ffab");
    std::fs::write(&orphan, b"half a write").expect("orphan");
    assert_eq!(
        app.store
            .sweep_orphans(Duration::from_secs(3600))
            .await
            .expect("sweep"),
        0,
        "young orphans are kept"
    );
    assert_eq!(
        app.store
            .sweep_orphans(Duration::ZERO)
            .await
            .expect("sweep"),
        1
    );
    assert!(!orphan.exists());
    let got = get_bytes(&s3, "sweep", "k").await;
    assert_eq!(got, pattern(200_000, 2), "the live blob survived");

    s3.delete_object()
        .bucket("sweep")
        .key("k")
        .send()
        .await
        .expect("delete");
    app.store
        .sweep_trash(Duration::ZERO)
        .await
        .expect("sweep trash");
    assert!(blob_files(app.data_dir.path()).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn shutdown_lets_an_upload_in_flight_finish() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("slow")
        .send()
        .await
        .expect("bucket");
    let presigned = s3
        .put_object()
        .bucket("slow")
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60))
                .expect("cfg"),
        )
        .await
        .expect("presign");
    let (feed, chunks) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(chunks));
    let upload = tokio::spawn(
        reqwest::Client::new()
            .put(presigned.uri())
            .header("content-length", "200000")
            .body(body)
            .send(),
    );
    feed.send(Ok(vec![1u8; 100_000])).await.expect("first half");
    // Wait until the client has taken the first half off the channel, so
    // the request is under way, then ask the server to stop.
    poll_within(Duration::from_secs(10), "the upload starts", || async {
        (feed.capacity() >= 4).then_some(())
    })
    .await;
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = stopped_tx.send(app.restart().await);
    });
    feed.send(Ok(vec![2u8; 100_000]))
        .await
        .expect("second half");
    drop(feed);
    let response = upload.await.expect("join").expect("response");
    assert_eq!(response.status(), 200);
    let app = stopped_rx.await.expect("restarted");
    let got = body_bytes(
        app.client()
            .get_object()
            .bucket("slow")
            .key("k")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(got.len(), 200_000);
    app.stop().await;
}

fn tokio_stream_from(
    mut chunks: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| chunks.poll_recv(cx))
}
