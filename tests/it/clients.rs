//! What S3 clients meet beyond everyday reads and writes: SigV2 presigned
//! URLs from aws-cli v1.

use base64::Engine;
use hmac::{Hmac, Mac};

use crate::helpers::*;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A SigV2 presigned GET URL, as aws-cli v1's `aws s3 presign` makes them.
fn presign_v2(app: &TestApp, bucket: &str, key: &str, expires: u64) -> String {
    let to_sign = format!("GET\n\n\n{expires}\n/{bucket}/{key}");
    let mut mac =
        <Hmac<sha1::Sha1> as Mac>::new_from_slice(ROOT_PASSWORD.as_bytes()).expect("any key");
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let signature =
        percent_encoding::utf8_percent_encode(&signature, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "{}/{bucket}/{key}?AWSAccessKeyId={ROOT_USER}&Expires={expires}&Signature={signature}",
        app.s3_url()
    )
}

#[tokio::test]
async fn sigv2_presigned_urls_live_at_most_a_week() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("sigv2")
        .send()
        .await
        .expect("bucket");
    put_bytes(&s3, "sigv2", "cat.txt", b"meow".to_vec()).await;

    let hour = presign_v2(&app, "sigv2", "cat.txt", unix_now() + 3600);
    let response = reqwest::get(&hour).await.expect("answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "meow");

    let decade = presign_v2(&app, "sigv2", "cat.txt", unix_now() + 10 * 365 * 86_400);
    let response = reqwest::get(&decade).await.expect("answer");
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    assert!(
        text.contains("<Code>AuthorizationQueryParametersError</Code>")
            && text.contains("at most 7 days"),
        "{text}"
    );

    // A week plus a few minutes of clock skew still passes.
    let week = presign_v2(&app, "sigv2", "cat.txt", unix_now() + 7 * 86_400 + 60);
    assert_eq!(reqwest::get(&week).await.expect("answer").status(), 200);
    app.stop().await;
}
