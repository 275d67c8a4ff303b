//! Conversions between s3s wire types and service-layer values: times,
//! ETag conditions, byte ranges, object attributes, body streams and
//! declared digests.

use std::collections::BTreeMap;

use base64::Engine;
use futures::TryStreamExt;
use s3s::dto::{ETag, ETagCondition, Metadata, Range, StreamingBlob, Timestamp};
use s3s::{S3Result, s3_error};

use crate::core::CoreError;
use crate::core::digest::{BodyDigests, ChecksumAlgorithm};
use crate::core::names::{BucketName, ObjectKey};
use crate::core::objects::{ByteRange, EtagMatch, IncomingBody, ReadConditions};
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

/// A `Range` header as s3s parsed it, for the service layer to resolve
/// against the object's size.
pub fn byte_range(range: Option<Range>) -> Option<ByteRange> {
    range.map(|r| match r {
        Range::Int { first, last } => ByteRange::From { first, last },
        Range::Suffix { length } => ByteRange::Suffix(length),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectBody;

    fn object(attrs: ObjectAttrs) -> ObjectRecord {
        ObjectRecord {
            bucket: "b".into(),
            key: "k".into(),
            size: 1,
            etag: "0cc175b9c0f1b6a831c399e269772661".into(),
            last_modified_ms: 0,
            attrs,
            body: ObjectBody::Inline(bytes::Bytes::from_static(b"a")),
            parts_count: None,
        }
    }

    #[test]
    fn timestamps_keep_milliseconds_and_secs_round_down() {
        // (unix ms, unix secs of the s3s timestamp, its HTTP date)
        let table = [
            (0, 0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (1_999, 1, "Thu, 01 Jan 1970 00:00:01 GMT"),
            (
                1_700_000_000_123,
                1_700_000_000,
                "Tue, 14 Nov 2023 22:13:20 GMT",
            ),
        ];
        for (ms, secs, http_date) in table {
            let ts = timestamp(ms);
            assert_eq!(unix_ms(&ts), ms, "{ms}");
            assert_eq!(unix_secs(&ts), secs, "{ms}");
            let mut text = Vec::new();
            ts.format(s3s::dto::TimestampFormat::HttpDate, &mut text)
                .expect("formats");
            assert_eq!(String::from_utf8(text).unwrap(), http_date, "{ms}");
            let parsed =
                Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, http_date).expect("parses");
            assert_eq!(unix_secs(&parsed), secs, "{http_date}");
        }
        // Out of the calendar's range: the epoch rather than a panic.
        assert_eq!(unix_ms(&timestamp(i64::MAX)), 0);
    }

    #[test]
    fn etag_headers_become_conditions() {
        // (If-Match / If-None-Match header, condition for the service layer)
        let table = [
            (None, None),
            (Some("*"), Some(EtagMatch::Any)),
            (Some("\"abc\""), Some(EtagMatch::Tags(vec!["abc".into()]))),
            (Some("W/\"abc\""), Some(EtagMatch::Tags(vec!["abc".into()]))),
        ];
        for (header, expected) in table {
            let condition = header
                .map(|h| ETagCondition::parse_http_header(h.as_bytes()).expect("a valid header"));
            assert_eq!(etag_match(condition.as_ref()), expected, "{header:?}");
        }
        assert_eq!(etag("abc"), ETag::Strong("abc".into()));
        assert_eq!(etag("abc").value(), "abc");
    }

    #[test]
    fn read_conditions_take_each_header_in_its_place() {
        let tag = ETagCondition::ETag(ETag::Strong("t".into()));
        let since = timestamp(5_500);
        let conditions = read_conditions(Some(&tag), Some(&ETagCondition::Any), Some(&since), None);
        assert_eq!(conditions.if_match, Some(EtagMatch::Tags(vec!["t".into()])));
        assert_eq!(conditions.if_none_match, Some(EtagMatch::Any));
        assert_eq!(conditions.if_modified_since, Some(5), "whole seconds");
        assert_eq!(conditions.if_unmodified_since, None);
        let conditions = read_conditions(None, None, None, Some(&since));
        assert_eq!(
            (conditions.if_match, conditions.if_none_match),
            (None, None)
        );
        assert_eq!(conditions.if_unmodified_since, Some(5));
    }

    #[test]
    fn range_headers_become_byte_ranges() {
        let table = [
            (
                "bytes=0-9",
                ByteRange::From {
                    first: 0,
                    last: Some(9),
                },
            ),
            (
                "bytes=100-",
                ByteRange::From {
                    first: 100,
                    last: None,
                },
            ),
            ("bytes=-20", ByteRange::Suffix(20)),
        ];
        for (header, expected) in table {
            let range = Range::parse(header).expect("a valid header");
            assert_eq!(byte_range(Some(range)), Some(expected), "{header}");
        }
        assert_eq!(byte_range(None), None);
    }

    #[test]
    fn request_attributes_become_stored_attributes_and_back() {
        let mut metadata = Metadata::default();
        metadata.insert("colour".into(), "blue".into());
        let attrs = AttrInput {
            content_type: Some("text/plain".into()),
            cache_control: Some("no-cache".into()),
            content_disposition: Some("attachment".into()),
            content_encoding: Some("gzip".into()),
            content_language: Some("en".into()),
            expires: Some(timestamp(86_400_000)),
            metadata: Some(metadata.clone()),
        }
        .into_attrs();
        assert_eq!(attrs.content_type.as_deref(), Some("text/plain"));
        assert_eq!(attrs.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(attrs.content_disposition.as_deref(), Some("attachment"));
        assert_eq!(attrs.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(attrs.content_language.as_deref(), Some("en"));
        assert_eq!(attrs.expires_ms, Some(86_400_000));
        assert!(attrs.checksums.is_empty(), "checksums come from the body");
        let stored = object(attrs);
        assert_eq!(super::metadata(&stored), Some(metadata));
        assert_eq!(content_type(&stored), "text/plain");

        // (attributes, metadata returned, Content-Type returned)
        let bare = object(ObjectAttrs::default());
        assert_eq!(super::metadata(&bare), None, "no empty metadata map");
        assert_eq!(content_type(&bare), "binary/octet-stream", "S3's default");
    }

    #[test]
    fn checksum_headers_are_collected_and_returned_by_algorithm() {
        let (crc32, sha256) = ("AAAAAA==".to_owned(), "c2hh".to_owned());
        let table: [(_, Vec<(ChecksumAlgorithm, String)>); 3] = [
            ([None, None, None, None, None], vec![]),
            (
                [Some(&crc32), None, None, None, None],
                vec![(ChecksumAlgorithm::Crc32, crc32.clone())],
            ),
            (
                [Some(&crc32), None, None, None, Some(&sha256)],
                vec![
                    (ChecksumAlgorithm::Crc32, crc32.clone()),
                    (ChecksumAlgorithm::Sha256, sha256.clone()),
                ],
            ),
        ];
        for ([a, b, c, d, e], expected) in table {
            assert_eq!(header_checksums(a, b, c, d, e), expected);
        }
        let mut attrs = ObjectAttrs::default();
        attrs.checksums.insert("CRC32".into(), crc32.clone());
        let stored = object(attrs);
        assert_eq!(
            stored_checksum(&stored, ChecksumAlgorithm::Crc32),
            Some(crc32)
        );
        assert_eq!(stored_checksum(&stored, ChecksumAlgorithm::Sha1), None);
    }

    fn declared(content_md5: Option<&str>, algorithm: Option<&str>) -> DeclaredDigests {
        DeclaredDigests {
            content_md5: content_md5.map(str::to_owned),
            checksums: vec![(ChecksumAlgorithm::Sha256, "c2hh".into())],
            algorithm: algorithm.map(str::to_owned),
            trailers: None,
        }
    }

    #[test]
    fn declared_digests_are_checked_before_the_body_is_read() {
        // (Content-MD5, x-amz-checksum-algorithm, S3 error or the
        // algorithms the service layer computes)
        let md5_of_a = "DMF1ucDxtqgxw5niaXcmYQ==";
        let table: [(_, _, Result<Vec<ChecksumAlgorithm>, &str>); 5] = [
            (None, None, Ok(vec![ChecksumAlgorithm::Sha256])),
            (
                Some(md5_of_a),
                Some("crc32"),
                Ok(vec![ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Sha256]),
            ),
            (None, Some("SHA256"), Ok(vec![ChecksumAlgorithm::Sha256])),
            (Some("not base64!"), None, Err("InvalidDigest")),
            (None, Some("MD4"), Err("InvalidArgument")),
        ];
        for (md5, algorithm, expected) in table {
            let outcome = declared(md5, algorithm)
                .incoming(Box::pin(futures::stream::empty()), Some(1))
                .map(|body| body.checksums)
                .map_err(|e| e.code().as_str().to_owned());
            assert_eq!(
                outcome,
                expected.map_err(str::to_owned),
                "{md5:?} {algorithm:?}"
            );
        }
        // A negative length is no length at all.
        let body = declared(None, None)
            .incoming(Box::pin(futures::stream::empty()), Some(-1))
            .expect("a body");
        assert_eq!(body.declared_len, None);
    }

    #[test]
    fn declared_digests_are_compared_with_the_body() {
        let md5_of_a = [
            0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8, 0x31, 0xc3, 0x99, 0xe2, 0x69, 0x77,
            0x26, 0x61,
        ];
        let digests = |md5: [u8; 16], sha256: &str| BodyDigests {
            size: 1,
            md5: Some(md5),
            checksums: vec![(ChecksumAlgorithm::Sha256, sha256.to_owned())],
        };
        // (what the body turned out to be, the error the client gets)
        let table = [
            (digests(md5_of_a, "c2hh"), None),
            (digests([0; 16], "c2hh"), Some("Content-MD5")),
            (digests(md5_of_a, "b3RoZXI="), Some("x-amz-checksum-sha256")),
        ];
        for (body, expected) in table {
            let outcome = declared(Some("DMF1ucDxtqgxw5niaXcmYQ=="), None).verify(&body);
            match (outcome, expected) {
                (Ok(()), None) => {}
                (Err(CoreError::BadDigest(what)), Some(expected)) => assert_eq!(what, expected),
                (outcome, expected) => panic!("{outcome:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn keys_are_encoded_for_paths_and_url_listings() {
        // (key, in a URL path, in an `encoding-type=url` listing)
        let table = [
            ("plain/key.txt", "plain/key.txt", "plain/key.txt"),
            ("a b", "a%20b", "a+b"),
            ("a+b", "a%2Bb", "a%2Bb"),
            (
                "~under_score-dot.",
                "~under_score-dot.",
                "~under_score-dot.",
            ),
            ("ü?&=#", "%C3%BC%3F%26%3D%23", "%C3%BC%3F%26%3D%23"),
        ];
        for (key, path, listed) in table {
            assert_eq!(path_encode(key), path, "{key}");
            assert_eq!(url_encode(key), listed, "{key}");
        }
    }
}
