//! Conversions between s3s wire types and service-layer values: times,
//! ETag conditions, object attributes, body streams and declared digests.

use std::collections::BTreeMap;

use base64::Engine;
use futures::TryStreamExt;
use s3s::dto::{ETag, ETagCondition, Metadata, StreamingBlob, Timestamp};
use s3s::{S3Result, s3_error};

use crate::core::CoreError;
use crate::core::digest::{BodyDigests, ChecksumAlgorithm};
use crate::core::names::{BucketName, ObjectKey};
use crate::core::objects::{EtagMatch, IncomingBody, ReadConditions};
use crate::model::ByteStream;
use crate::model::{ObjectAttrs, ObjectRecord};

use super::error::to_s3;

pub fn timestamp(ms: i64) -> Timestamp {
    let nanos = i128::from(ms) * 1_000_000;
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(time)
}

pub fn unix_secs(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

pub fn unix_ms(ts: &Timestamp) -> i64 {
    (time::OffsetDateTime::from(ts.clone()).unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

pub fn etag_match(condition: Option<&ETagCondition>) -> Option<EtagMatch> {
    condition.map(|c| match c {
        ETagCondition::Any => EtagMatch::Any,
        ETagCondition::ETag(e) => EtagMatch::Tags(vec![e.value().to_owned()]),
    })
}

pub fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: etag_match(if_match),
        if_none_match: etag_match(if_none_match),
        if_modified_since: if_modified_since.map(unix_secs),
        if_unmodified_since: if_unmodified_since.map(unix_secs),
    }
}

pub fn bucket_name(name: &str) -> S3Result<BucketName> {
    BucketName::parse(name).map_err(to_s3)
}

pub fn object_key(key: &str) -> S3Result<ObjectKey> {
    ObjectKey::parse(key).map_err(to_s3)
}

/// The HTTP attributes a PUT, copy (REPLACE) or multipart create carries.
pub struct AttrInput {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
    pub metadata: Option<Metadata>,
}

impl AttrInput {
    pub fn into_attrs(self) -> ObjectAttrs {
        ObjectAttrs {
            content_type: self.content_type,
            cache_control: self.cache_control,
            content_disposition: self.content_disposition,
            content_encoding: self.content_encoding,
            content_language: self.content_language,
            expires_ms: self.expires.as_ref().map(unix_ms),
            user_metadata: self
                .metadata
                .map(|m| m.into_iter().collect::<BTreeMap<_, _>>())
                .unwrap_or_default(),
            checksums: BTreeMap::new(),
        }
    }
}

pub fn metadata(object: &ObjectRecord) -> Option<Metadata> {
    let meta = &object.attrs.user_metadata;
    (!meta.is_empty()).then(|| meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub fn content_type(object: &ObjectRecord) -> String {
    object
        .attrs
        .content_type
        .clone()
        .unwrap_or_else(|| "binary/octet-stream".to_owned())
}

/// The stored checksum for an algorithm, as S3 returns it.
pub fn stored_checksum(object: &ObjectRecord, algorithm: ChecksumAlgorithm) -> Option<String> {
    object.attrs.checksums.get(algorithm.name()).cloned()
}

pub fn body_stream(blob: Option<StreamingBlob>) -> ByteStream {
    match blob {
        Some(blob) => Box::pin(blob.map_err(|e| std::io::Error::other(e.to_string()))),
        None => Box::pin(futures::stream::empty()),
    }
}

pub fn streaming_blob(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(sync_wrapper::SyncStream::new(stream))
}

/// What a client declared about a body it sends: Content-MD5, checksum
/// headers, and a checksum that will come in the trailer.
pub struct DeclaredDigests {
    pub content_md5: Option<String>,
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
    pub algorithm: Option<String>,
    pub trailers: Option<s3s::TrailingHeaders>,
}

impl DeclaredDigests {
    /// A body for the service layer that computes what is needed and checks
    /// it against these declarations before the commit.
    pub fn incoming(self, stream: ByteStream, declared_len: Option<i64>) -> S3Result<IncomingBody> {
        if let Some(md5) = &self.content_md5 {
            let decoded = base64::engine::general_purpose::STANDARD.decode(md5);
            if !matches!(decoded, Ok(ref d) if d.len() == 16) {
                return Err(s3_error!(
                    InvalidDigest,
                    "The Content-MD5 you specified is not valid."
                ));
            }
        }
        let mut algorithms: Vec<ChecksumAlgorithm> =
            self.checksums.iter().map(|(a, _)| *a).collect();
        if let Some(name) = &self.algorithm {
            match ChecksumAlgorithm::from_name(name) {
                Some(a) => algorithms.push(a),
                None => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "unknown checksum algorithm {name}"
                    ));
                }
            }
        }
        algorithms.sort();
        algorithms.dedup();
        Ok(IncomingBody {
            stream,
            declared_len: declared_len.and_then(|n| u64::try_from(n).ok()),
            md5: true,
            checksums: algorithms,
            verify: Box::new(move |digests| self.verify(digests)),
        })
    }

    fn verify(self, digests: &BodyDigests) -> Result<(), CoreError> {
        if let Some(md5) = &self.content_md5 {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(md5)
                .map_err(|_| CoreError::InvalidDigest("Content-MD5".into()))?;
            if digests.md5.is_none_or(|md5| decoded != md5) {
                return Err(CoreError::BadDigest("Content-MD5".into()));
            }
        }
        let mut expected = self.checksums;
        if let Some(trailers) = self.trailers.and_then(|t| t.take()) {
            for algorithm in ChecksumAlgorithm::ALL {
                let header = format!("x-amz-checksum-{}", algorithm.name().to_ascii_lowercase());
                if let Some(value) = trailers.get(&header).and_then(|v| v.to_str().ok()) {
                    expected.push((algorithm, value.to_owned()));
                }
            }
        }
        for (algorithm, value) in expected {
            if digests.checksum(algorithm) != Some(value.as_str()) {
                return Err(CoreError::BadDigest(format!(
                    "x-amz-checksum-{}",
                    algorithm.name().to_ascii_lowercase()
                )));
            }
        }
        Ok(())
    }
}

/// Collects the `x-amz-checksum-*` header values of a request.
pub fn header_checksums(
    crc32: Option<&String>,
    crc32c: Option<&String>,
    crc64nvme: Option<&String>,
    sha1: Option<&String>,
    sha256: Option<&String>,
) -> Vec<(ChecksumAlgorithm, String)> {
    [
        (ChecksumAlgorithm::Crc32, crc32),
        (ChecksumAlgorithm::Crc32c, crc32c),
        (ChecksumAlgorithm::Crc64Nvme, crc64nvme),
        (ChecksumAlgorithm::Sha1, sha1),
        (ChecksumAlgorithm::Sha256, sha256),
    ]
    .into_iter()
    .filter_map(|(a, v)| v.map(|v| (a, v.clone())))
    .collect()
}

const PATH_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a key for use in a URL path.
pub fn path_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, PATH_SAFE).to_string()
}

/// Encodes a key for `encoding-type=url` listings as S3 does: form
/// encoding, so a space is `+` and `+` itself is `%2B`.
pub fn url_encode(value: &str) -> String {
    path_encode(value).replace("%20", "+")
}
