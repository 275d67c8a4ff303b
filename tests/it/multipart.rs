use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::helpers::*;

const MIB: usize = 1024 * 1024;

async fn start(s3: &aws_sdk_s3::Client, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket("mpu")
        .key(key)
        .content_type("video/mp4")
        .metadata("origin", "test")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_owned()
}

async fn part(
    s3: &aws_sdk_s3::Client,
    key: &str,
    upload: &str,
    number: i32,
    data: Vec<u8>,
) -> CompletedPart {
    let out = s3
        .upload_part()
        .bucket("mpu")
        .key(key)
        .upload_id(upload)
        .part_number(number)
        .body(data.into())
        .send()
        .await
        .expect("upload part");
    CompletedPart::builder()
        .part_number(number)
        .e_tag(out.e_tag().expect("etag"))
        .build()
}

type CompleteResult = Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError,
    >,
>;

async fn complete(
    s3: &aws_sdk_s3::Client,
    key: &str,
    upload: &str,
    parts: Vec<CompletedPart>,
) -> CompleteResult {
    let request = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key(key)
        .upload_id(upload);
    request.multipart_upload(completed(parts)).send().await
}

fn completed(parts: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build()
}

#[tokio::test]
async fn multipart_upload_completes_with_s3_etag() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("mpu")
        .send()
        .await
        .expect("bucket");
    let upload = start(&s3, "movie.mp4").await;
    let chunks = [pattern(5 * MIB, 1), pattern(5 * MIB, 2), pattern(1234, 3)];
    let mut parts = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        parts.push(part(&s3, "movie.mp4", &upload, i as i32 + 1, chunk.clone()).await);
    }

    let listed = s3
        .list_parts()
        .bucket("mpu")
        .key("movie.mp4")
        .upload_id(&upload)
        .send()
        .await
        .expect("list parts");
    assert_eq!(listed.parts().len(), 3);
    assert_eq!(listed.parts()[0].size(), Some(5 * MIB as i64));
    let uploads = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .expect("list uploads");
    assert_eq!(uploads.uploads().len(), 1);
    assert_eq!(uploads.uploads()[0].upload_id(), Some(upload.as_str()));

    // A key marker lists only uploads of later keys.
    let other = start(&s3, "zeta").await;
    let after = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .key_marker("movie.mp4")
        .send()
        .await
        .expect("list");
    let ids: Vec<_> = after
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(ids, [other.as_str()]);
    s3.abort_multipart_upload()
        .bucket("mpu")
        .key("zeta")
        .upload_id(&other)
        .send()
        .await
        .expect("abort");

    let done = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("movie.mp4")
        .upload_id(&upload)
        .multipart_upload(completed(parts))
        .send()
        .await
        .expect("complete");
    let mut concatenated_md5s = Vec::new();
    for chunk in &chunks {
        concatenated_md5s.extend(hex::decode(md5_hex(chunk)).expect("hex"));
    }
    let expected = format!("\"{}-3\"", md5_hex(&concatenated_md5s));
    assert_eq!(done.e_tag(), Some(expected.as_str()));

    let got = s3
        .get_object()
        .bucket("mpu")
        .key("movie.mp4")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("video/mp4"));
    assert_eq!(got.parts_count(), Some(3));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("test")
    );
    let whole: Vec<u8> = chunks.concat();
    assert_eq!(body_bytes(got).await, whole);

    // A range across the part boundary.
    let across = s3
        .get_object()
        .bucket("mpu")
        .key("movie.mp4")
        .range(format!("bytes={}-{}", 5 * MIB - 10, 5 * MIB + 9))
        .send()
        .await
        .expect("range");
    assert_eq!(body_bytes(across).await, whole[5 * MIB - 10..5 * MIB + 10]);

    assert!(
        s3.list_multipart_uploads()
            .bucket("mpu")
            .send()
            .await
            .expect("list")
            .uploads()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn completion_rules_give_s3_errors() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("mpu")
        .send()
        .await
        .expect("bucket");
    let upload = start(&s3, "k").await;
    let small1 = part(&s3, "k", &upload, 1, pattern(1000, 1)).await;
    let small2 = part(&s3, "k", &upload, 2, pattern(1000, 2)).await;

    let bad_etag = CompletedPart::builder()
        .part_number(1)
        .e_tag("\"00000000000000000000000000000000\"")
        .build();
    let r = complete(&s3, "k", &upload, vec![bad_etag]).await;
    assert_eq!(error_code(r), "InvalidPart");
    let missing = CompletedPart::builder()
        .part_number(7)
        .e_tag(small1.e_tag().unwrap_or_default())
        .build();
    let r = complete(&s3, "k", &upload, vec![missing]).await;
    assert_eq!(error_code(r), "InvalidPart");
    let r = complete(&s3, "k", &upload, vec![small2.clone(), small1.clone()]).await;
    assert_eq!(error_code(r), "InvalidPartOrder");
    let r = complete(&s3, "k", &upload, vec![small1, small2]).await;
    assert_eq!(error_code(r), "EntityTooSmall");
    assert_eq!(
        error_code(s3.get_object().bucket("mpu").key("k").send().await),
        "NoSuchKey"
    );

    s3.abort_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id(&upload)
        .send()
        .await
        .expect("abort");
    let r = s3
        .upload_part()
        .bucket("mpu")
        .key("k")
        .upload_id(&upload)
        .part_number(1)
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert_eq!(error_code(r), "NoSuchUpload");
    let r = s3
        .abort_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id("nope")
        .send()
        .await;
    assert_eq!(error_code(r), "NoSuchUpload");
    app.stop().await;
}

#[tokio::test]
async fn upload_part_copy_takes_a_range_of_another_object() {
    let app = spawn_app().await;
    let s3 = app.client();
    s3.create_bucket()
        .bucket("mpu")
        .send()
        .await
        .expect("bucket");
    let source = pattern(6 * MIB, 5);
    put_bytes(&s3, "mpu", "src", source.clone()).await;
    let upload = start(&s3, "dst").await;
    let copied = s3
        .upload_part_copy()
        .bucket("mpu")
        .key("dst")
        .upload_id(&upload)
        .part_number(1)
        .copy_source("mpu/src")
        .copy_source_range(format!("bytes=0-{}", 5 * MIB - 1))
        .send()
        .await
        .expect("part copy");
    let etag = copied
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_owned();
    assert_eq!(etag, format!("\"{}\"", md5_hex(&source[..5 * MIB])));
    let tail = part(&s3, "dst", &upload, 2, b"tail".to_vec()).await;
    let first = CompletedPart::builder().part_number(1).e_tag(etag).build();
    complete(&s3, "dst", &upload, vec![first, tail])
        .await
        .expect("complete");
    let got = get_bytes(&s3, "mpu", "dst").await;
    let mut expected = source[..5 * MIB].to_vec();
    expected.extend_from_slice(b"tail");
    assert_eq!(got, expected);

    let beyond = s3
        .upload_part_copy()
        .bucket("mpu")
        .key("dst")
        .upload_id("x")
        .part_number(1)
        .copy_source("mpu/src")
        .copy_source_range("bytes=0-99999999")
        .send()
        .await;
    assert!(beyond.is_err());
    app.stop().await;
}
