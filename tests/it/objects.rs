use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, Delete, MetadataDirective, ObjectIdentifier};

use crate::helpers::*;

async fn app_with_bucket() -> (TestApp, aws_sdk_s3::Client) {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("bkt")
        .send()
        .await
        .expect("create bucket");
    (app, s3)
}

#[tokio::test]
async fn put_and_get_keep_bytes_headers_and_metadata() {
    let (app, s3) = app_with_bucket().await;
    for (len, key) in [(0, "empty"), (5, "small"), (200 * 1024, "blob")] {
        let data = pattern(len, 7);
        let put = s3
            .put_object()
            .bucket("bkt")
            .key(key)
            .body(data.clone().into())
            .content_type("image/png")
            .cache_control("max-age=60")
            .content_disposition("attachment; filename=\"x.png\"")
            .content_encoding("identity")
            .expires(DateTime::from_secs(2_000_000_000))
            .metadata("camera", "pinhole")
            .send()
            .await
            .expect("put");
        assert_eq!(
            put.e_tag(),
            Some(format!("\"{}\"", md5_hex(&data)).as_str()),
            "{key}"
        );

        let got = s3
            .get_object()
            .bucket("bkt")
            .key(key)
            .send()
            .await
            .expect("get");
        assert_eq!(got.content_type(), Some("image/png"));
        assert_eq!(got.cache_control(), Some("max-age=60"));
        assert_eq!(
            got.content_disposition(),
            Some("attachment; filename=\"x.png\"")
        );
        assert_eq!(got.content_encoding(), Some("identity"));
        assert_eq!(got.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
        assert_eq!(
            got.metadata()
                .and_then(|m| m.get("camera"))
                .map(String::as_str),
            Some("pinhole")
        );
        assert_eq!(got.content_length(), Some(len as i64));
        assert_eq!(body_bytes(got).await, data, "{key}");

        let head = s3
            .head_object()
            .bucket("bkt")
            .key(key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_length(), Some(len as i64));
        assert_eq!(
            head.e_tag(),
            Some(format!("\"{}\"", md5_hex(&data)).as_str())
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn overwrite_replaces_and_create_only_refuses() {
    let (app, s3) = app_with_bucket().await;
    put_bytes(&s3, "bkt", "k", b"one".to_vec()).await;
    put_bytes(&s3, "bkt", "k", b"two".to_vec()).await;
    let got = get_bytes(&s3, "bkt", "k").await;
    assert_eq!(got, b"two");

    let refused = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .if_none_match("*")
        .body(b"three".to_vec().into())
        .send()
        .await;
    assert_eq!(error_status(refused), 412);
    let got = get_bytes(&s3, "bkt", "k").await;
    assert_eq!(got, b"two", "a refused create-only PUT changes nothing");

    s3.put_object()
        .bucket("bkt")
        .key("new")
        .if_none_match("*")
        .body(b"1".to_vec().into())
        .send()
        .await
        .expect("create-only on a new key");

    let put = |key: &str, if_match: &str| {
        s3.put_object()
            .bucket("bkt")
            .key(key)
            .if_match(if_match)
            .body(b"cas".to_vec().into())
            .send()
    };
    let current = s3
        .head_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(error_status(put("k", "\"0000\"").await), 412);
    put("k", current.e_tag().expect("etag"))
        .await
        .expect("compare-and-swap with the current ETag");
    assert_eq!(get_bytes(&s3, "bkt", "k").await, b"cas");
    assert_eq!(error_code(put("absent", "\"0000\"").await), "NoSuchKey");
    app.stop().await;
}

#[tokio::test]
async fn ranges_follow_rfc_and_s3() {
    let (app, s3) = app_with_bucket().await;
    let data = pattern(100_000, 3);
    put_bytes(&s3, "bkt", "r", data.clone()).await;
    for (range, expect) in [
        ("bytes=0-9", &data[0..10]),
        ("bytes=99990-", &data[99_990..]),
        ("bytes=-5", &data[99_995..]),
        ("bytes=50000-200000", &data[50_000..]),
    ] {
        let got = s3
            .get_object()
            .bucket("bkt")
            .key("r")
            .range(range)
            .send()
            .await
            .expect(range);
        let total = data.len();
        assert!(
            got.content_range()
                .is_some_and(|c| c.ends_with(&format!("/{total}"))),
            "{range}"
        );
        assert_eq!(body_bytes(got).await, expect, "{range}");
    }
    put_bytes(&s3, "bkt", "empty", Vec::new()).await;
    let on_empty = s3
        .get_object()
        .bucket("bkt")
        .key("empty")
        .range("bytes=-5")
        .send()
        .await;
    assert_eq!(error_status(on_empty), 416);
    let unsatisfiable = s3
        .get_object()
        .bucket("bkt")
        .key("r")
        .range("bytes=100000-")
        .send()
        .await;
    assert_eq!(error_status(unsatisfiable), 416);
    app.stop().await;
}

#[tokio::test]
async fn conditional_gets_answer_304_and_412() {
    let (app, s3) = app_with_bucket().await;
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("c")
        .body(b"cond".to_vec().into())
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_owned();
    let past = DateTime::from_secs(1_000_000_000);
    let future = DateTime::from_secs(4_000_000_000);

    s3.get_object()
        .bucket("bkt")
        .key("c")
        .if_match(&etag)
        .send()
        .await
        .expect("if-match ok");
    assert_eq!(
        error_status(
            s3.get_object()
                .bucket("bkt")
                .key("c")
                .if_match("\"nope\"")
                .send()
                .await
        ),
        412
    );
    assert_eq!(
        error_status(
            s3.get_object()
                .bucket("bkt")
                .key("c")
                .if_none_match(&etag)
                .send()
                .await
        ),
        304
    );
    s3.get_object()
        .bucket("bkt")
        .key("c")
        .if_none_match("\"other\"")
        .send()
        .await
        .expect("if-none-match ok");
    assert_eq!(
        error_status(
            s3.get_object()
                .bucket("bkt")
                .key("c")
                .if_modified_since(future)
                .send()
                .await
        ),
        304
    );
    s3.get_object()
        .bucket("bkt")
        .key("c")
        .if_modified_since(past)
        .send()
        .await
        .expect("modified since");
    assert_eq!(
        error_status(
            s3.get_object()
                .bucket("bkt")
                .key("c")
                .if_unmodified_since(past)
                .send()
                .await
        ),
        412
    );
    s3.get_object()
        .bucket("bkt")
        .key("c")
        .if_unmodified_since(future)
        .send()
        .await
        .expect("unmodified since");
    assert_eq!(
        error_status(
            s3.head_object()
                .bucket("bkt")
                .key("c")
                .if_none_match(&etag)
                .send()
                .await
        ),
        304
    );
    app.stop().await;
}

#[tokio::test]
async fn presigned_urls_work_with_plain_http_and_expire() {
    let (app, s3) = app_with_bucket().await;
    let http = reqwest::Client::new();
    let config = PresigningConfig::expires_in(Duration::from_secs(300)).expect("config");
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("shared file.txt")
        .presigned(config.clone())
        .await
        .expect("presign put");
    let response = http
        .put(put.uri())
        .body("via presigned put")
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 200);

    let get = s3
        .get_object()
        .bucket("bkt")
        .key("shared file.txt")
        .response_content_type("text/plain")
        .response_content_disposition("attachment; filename=\"s.txt\"")
        .presigned(config)
        .await
        .expect("presign get");
    let response = http.get(get.uri()).send().await.expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"s.txt\""
    );
    assert_eq!(response.text().await.expect("text"), "via presigned put");

    let tampered = get.uri().replace("shared%20file.txt", "other.txt");
    assert_eq!(http.get(tampered).send().await.expect("get").status(), 403);

    let short = PresigningConfig::builder()
        .start_time(std::time::SystemTime::now() - Duration::from_secs(120))
        .expires_in(Duration::from_secs(60))
        .build()
        .expect("config");
    let expired = s3
        .get_object()
        .bucket("bkt")
        .key("shared file.txt")
        .presigned(short)
        .await
        .expect("presign");
    let response = http.get(expired.uri()).send().await.expect("get");
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("AccessDenied")
    );
    app.stop().await;
}

#[tokio::test]
async fn deletes_are_idempotent_and_batch_deletes_report() {
    let (app, s3) = app_with_bucket().await;
    for key in ["d1", "d2", "d3"] {
        put_bytes(&s3, "bkt", key, b"x".to_vec()).await;
    }
    s3.delete_object()
        .bucket("bkt")
        .key("d1")
        .send()
        .await
        .expect("delete");
    s3.delete_object()
        .bucket("bkt")
        .key("d1")
        .send()
        .await
        .expect("delete again");
    assert_eq!(
        error_code(s3.get_object().bucket("bkt").key("d1").send().await),
        "NoSuchKey"
    );

    let ids = |keys: &[&str]| {
        Delete::builder().set_objects(Some(
            keys.iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
                .collect(),
        ))
    };
    let verbose = s3
        .delete_objects()
        .bucket("bkt")
        .delete(ids(&["d2", "missing"]).build().expect("delete"))
        .send()
        .await
        .expect("verbose");
    let mut deleted: Vec<_> = verbose.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, ["d2", "missing"]);
    let quiet = s3
        .delete_objects()
        .bucket("bkt")
        .delete(ids(&["d3"]).quiet(true).build().expect("delete"))
        .send()
        .await
        .expect("quiet");
    assert!(quiet.deleted().is_empty());
    let left = s3
        .list_objects_v2()
        .bucket("bkt")
        .send()
        .await
        .expect("list");
    assert_eq!(left.key_count(), Some(0));
    app.stop().await;
}

