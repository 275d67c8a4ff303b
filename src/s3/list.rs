//! ListObjects (v1, marker) and ListObjectsV2 (continuation tokens).

use base64::Engine;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::CisternS3;
use super::auth::principal;
use super::convert::{etag, timestamp, url_encode};
use super::error::IntoS3;
use crate::core::objects::ListPage;

const MAX_KEYS: i32 = 1000;

fn page_size(max_keys: Option<i32>) -> S3Result<usize> {
    match max_keys {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

/// Applies `encoding-type=url` to a value sent back to the client.
struct Encoder(bool);

impl Encoder {
    fn new(encoding: Option<&EncodingType>) -> S3Result<Self> {
        match encoding.map(|e| e.as_str()) {
            None => Ok(Self(false)),
            Some(e) if e.eq_ignore_ascii_case(EncodingType::URL) => Ok(Self(true)),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request: {other}"
            )),
        }
    }

    fn apply(&self, value: &str) -> String {
        if self.0 {
            url_encode(value)
        } else {
            value.to_owned()
        }
    }
}

fn contents(page: &ListPage, encoder: &Encoder, owner: Option<&Owner>) -> Vec<Object> {
    page.objects
        .iter()
        .map(|o| Object {
            key: Some(encoder.apply(&o.key)),
            last_modified: Some(timestamp(o.last_modified_ms)),
            e_tag: Some(etag(&o.etag)),
            size: Some(o.size),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: owner.cloned(),
            ..Default::default()
        })
        .collect()
}

fn common_prefixes(page: &ListPage, encoder: &Encoder) -> Vec<CommonPrefix> {
    page.common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(encoder.apply(p)),
        })
        .collect()
}

pub async fn list_objects(
    s3: &CisternS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let who = principal(&s3.store, &req).await?;
    let input = req.input;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let max_keys = page_size(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let marker = input.marker.clone().unwrap_or_default();
    let page = s3
        .store
        .list_objects(
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            &marker,
            max_keys,
        )
        .await
        .s3()?;
    let owner = Owner {
        id: Some(who.user_id),
        display_name: Some(who.name),
    };
    // S3 sends NextMarker only when a delimiter is used; otherwise clients
    // continue from the last key.
    let next_marker = (page.truncated && input.delimiter.is_some())
        .then(|| page.last.as_deref().map(|l| encoder.apply(l)))
        .flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(encoder.apply(&prefix)),
        marker: Some(encoder.apply(&marker)),
        max_keys: Some(max_keys as i32),
        is_truncated: Some(page.truncated),
        contents: Some(contents(&page, &encoder, Some(&owner))),
        common_prefixes: Some(common_prefixes(&page, &encoder)),
        delimiter: input.delimiter.map(|d| encoder.apply(&d)),
        next_marker,
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub async fn list_objects_v2(
    s3: &CisternS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let owner = if req.input.fetch_owner == Some(true) {
        let who = principal(&s3.store, &req).await?;
        Some(Owner {
            id: Some(who.user_id),
            display_name: Some(who.name),
        })
    } else {
        None
    };
    let input = req.input;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let max_keys = page_size(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let after = match &input.continuation_token {
        Some(token) => decode_token(token)?,
        None => input.start_after.clone().unwrap_or_default(),
    };
    let page = s3
        .store
        .list_objects(
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            &after,
            max_keys,
        )
        .await
        .s3()?;
    let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
    let next = page
        .truncated
        .then(|| page.last.as_deref().map(encode_token))
        .flatten();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encoder.apply(&prefix)),
        max_keys: Some(max_keys as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token,
        next_continuation_token: next,
        is_truncated: Some(page.truncated),
        contents: Some(contents(&page, &encoder, owner.as_ref())),
        common_prefixes: Some(common_prefixes(&page, &encoder)),
        delimiter: input.delimiter.map(|d| encoder.apply(&d)),
        encoding_type: input.encoding_type,
        start_after: input.start_after.map(|s| encoder.apply(&s)),
        ..Default::default()
    }))
}
