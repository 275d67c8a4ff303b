use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn wrong_unknown_and_missing_credentials_are_refused() {
    let app = spawn_app().await;
    app.client()
        .create_bucket()
        .bucket("secret")
        .send()
        .await
        .expect("create");

    let wrong_secret = client_for(&app.s3_url(), ROOT_USER, "not-the-password", None);
    assert_eq!(
        error_code(wrong_secret.list_buckets().send().await),
        "SignatureDoesNotMatch"
    );
    let unknown = client_for(&app.s3_url(), "nobody", "whatever-secret", None);
    assert_eq!(
        error_code(unknown.list_buckets().send().await),
        "InvalidAccessKeyId"
    );

    let anonymous = reqwest::get(format!("{}/secret", app.s3_url()))
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 403);
    assert!(
        anonymous
            .text()
            .await
            .expect("text")
            .contains("AccessDenied")
    );
    let anonymous_put = reqwest::Client::new()
        .put(format!("{}/secret/k", app.s3_url()))
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(anonymous_put.status(), 403);
    assert_eq!(
        error_code(
            app.client()
                .get_object()
                .bucket("secret")
                .key("k")
                .send()
                .await
        ),
        "NoSuchKey"
    );
    app.stop().await;
}

#[tokio::test]
async fn clock_skew_is_refused() {
    let app = spawn_app().await;
    let late = client_for(
        &app.s3_url(),
        ROOT_USER,
        ROOT_PASSWORD,
        Some(Duration::from_secs(3600)),
    );
    assert_eq!(
        error_code(late.list_buckets().send().await),
        "RequestTimeTooSkewed"
    );
    app.stop().await;
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let app = spawn_app().await;
    let response = reqwest::get(format!("{}/", app.s3_url()))
        .await
        .expect("get");
    let id = response
        .headers()
        .get("x-amz-request-id")
        .expect("request id header");
    assert_eq!(id.len(), 16);
    app.stop().await;
}

#[tokio::test]
async fn renaming_the_root_user_retires_the_old_key() {
    let app = spawn_app().await;
    app.client()
        .create_bucket()
        .bucket("kept")
        .send()
        .await
        .expect("create");
    app.store
        .ensure_admin("newroot", "new-root-password")
        .await
        .expect("rename root");
    assert_eq!(
        error_code(app.client().list_buckets().send().await),
        "InvalidAccessKeyId"
    );
    let renamed = client_for(&app.s3_url(), "newroot", "new-root-password", None);
    let buckets = renamed.list_buckets().send().await.expect("list");
    assert_eq!(
        buckets.buckets().len(),
        1,
        "the buckets stay with the root user"
    );
    app.stop().await;
}
