use crate::helpers::*;

#[tokio::test]
async fn bucket_lifecycle_matches_s3() {
    let app = spawn_app().await;
    let s3 = app.client();

    s3.create_bucket()
        .bucket("photos")
        .send()
        .await
        .expect("create");
    let again = s3.create_bucket().bucket("photos").send().await;
    assert_eq!(error_code(again), "BucketAlreadyOwnedByYou");

    let listed = s3.list_buckets().send().await.expect("list");
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["photos"]);
    assert!(listed.buckets()[0].creation_date().is_some());

    s3.head_bucket()
        .bucket("photos")
        .send()
        .await
        .expect("head");
    let location = s3
        .get_bucket_location()
        .bucket("photos")
        .send()
        .await
        .expect("location");
    let constraint = location
        .location_constraint()
        .map(|c| c.as_str())
        .unwrap_or_default();
    assert_eq!(constraint, "", "us-east-1 is an empty constraint");

    put_bytes(&s3, "photos", "a", b"x".to_vec()).await;
    assert_eq!(
        error_code(s3.delete_bucket().bucket("photos").send().await),
        "BucketNotEmpty"
    );
    s3.delete_object()
        .bucket("photos")
        .key("a")
        .send()
        .await
        .expect("delete object");
    s3.delete_bucket()
        .bucket("photos")
        .send()
        .await
        .expect("delete bucket");

    assert_eq!(
        error_status(s3.head_bucket().bucket("photos").send().await),
        404
    );
    assert_eq!(
        error_code(s3.delete_bucket().bucket("photos").send().await),
        "NoSuchBucket"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_bucket_names_are_refused() {
    let app = spawn_app().await;
    let s3 = app.client();
    for name in ["ab", "Upper", "a..b", "192.168.0.1", "-abc"] {
        let result = s3.create_bucket().bucket(name).send().await;
        assert_eq!(error_code(result), "InvalidBucketName", "{name}");
    }
    assert!(
        s3.list_buckets()
            .send()
            .await
            .expect("list")
            .buckets()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn operations_on_missing_buckets_say_no_such_bucket() {
    let app = spawn_app().await;
    let s3 = app.client();
    assert_eq!(
        error_code(s3.get_object().bucket("nope").key("k").send().await),
        "NoSuchBucket"
    );
    assert_eq!(
        error_code(
            s3.put_object()
                .bucket("nope")
                .key("k")
                .body(b"x".to_vec().into())
                .send()
                .await
        ),
        "NoSuchBucket"
    );
    assert_eq!(
        error_code(s3.list_objects_v2().bucket("nope").send().await),
        "NoSuchBucket"
    );
    app.stop().await;
}
