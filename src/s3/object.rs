//! Object operations: put, get, head, delete (one and many), copy.

use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CisternS3;
use super::convert::*;
use super::error::{IntoS3, to_s3};
use crate::core::digest::ChecksumAlgorithm;
use crate::model::{ObjectRecord, PutCondition};

fn put_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<PutCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(PutCondition::Always),
        (None, Some(ETagCondition::Any)) => Ok(PutCondition::IfAbsent),
        (Some(ETagCondition::ETag(e)), None) => Ok(PutCondition::IfEtag(e.value().to_owned())),
        _ => Err(s3_error!(
            NotImplemented,
            "Only If-None-Match: * or If-Match: \"etag\" are supported on writes"
        )),
    }
}

pub async fn put_object(
    s3: &CisternS3,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let trailers = req.trailing_headers.clone();
    let input = req.input;
    let key = object_key(&input.key)?;
    let condition = put_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let declared = DeclaredDigests {
        content_md5: input.content_md5,
        checksums: header_checksums(
            input.checksum_crc32.as_ref(),
            input.checksum_crc32c.as_ref(),
            input.checksum_crc64nvme.as_ref(),
            input.checksum_sha1.as_ref(),
            input.checksum_sha256.as_ref(),
        ),
        algorithm: input.checksum_algorithm.map(|a| a.as_str().to_owned()),
        trailers,
    };
    let body = declared.incoming(body_stream(input.body), input.content_length)?;
    let attrs = AttrInput {
        content_type: input.content_type,
        cache_control: input.cache_control,
        content_disposition: input.content_disposition,
        content_encoding: input.content_encoding,
        content_language: input.content_language,
        expires: input.expires,
        metadata: input.metadata,
    }
    .into_attrs();
    let object = s3
        .store
        .put_object(&input.bucket, &key, attrs, body, condition)
        .await
        .s3()?;
    let sum = |a| stored_checksum(&object, a);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&object.etag)),
        size: Some(object.size),
        checksum_crc32: sum(ChecksumAlgorithm::Crc32),
        checksum_crc32c: sum(ChecksumAlgorithm::Crc32c),
        checksum_crc64nvme: sum(ChecksumAlgorithm::Crc64Nvme),
        checksum_sha1: sum(ChecksumAlgorithm::Sha1),
        checksum_sha256: sum(ChecksumAlgorithm::Sha256),
        ..Default::default()
    }))
}

/// Checksums are returned only for whole objects, when the client asks.
fn whole_checksums(
    object: &ObjectRecord,
    mode: Option<&ChecksumMode>,
    ranged: bool,
) -> [Option<String>; 5] {
    let wanted = !ranged && mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case("ENABLED"));
    ChecksumAlgorithm::ALL.map(|a| {
        if wanted {
            stored_checksum(object, a)
        } else {
            None
        }
    })
}

pub async fn get_object(
    s3: &CisternS3,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    if input.part_number.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "GetObject by partNumber is not supported"
        ));
    }
    let conditions = read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    );
    let read = match s3
        .store
        .get_object(
            &input.bucket,
            &input.key,
            &conditions,
            byte_range(input.range),
        )
        .await
    {
        Ok(read) => read,
        Err(crate::core::CoreError::NotModified) => {
            return Err(not_modified(&s3.store, &input.bucket, &input.key).await);
        }
        Err(e) => return Err(to_s3(e)),
    };
    let object = read.object;
    let size = object.size as u64;
    let (length, content_range) = match read.range {
        Some((start, end)) => (
            end - start,
            Some(format!("bytes {start}-{}/{size}", end - 1)),
        ),
        None => (size, None),
    };
    let [crc32, crc32c, crc64nvme, sha1, sha256] = whole_checksums(
        &object,
        input.checksum_mode.as_ref(),
        content_range.is_some(),
    );
    let mut response = S3Response::new(GetObjectOutput {
        body: Some(streaming_blob(read.body)),
        content_length: Some(length as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        content_type: Some(content_type(&object)),
        e_tag: Some(etag(&object.etag)),
        last_modified: Some(timestamp(object.last_modified_ms)),
        metadata: metadata(&object),
        cache_control: object.attrs.cache_control.clone(),
        content_disposition: object.attrs.content_disposition.clone(),
        content_encoding: object.attrs.content_encoding.clone(),
        content_language: object.attrs.content_language.clone(),
        expires: object.attrs.expires_ms.map(timestamp),
        parts_count: object.parts_count,
        checksum_crc32: crc32,
        checksum_crc32c: crc32c,
        checksum_crc64nvme: crc64nvme,
        checksum_sha1: sha1,
        checksum_sha256: sha256,
        ..Default::default()
    });
    // Opened in a browser (a presigned link), stored HTML runs no script
    // on this host, whose cookies the console's port shares; PDFs are
    // exempt, or the browser's viewer would not show them.
    response.headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    if object.attrs.content_type.as_deref() != Some("application/pdf") {
        response.headers.insert(
            http::header::CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_static("sandbox"),
        );
    }
    Ok(response)
}

