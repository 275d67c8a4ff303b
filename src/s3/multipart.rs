//! Multipart uploads: create, upload part (and copy), complete, abort, list.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CisternS3;
use super::convert::*;
use super::error::IntoS3;
use super::object::copy_source;
use crate::model::PutCondition;

pub async fn create(
    s3: &CisternS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    let key = object_key(&input.key)?;
    s3.store.bucket(&input.bucket).await.s3()?;
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
    let upload = s3
        .store
        .create_upload(&input.bucket, &key, attrs)
        .await
        .s3()?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.upload_id),
        ..Default::default()
    }))
}

pub async fn upload_part(
    s3: &CisternS3,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let trailers = req.trailing_headers.clone();
    let input = req.input;
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
    let part = s3
        .store
        .upload_part(
            &input.bucket,
            &input.key,
            &input.upload_id,
            input.part_number,
            body,
        )
        .await
        .s3()?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&part.etag)),
        ..Default::default()
    }))
}

/// Parses `bytes=first-last` (both required) for UploadPartCopy.
fn copy_range(range: Option<&String>) -> S3Result<Option<(u64, u64)>> {
    let Some(text) = range else { return Ok(None) };
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last"
        )
    };
    let spec = text.strip_prefix("bytes=").ok_or_else(invalid)?;
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let first = first.trim().parse().map_err(|_| invalid())?;
    let last = last.trim().parse().map_err(|_| invalid())?;
    Ok(Some((first, last)))
}

pub async fn upload_part_copy(
    s3: &CisternS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    let (source_bucket, source_key) = copy_source(&input.copy_source)?;
    let conditions = read_conditions(
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    );
    let range = copy_range(input.copy_source_range.as_ref())?;
    let (part, _source) = s3
        .store
        .upload_part_copy(
            &input.bucket,
            &input.key,
            &input.upload_id,
            input.part_number,
            &source_bucket,
            &source_key,
            &conditions,
            range,
        )
        .await
        .s3()?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&part.etag)),
            last_modified: Some(timestamp(part.last_modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub async fn complete(
    s3: &CisternS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let requested = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let mut parts = Vec::with_capacity(requested.len());
    for part in requested {
        let (Some(number), Some(tag)) = (part.part_number, part.e_tag) else {
            return Err(s3_error!(
                MalformedXML,
                "every part needs a PartNumber and an ETag"
            ));
        };
        parts.push((number, tag.value().to_owned()));
    }
    let condition = match (input.if_match.as_ref(), input.if_none_match.as_ref()) {
        (None, None) => PutCondition::Always,
        (None, Some(ETagCondition::Any)) => PutCondition::IfAbsent,
        (Some(ETagCondition::ETag(e)), None) => PutCondition::IfEtag(e.value().to_owned()),
        _ => return Err(s3_error!(NotImplemented, "unsupported condition")),
    };
    let object = s3
        .store
        .complete_upload(
            &input.bucket,
            &input.key,
            &input.upload_id,
            parts,
            condition,
        )
        .await
        .s3()?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(etag(&object.etag)),
        location: Some(format!("/{}/{}", input.bucket, path_encode(&input.key))),
        ..Default::default()
    }))
}

pub async fn abort(
    s3: &CisternS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    s3.store
        .abort_upload(&input.bucket, &input.key, &input.upload_id)
        .await
        .s3()?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    s3: &CisternS3,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    s3.store
        .upload(&input.bucket, &input.key, &input.upload_id)
        .await
        .s3()?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = input.part_number_marker.unwrap_or(0);
    let (parts, truncated) = s3
        .store
        .list_parts(&input.upload_id, marker, max)
        .await
        .s3()?;
    let next = parts.last().map(|p| p.part_number);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        part_number_marker: Some(marker),
        next_part_number_marker: next,
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(
            parts
                .into_iter()
                .map(|p| Part {
                    part_number: Some(p.part_number),
                    last_modified: Some(timestamp(p.last_modified_ms)),
                    e_tag: Some(etag(&p.etag)),
                    size: Some(p.size),
                    ..Default::default()
                })
                .collect(),
        ),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

pub async fn list_uploads(
    s3: &CisternS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let upload_id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let (uploads, truncated) = s3
        .store
        .list_uploads(&input.bucket, &prefix, &key_marker, &upload_id_marker, max)
        .await
        .s3()?;
    let last = uploads.last().map(|u| (u.key.clone(), u.upload_id.clone()));
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(prefix),
        key_marker: Some(key_marker),
        upload_id_marker: Some(upload_id_marker),
        next_key_marker: truncated
            .then(|| last.as_ref().map(|l| l.0.clone()))
            .flatten(),
        next_upload_id_marker: truncated
            .then(|| last.as_ref().map(|l| l.1.clone()))
            .flatten(),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(
            uploads
                .into_iter()
                .map(|u| MultipartUpload {
                    upload_id: Some(u.upload_id),
                    key: Some(u.key),
                    initiated: Some(timestamp(u.initiated_ms)),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
