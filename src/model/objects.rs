//! Buckets and objects as every layer sees them: what the metadata store
//! reads and writes, what the service layer decides on, and what the
//! front-ends turn into S3 XML or JSON.

use std::collections::BTreeMap;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

/// A stream of bytes with I/O errors, as blobs are written and read.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

#[derive(Debug, Clone)]
pub struct BucketRecord {
    pub name: String,
    pub owner_id: String,
    pub created_ms: i64,
    pub object_count: i64,
    pub bytes_stored: i64,
    /// Anonymous clients may read it.
    pub public_read: bool,
}

/// HTTP attributes stored with an object and returned on GET/HEAD.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Expires` as unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
    /// `x-amz-meta-*` pairs, names without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
    /// Verified `x-amz-checksum-*` values by algorithm name (`CRC32`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
}

/// A contiguous run of an object's bytes kept in one blob.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobSegment {
    pub blob: String,
    pub len: i64,
}

/// Where an object's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectBody {
    /// Kept in the metadata row itself (small objects).
    Inline(bytes::Bytes),
    /// The concatenation of these blobs, in order.
    Blobs(Vec<BlobSegment>),
}

#[derive(Debug, Clone)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    pub size: i64,
    /// Hex MD5 (or `md5-of-md5s-N`), without quotes.
    pub etag: String,
    pub last_modified_ms: i64,
    pub attrs: ObjectAttrs,
    pub body: ObjectBody,
    pub parts_count: Option<i32>,
}

/// One entry of a listing (no body location needed).
#[derive(Debug, Clone)]
pub struct ObjectSummary {
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub last_modified_ms: i64,
}

#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub initiated_ms: i64,
    pub attrs: ObjectAttrs,
}

#[derive(Debug, Clone)]
pub struct PartRecord {
    pub part_number: i32,
    pub blob_id: String,
    pub size: i64,
    pub etag: String,
    pub last_modified_ms: i64,
}

/// Create-only and compare-and-swap writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    Always,
    /// `If-None-Match: *`: only if no object has the key.
    IfAbsent,
    /// `If-Match: "etag"`: only if the current object has this ETag.
    IfEtag(String),
}

/// Totals over every bucket, for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredTotals {
    pub objects: i64,
    pub bytes: i64,
}