/// A 304 carries the validators of the current object, as HTTP requires.
async fn not_modified(store: &crate::core::Store, bucket: &str, key: &str) -> s3s::S3Error {
    let mut error = s3_error!(NotModified);
    if let Ok(object) = store.head_object(bucket, key).await {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&format!("\"{}\"", object.etag)) {
            headers.insert(http::header::ETAG, value);
        }
        let modified = time::OffsetDateTime::from(timestamp(object.last_modified_ms));
        let format = time::format_description::well_known::Rfc2822;
        if let Ok(text) = modified.format(&format)
            && let Ok(value) = http::HeaderValue::from_str(&text.replace("+0000", "GMT"))
        {
            headers.insert(http::header::LAST_MODIFIED, value);
        }
        error.set_headers(headers);
    }
    error
}

pub async fn head_object(
    s3: &CisternS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let conditions = read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    );
    let object = s3.store.head_object(&input.bucket, &input.key).await.s3()?;
    match conditions.check(&object, false) {
        Ok(()) => {}
        Err(crate::core::CoreError::NotModified) => {
            return Err(not_modified(&s3.store, &input.bucket, &input.key).await);
        }
        Err(e) => return Err(to_s3(e)),
    }
    let size = object.size as u64;
    let (length, content_range) = match byte_range(input.range) {
        Some(range) => {
            let (start, end) = range.resolve(size).s3()?;
            (
                end - start,
                Some(format!("bytes {start}-{}/{size}", end - 1)),
            )
        }
        None => (size, None),
    };
    let [crc32, crc32c, crc64nvme, sha1, sha256] = whole_checksums(
        &object,
        input.checksum_mode.as_ref(),
        content_range.is_some(),
    );
    Ok(S3Response::new(HeadObjectOutput {
        content_length: Some(length as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        content_type: Some(content_type(&object)),
        e_tag: Some(etag(&object.etag)),
        last_modified: Some(timestamp(object.last_modified_ms)),
        metadata: metadata(&object),
        cache_control: object.attrs.cache_control.clone(),
        content_disposition: object.attrs.content_disposition.clone(),
        content_encoding: object.attrs.content_encoding.clone(),
        content_language: object.attrs.content_language.clone(),
        expires: object.attrs.expires_ms.map(timestamp),
        parts_count: object.parts_count,
        checksum_crc32: crc32,
        checksum_crc32c: crc32c,
        checksum_crc64nvme: crc64nvme,
        checksum_sha1: sha1,
        checksum_sha256: sha256,
        ..Default::default()
    }))
}

pub async fn delete_object(
    s3: &CisternS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    // Deleting a missing key succeeds: DELETE is idempotent in S3.
    s3.store
        .delete_object(&req.input.bucket, &req.input.key)
        .await
        .s3()?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub async fn delete_objects(
    s3: &CisternS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    s3.store.bucket(&input.bucket).await.s3()?;
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "at most 1000 keys may be deleted at once"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bucket = input.bucket.as_str();
    // Run the deletes side by side so the group-commit writer batches them.
    let outcomes: Vec<_> = futures::stream::iter(input.delete.objects)
        .map(|id| async move {
            let result = s3.store.delete_object(bucket, &id.key).await;
            (id.key, result)
        })
        .buffered(64)
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (key, result) in outcomes {
        match result {
            Ok(_) if quiet => {}
            Ok(_) => deleted.push(DeletedObject {
                key: Some(key),
                ..Default::default()
            }),
            Err(e) => {
                let e = to_s3(e);
                errors.push(Error {
                    key: Some(key),
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

/// The source bucket and key of a copy.
pub fn copy_source(source: &CopySource) -> S3Result<(String, String)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(s3_error!(
                    NotImplemented,
                    "versioned copy sources are not supported"
                ));
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(
            NotImplemented,
            "only bucket/key copy sources are supported"
        )),
    }
}

pub async fn copy_object(
    s3: &CisternS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    let key = object_key(&input.key)?;
    let (source_bucket, source_key) = copy_source(&input.copy_source)?;
    let conditions = read_conditions(
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    );
    let replace = match input.metadata_directive.as_ref().map(|d| d.as_str()) {
        None | Some(MetadataDirective::COPY) => false,
        Some(MetadataDirective::REPLACE) => true,
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "Unknown metadata directive {other}"
            ));
        }
    };
    let new_attrs = replace.then(|| {
        AttrInput {
            content_type: input.content_type,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            expires: input.expires,
            metadata: input.metadata,
        }
        .into_attrs()
    });
    let object = s3
        .store
        .copy_object(
            &source_bucket,
            &source_key,
            &conditions,
            &input.bucket,
            &key,
            new_attrs,
            PutCondition::Always,
        )
        .await
        .s3()?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&object.etag)),
            last_modified: Some(timestamp(object.last_modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
