//! What S3 clients meet beyond everyday reads and writes: SigV2 presigned
//! URLs from aws-cli v1, error messages people read, credential scopes for
//! another region (s3cmd's `US`), the versioning question sync tools ask and
//! browsers' CORS preflights.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
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

/// The code and message of a failed SDK call.
fn code_and_message<E, R>(result: Result<R, aws_sdk_s3::error::SdkError<E>>) -> (String, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(ok) => panic!("expected an error, got {ok:?}"),
        Err(e) => {
            let service = e.as_service_error();
            (
                service
                    .and_then(|s| s.code())
                    .unwrap_or_default()
                    .to_owned(),
                service
                    .and_then(|s| s.message())
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    }
}

#[tokio::test]
async fn every_error_carries_a_message() {
    let app = spawn_app().await;
    let s3 = app.client();
    for name in ["t", "Bad_Name"] {
        let (code, message) = code_and_message(s3.create_bucket().bucket(name).send().await);
        assert_eq!(code, "InvalidBucketName", "{name}");
        assert!(
            message.contains(name) && message.contains("3 to 63 characters"),
            "{name}: {message:?}"
        );
    }
    let (code, message) = code_and_message(s3.list_objects_v2().bucket("Bad_Name").send().await);
    assert_eq!(code, "InvalidBucketName");
    assert!(!message.is_empty());

    let wrong_secret = client_for(&app.s3_url(), ROOT_USER, "not-the-password", None);
    let (code, message) = code_and_message(wrong_secret.list_buckets().send().await);
    assert_eq!(code, "SignatureDoesNotMatch");
    assert!(message.contains("signature"), "{message:?}");

    s3.create_bucket()
        .bucket("msgs")
        .send()
        .await
        .expect("bucket");
    let long_key = "k".repeat(1100);
    let (code, message) = code_and_message(
        s3.put_object()
            .bucket("msgs")
            .key(&long_key)
            .body(b"x".to_vec().into())
            .send()
            .await,
    );
    assert_eq!(code, "KeyTooLongError");
    assert!(message.contains("1024"), "{message:?}");

    // Raw requests that s3s refuses before any operation runs.
    for (path, code) in [
        ("/Bad_Name/k", "InvalidBucketName"),
        ("//k", "InvalidBucketName"),
        ("/msgs/%ff", "InvalidURI"),
    ] {
        let response = reqwest::get(format!("{}{path}", app.s3_url()))
            .await
            .expect("answer");
        assert_eq!(response.status(), 400, "{path}");
        let text = response.text().await.expect("body");
        assert!(
            text.contains(&format!("<Code>{code}</Code>")),
            "{path}: {text}"
        );
        let message = text
            .split_once("<Message>")
            .and_then(|(_, rest)| rest.split_once("</Message>"))
            .map(|(message, _)| message);
        assert!(message.is_some_and(|m| m.len() > 10), "{path}: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn buckets_say_they_are_unversioned() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("bucket");
    let versioning = s3
        .get_bucket_versioning()
        .bucket("plain")
        .send()
        .await
        .expect("versioning");
    assert_eq!(versioning.status(), None);
    assert_eq!(versioning.mfa_delete(), None);
    assert_eq!(
        error_code(s3.get_bucket_versioning().bucket("nope").send().await),
        "NoSuchBucket"
    );
    let anonymous = reqwest::get(format!("{}/plain?versioning", app.s3_url()))
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn cors_preflights_get_s3s_answer_for_a_bucket_without_cors() {
    let app = spawn_app().await;
    app.client()
        .create_bucket()
        .bucket("site")
        .send()
        .await
        .expect("bucket");
    let http = reqwest::Client::new();
    let preflight = |path: &str| {
        http.request(reqwest::Method::OPTIONS, format!("{}{path}", app.s3_url()))
            .header("origin", "https://example.net")
            .header("access-control-request-method", "PUT")
    };
    for (path, message) in [
        (
            "/site/index.html",
            "CORSResponse: CORS is not enabled for this bucket.",
        ),
        (
            "/site",
            "CORSResponse: CORS is not enabled for this bucket.",
        ),
        ("/missing/index.html", "CORSResponse: Bucket not found"),
    ] {
        let response = preflight(path).send().await.expect("answer");
        assert_eq!(response.status(), 403, "{path}");
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin"),
            "{path}"
        );
        let text = response.text().await.expect("body");
        assert!(
            text.contains("<Code>AccessForbidden</Code>")
                && text.contains(&format!("<Message>{message}</Message>")),
            "{path}: {text}"
        );
    }
    let no_origin = http
        .request(reqwest::Method::OPTIONS, format!("{}/site/k", app.s3_url()))
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("answer");
    assert_eq!(no_origin.status(), 400);
    app.stop().await;
}

/// A GET signed with SigV4 for `region`, sent raw.
async fn signed_get(app: &TestApp, path: &str, region: &str) -> reqwest::Response {
    signed_request(app, "GET", path, region, &[], "").await
}

#[tokio::test]
async fn regions_s3s_cannot_take_are_told_which_region_to_sign_for() {
    let app = spawn_app().await;
    app.client()
        .create_bucket()
        .bucket("here")
        .send()
        .await
        .expect("bucket");

    // s3cmd's default `US`, which s3s cannot take, gets S3's answer, which
    // names the region to sign for.
    let (code, message) =
        code_and_message(client_in_region(&app, "US").list_buckets().send().await);
    assert_eq!(code, "AuthorizationHeaderMalformed");
    assert!(
        message.contains("the region 'US' is wrong; expecting 'us-east-1'"),
        "{message:?}"
    );
    let response = signed_get(&app, "/here", "US").await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    assert!(text.contains("<Region>us-east-1</Region>"), "{text}");
    // Signed again for the region named, as s3cmd does, it is served.
    assert_eq!(signed_get(&app, "/here", "us-east-1").await.status(), 200);
    let presigned = client_in_region(&app, "US")
        .get_object()
        .bucket("here")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .expect("presign");
    let response = reqwest::get(presigned.uri()).await.expect("answer");
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    assert!(
        text.contains("<Code>AuthorizationQueryParametersError</Code>")
            && text.contains("<Region>us-east-1</Region>"),
        "{text}"
    );
    // A profile that names another AWS region still works.
    assert_eq!(signed_get(&app, "/here", "eu-west-1").await.status(), 200);
    client_in_region(&app, "eu-west-1")
        .list_buckets()
        .send()
        .await
        .expect("another lowercase region is taken");
    app.stop().await;

    let app = spawn_app_with(&["--region", "eu-central-1"]).await;
    let response = signed_get(&app, "/", "US").await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.expect("body");
    assert!(text.contains("<Region>eu-central-1</Region>"), "{text}");
    client_in_region(&app, "eu-central-1")
        .list_buckets()
        .send()
        .await
        .expect("the server's own region");
    app.stop().await;
}