#[tokio::test]
async fn copies_keep_or_replace_metadata_and_honour_source_conditions() {
    let (app, s3) = app_with_bucket().await;
    let big = pattern(300_000, 9);
    for (key, data) in [("small", b"tiny".to_vec()), ("big", big.clone())] {
        s3.put_object()
            .bucket("bkt")
            .key(key)
            .body(data.into())
            .content_type("text/x-src")
            .metadata("m", "1")
            .send()
            .await
            .expect("put");
    }
    s3.copy_object()
        .bucket("bkt")
        .key("small-copy")
        .copy_source("bkt/small")
        .send()
        .await
        .expect("copy");
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("small-copy")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("text/x-src"));
    assert_eq!(
        got.metadata().and_then(|m| m.get("m")).map(String::as_str),
        Some("1")
    );
    assert_eq!(body_bytes(got).await, b"tiny");

    s3.copy_object()
        .bucket("bkt")
        .key("big copy/ü")
        .copy_source("bkt/big")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/x-new")
        .metadata("n", "2")
        .send()
        .await
        .expect("copy replace");
    // Deleting the source must not take the shared bytes with it.
    s3.delete_object()
        .bucket("bkt")
        .key("big")
        .send()
        .await
        .expect("delete source");
    app.store.sweep_trash(Duration::ZERO).await.expect("sweep");
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("big copy/ü")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("application/x-new"));
    assert!(
        got.metadata()
            .is_some_and(|m| m.get("m").is_none() && m.get("n").is_some())
    );
    assert_eq!(body_bytes(got).await, big);

    let refused = s3
        .copy_object()
        .bucket("bkt")
        .key("x")
        .copy_source("bkt/small")
        .copy_source_if_match("\"nope\"")
        .send()
        .await;
    assert_eq!(error_status(refused), 412);
    let to_itself = s3
        .copy_object()
        .bucket("bkt")
        .key("small")
        .copy_source("bkt/small")
        .send()
        .await;
    assert_eq!(error_code(to_itself), "InvalidRequest");
    let missing = s3
        .copy_object()
        .bucket("bkt")
        .key("x")
        .copy_source("bkt/none")
        .send()
        .await;
    assert_eq!(error_code(missing), "NoSuchKey");
    app.stop().await;
}

