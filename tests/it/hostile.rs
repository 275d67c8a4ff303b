//! Hostile input on both ports: oversized headers and malformed XML get
//! clear errors, and nothing stored changes.

use crate::helpers::*;

#[tokio::test]
async fn oversized_headers_are_refused_on_both_ports() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("keep")
        .send()
        .await
        .expect("bucket");
    put_bytes(&s3, "keep", "k", b"kept".to_vec()).await;
    for url in [
        format!("{}/keep/k", app.s3_url()),
        app.web_url("/api/v1/buckets"),
    ] {
        let mut request = reqwest::Client::new().get(&url);
        for i in 0..200 {
            request = request.header(format!("x-filler-{i}"), "x".repeat(64));
        }
        let status = request.send().await.expect("an answer").status();
        assert_eq!(status, 431, "{url}");
        let huge = reqwest::Client::new()
            .get(&url)
            .header("x-huge", "y".repeat(1 << 20))
            .send()
            .await;
        // hyper answers 431, or closes a connection whose head outgrows
        // its buffer; either way nothing is served.
        if let Ok(response) = huge {
            assert_eq!(response.status(), 431, "{url}");
        }
    }
    assert_eq!(
        get_bytes(&s3, "keep", "k").await,
        b"kept",
        "the server still serves"
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_xml_is_refused_and_deletes_nothing() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("xml")
        .send()
        .await
        .expect("bucket");
    put_bytes(&s3, "xml", "a", b"a".to_vec()).await;
    for body in [
        "<Delete><Object><Key>a",
        "not xml at all",
        "<Delete><Object><Nope>a</Nope></Object></Delete>",
    ] {
        let response = signed_post(&app, "/xml?delete", body).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("<Code>MalformedXML</Code>"), "{text}");
        assert!(text.contains("<Message>"), "a message for people: {text}");
    }
    assert_eq!(
        get_bytes(&s3, "xml", "a").await,
        b"a",
        "nothing was deleted"
    );
    app.stop().await;
}

/// A POST signed with SigV4 over its exact (malformed) body, sent raw.
async fn signed_post(app: &TestApp, path_and_query: &str, body: &str) -> reqwest::Response {
    let content_md5 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        md5::Digest::finalize(<md5::Md5 as md5::Digest>::new_with_prefix(body.as_bytes())),
    );
    let headers = [("content-md5", content_md5.as_str())];
    signed_request(app, "POST", path_and_query, "us-east-1", &headers, body).await
}