#[tokio::test]
async fn odd_keys_are_just_strings() {
    let (app, s3) = app_with_bucket().await;
    let long = "k".repeat(1024);
    let keys = [
        "../x",
        "../../etc/passwd",
        "a//b",
        "with space",
        "emoji 🦀/ünïcode",
        "/leading",
        "trailing/",
        long.as_str(),
    ];
    for key in keys {
        put_bytes(&s3, "bkt", key, key.as_bytes().to_vec()).await;
    }
    for key in keys {
        let got = s3
            .get_object()
            .bucket("bkt")
            .key(key)
            .send()
            .await
            .expect(key);
        assert_eq!(body_bytes(got).await, key.as_bytes());
    }
    let listed = s3
        .list_objects_v2()
        .bucket("bkt")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(keys.len() as i32));
    let too_long = "k".repeat(1025);
    let refused = s3
        .put_object()
        .bucket("bkt")
        .key(&too_long)
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(refused), "KeyTooLongError");
    // Nothing escaped the blob directory.
    assert!(!app.data_dir.path().join("etc").exists());
    app.stop().await;
}

#[tokio::test]
async fn digests_are_verified_and_a_mismatch_stores_nothing() {
    let (app, s3) = app_with_bucket().await;
    let wrong_md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="; // MD5 of the empty string
    let refused = s3
        .put_object()
        .bucket("bkt")
        .key("m")
        .content_md5(wrong_md5)
        .body(b"data".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(refused), "BadDigest");
    let refused = s3
        .put_object()
        .bucket("bkt")
        .key("m")
        .checksum_crc32("AAAAAA==")
        .body(b"data".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(refused), "BadDigest");
    assert_eq!(
        error_status(s3.head_object().bucket("bkt").key("m").send().await),
        404
    );

    // The SDK's own checksums (trailers with aws-chunked) are accepted.
    for algorithm in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let data = pattern(100_000, 1);
        s3.put_object()
            .bucket("bkt")
            .key("sum")
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e:?}"));
    }
    let good_md5 = {
        use base64::Engine;
        use md5::Digest;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b"data"))
    };
    s3.put_object()
        .bucket("bkt")
        .key("m")
        .content_md5(good_md5)
        .body(b"data".to_vec().into())
        .send()
        .await
        .expect("good md5");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_small_puts_keep_their_own_outcomes() {
    let (app, s3) = app_with_bucket().await;
    put_bytes(&s3, "bkt", "taken", b"first".to_vec()).await;
    // Enough concurrent writes that the group-commit writer batches them:
    // fresh keys, repeated keys, create-only on a taken key, and a bucket
    // that does not exist, all at once.
    let requests = (0..96).map(|i| {
        let s3 = s3.clone();
        async move {
            let (bucket, key, create_only) = match i % 4 {
                0 => ("bkt", format!("fresh-{i}"), false),
                1 => ("bkt", "same".to_owned(), false),
                2 => ("bkt", "taken".to_owned(), true),
                _ => ("nobucket", format!("k-{i}"), false),
            };
            let mut put = s3
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(format!("v{i}").into_bytes().into());
            if create_only {
                put = put.if_none_match("*");
            }
            (
                i,
                put.send()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.into_service_error().meta().code().map(str::to_owned)),
            )
        }
    });
    let outcomes = futures::future::join_all(requests).await;
    for (i, outcome) in outcomes {
        match i % 4 {
            0 | 1 => assert!(outcome.is_ok(), "{i}: {outcome:?}"),
            2 => assert!(
                outcome.is_err(),
                "{i}: create-only on a taken key must fail"
            ),
            _ => assert_eq!(outcome, Err(Some("NoSuchBucket".to_owned())), "{i}"),
        }
    }
    assert_eq!(get_bytes(&s3, "bkt", "taken").await, b"first");
    let same = String::from_utf8(get_bytes(&s3, "bkt", "same").await).expect("utf8");
    assert!(same.starts_with('v'));
    let listed = s3
        .list_objects_v2()
        .bucket("bkt")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(24 + 2));
    let bucket = app.store.bucket("bkt").await.expect("bucket");
    assert_eq!(
        bucket.object_count, 26,
        "the bucket counters follow the batch"
    );
    app.stop().await;
}
