//! Buckets and objects: the write path (stream into a blob or keep inline,
//! verify, then commit), the read path (conditions, ranges, streaming out of
//! blobs), listings with delimiters and copies. Multipart uploads, which
//! store their parts through the same write path, are in [`super::multipart`].

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use super::digest::{BodyDigests, BodyFailure, ChecksumAlgorithm, DigestHandle, DigestingStream};
use super::names::{BucketName, ObjectKey};
use super::{CoreError, CoreResult, Principal, Store, now_ms};
use crate::core::blob::{ByteStream, new_blob_id};
use crate::core::meta::{
    BlobSegment, BucketRecord, Mutation, MutationOutcome, ObjectAttrs, ObjectBody, ObjectRecord,
    ObjectSummary, PutCondition,
};

/// An ETag condition: `*` or a list of ETags (without quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    Any,
    Tags(Vec<String>),
}

impl EtagMatch {
    fn matches(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| t == etag),
        }
    }
}

/// `If-*` request conditions; times are unix seconds.
#[derive(Debug, Clone, Default)]
pub struct ReadConditions {
    pub if_match: Option<EtagMatch>,
    pub if_none_match: Option<EtagMatch>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

impl ReadConditions {
    /// Evaluates the conditions as RFC 9110 and S3 do: a failed `If-Match`
    /// or `If-Unmodified-Since` is 412, a failed `If-None-Match` or
    /// `If-Modified-Since` is 304 on reads (412 for copy sources).
    pub fn check(&self, object: &ObjectRecord, for_copy: bool) -> CoreResult<()> {
        let modified_secs = object.last_modified_ms.div_euclid(1000);
        if let Some(m) = &self.if_match {
            if !m.matches(&object.etag) {
                return Err(CoreError::PreconditionFailed);
            }
        } else if let Some(since) = self.if_unmodified_since
            && modified_secs > since
        {
            return Err(CoreError::PreconditionFailed);
        }
        let not_modified = if for_copy {
            CoreError::PreconditionFailed
        } else {
            CoreError::NotModified
        };
        if let Some(m) = &self.if_none_match {
            if m.matches(&object.etag) {
                return Err(not_modified);
            }
        } else if let Some(since) = self.if_modified_since
            && modified_secs <= since
        {
            return Err(not_modified);
        }
        Ok(())
    }
}

/// A `Range` request before it meets the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-` or `bytes=first-last` (inclusive).
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open byte span this range selects, or `InvalidRange`.
    pub fn resolve(self, size: u64) -> CoreResult<(u64, u64)> {
        if size == 0 {
            return Err(CoreError::InvalidRange);
        }
        match self {
            Self::From { first, last } => {
                if first >= size {
                    return Err(CoreError::InvalidRange);
                }
                let end = match last {
                    Some(last) if last < first => return Err(CoreError::InvalidRange),
                    Some(last) => last.saturating_add(1).min(size),
                    None => size,
                };
                Ok((first, end))
            }
            Self::Suffix(0) => Err(CoreError::InvalidRange),
            Self::Suffix(n) => Ok((size.saturating_sub(n), size)),
        }
    }
}

/// Checks a finished body against what the client declared (Content-MD5,
/// checksum headers or trailers). Runs after the last byte and before the
/// commit, so a mismatch stores nothing.
pub type Verifier = Box<dyn FnOnce(&BodyDigests) -> CoreResult<()> + Send>;

/// A body on its way in.
pub struct IncomingBody {
    pub stream: ByteStream,
    /// Content length the client announced, if any.
    pub declared_len: Option<u64>,
    /// Compute MD5 for the ETag; pool files use their SHA-256 instead.
    pub md5: bool,
    /// Checksum algorithms to compute besides MD5.
    pub checksums: Vec<ChecksumAlgorithm>,
    pub verify: Verifier,
}

/// An object and (unless HEAD) its bytes.
pub struct ObjectRead {
    pub object: ObjectRecord,
    /// The half-open span served, when a range was asked for.
    pub range: Option<(u64, u64)>,
    pub body: ByteStream,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectSummary>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned, to resume after.
    pub last: Option<String>,
}

/// Where the bytes of a new object or part ended up.
pub(super) struct StoredBody {
    pub(super) body: ObjectBody,
    pub(super) digests: BodyDigests,
}

impl Store {
    // ---- buckets -------------------------------------------------------

    pub async fn create_bucket(&self, who: &Principal, name: &BucketName) -> CoreResult<()> {
        self.meta
            .apply(Mutation::CreateBucket {
                name: name.as_str().to_owned(),
                owner_id: who.user_id.clone(),
                now_ms: now_ms(),
            })
            .await?;
        Ok(())
    }

    pub async fn delete_bucket(&self, name: &str) -> CoreResult<()> {
        self.meta
            .apply(Mutation::DeleteBucket {
                name: name.to_owned(),
            })
            .await?;
        Ok(())
    }

    pub async fn bucket(&self, name: &str) -> CoreResult<BucketRecord> {
        self.meta.bucket(name).await?.ok_or(CoreError::NoSuchBucket)
    }

    pub async fn list_buckets(&self) -> CoreResult<Vec<BucketRecord>> {
        Ok(self.meta.buckets().await?)
    }

    // ---- writing -------------------------------------------------------

    /// Streams a body either into memory (small) or into a new blob, hashing
    /// it on the way, and verifies it. Nothing is committed here; on error no
    /// blob is left referenced.
    pub(super) async fn store_body(
        &self,
        incoming: IncomingBody,
        allow_inline: bool,
    ) -> CoreResult<StoredBody> {
        let IncomingBody {
            stream,
            declared_len,
            md5,
            checksums,
            verify,
        } = incoming;
        if declared_len.is_some_and(|n| n > self.settings.max_object_size) {
            return Err(CoreError::EntityTooLarge);
        }
        let (mut digesting, handle) =
            DigestingStream::new(stream, md5, &checksums, self.settings.max_object_size);
        let threshold = if allow_inline {
            self.settings.inline_threshold
        } else {
            0
        };
        // Gather up to the inline threshold; a body that ends within it never
        // touches the blob store.
        let mut head = BytesMut::new();
        let mut ended = false;
        if declared_len.is_none_or(|n| n <= threshold) && threshold > 0 {
            loop {
                match digesting.next().await {
                    Some(Ok(chunk)) => {
                        head.extend_from_slice(&chunk);
                        if head.len() as u64 > threshold {
                            break;
                        }
                    }
                    Some(Err(e)) => return Err(body_error(&handle, &e)),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
        }
        let body = if ended {
            ObjectBody::Inline(head.freeze())
        } else {
            let blob_id = new_blob_id();
            let head = head.freeze();
            let prefix = futures::stream::iter((!head.is_empty()).then_some(Ok(head)));
            let rest: ByteStream = Box::pin(prefix.chain(digesting));
            let written = match self.blobs.write(&blob_id, rest).await {
                Ok(n) => n,
                Err(e) => {
                    return Err(match handle.failure() {
                        Some(failure) => failure_error(failure),
                        None => e.into(),
                    });
                }
            };
            ObjectBody::Blobs(vec![BlobSegment {
                blob: blob_id,
                len: written as i64,
            }])
        };
        let digests = handle.finish();
        let checked = match declared_len {
            Some(n) if n != digests.size => Err(CoreError::IncompleteBody),
            _ => verify(&digests),
        };
        if let Err(e) = checked {
            self.discard(&body).await;
            return Err(e);
        }
        Ok(StoredBody { body, digests })
    }

    /// Best-effort removal of blobs that were written but never committed.
    pub(super) async fn discard(&self, body: &ObjectBody) {
        if let ObjectBody::Blobs(segments) = body {
            for segment in segments {
                if let Err(e) = self.blobs.delete(&segment.blob).await {
                    tracing::warn!(blob = %segment.blob, error = %e, "could not remove an uncommitted blob; the sweeper will");
                }
            }
        }
    }

    pub async fn put_object(
        &self,
        bucket: &str,
        key: &ObjectKey,
        mut attrs: ObjectAttrs,
        body: IncomingBody,
        condition: PutCondition,
    ) -> CoreResult<ObjectRecord> {
        // Refuse early rather than store a large body for nothing; a small
        // one is checked by its commit.
        if body
            .declared_len
            .is_none_or(|n| n > self.settings.inline_threshold)
        {
            self.bucket(bucket).await?;
            self.check_room(bucket, body.declared_len).await?;
        }
        let stored = self.store_body(body, true).await?;
        attrs.checksums = stored
            .digests
            .checksums
            .iter()
            .map(|(a, v)| (a.name().to_owned(), v.clone()))
            .collect();
        let object = ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.as_str().to_owned(),
            size: stored.digests.size as i64,
            etag: stored.digests.etag_hex(),
            last_modified_ms: now_ms(),
            attrs,
            body: stored.body,
            parts_count: None,
        };
        let result = self
            .meta
            .apply(Mutation::PutObject {
                object: object.clone(),
                condition,
            })
            .await;
        if let Err(e) = result {
            // After a database error the commit may have happened; the
            // orphan sweep removes the blob if it did not.
            if e.is_refusal() {
                self.discard(&object.body).await;
            }
            return Err(e.into());
        }
        self.sweep.notify_one();
        Ok(object)
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> CoreResult<bool> {
        let outcome = self
            .meta
            .apply(Mutation::DeleteObject {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })
            .await?;
        self.sweep.notify_one();
        Ok(matches!(outcome, MutationOutcome::Deleted(true)))
    }

    /// Copies an object by sharing its blobs: no bytes move. `new_attrs` is
    /// the REPLACE directive; `None` keeps the source's attributes.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object(
        &self,
        source_bucket: &str,
        source_key: &str,
        source_conditions: &ReadConditions,
        bucket: &str,
        key: &ObjectKey,
        new_attrs: Option<ObjectAttrs>,
        condition: PutCondition,
    ) -> CoreResult<ObjectRecord> {
        self.bucket(bucket).await?;
        if source_bucket == bucket && source_key == key.as_str() && new_attrs.is_none() {
            return Err(CoreError::InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to itself \
                 without changing the object's metadata."
                    .into(),
            ));
        }
        // A concurrent delete of the source can release its blobs between our
        // read and our commit; the commit notices and we read again.
        for _ in 0..3 {
            let source = self.head_object(source_bucket, source_key).await?;
            source_conditions.check(&source, true)?;
            let mut attrs = new_attrs.clone().unwrap_or_else(|| source.attrs.clone());
            attrs.checksums = source.attrs.checksums.clone();
            let object = ObjectRecord {
                bucket: bucket.to_owned(),
                key: key.as_str().to_owned(),
                last_modified_ms: now_ms(),
                attrs,
                ..source
            };
            let mutation = match object.body {
                ObjectBody::Inline(_) => Mutation::PutObject {
                    object: object.clone(),
                    condition: condition.clone(),
                },
                ObjectBody::Blobs(_) => Mutation::CopyObject {
                    object: object.clone(),
                    condition: condition.clone(),
                },
            };
            match self.meta.apply(mutation).await {
                Ok(_) => {
                    self.sweep.notify_one();
                    return Ok(object);
                }
                Err(crate::core::meta::MetaError::SourceChanged) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Unavailable(
            "the source object kept changing".into(),
        ))
    }

    // ---- reading -------------------------------------------------------

    pub async fn head_object(&self, bucket: &str, key: &str) -> CoreResult<ObjectRecord> {
        match self.meta.object(bucket, key).await? {
            Some(object) => Ok(object),
            None => {
                self.bucket(bucket).await?;
                Err(CoreError::NoSuchKey)
            }
        }
    }

    /// Looks an object up, applies the conditions and the range, and opens
    /// its bytes.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        conditions: &ReadConditions,
        range: Option<ByteRange>,
    ) -> CoreResult<ObjectRead> {
        let object = self.head_object(bucket, key).await?;
        conditions.check(&object, false)?;
        let size = object.size as u64;
        let span = range.map(|r| r.resolve(size)).transpose()?;
        let (start, end) = span.unwrap_or((0, size));
        let body = self.open_body(&object.body, start, end).await?;
        Ok(ObjectRead {
            object,
            range: span,
            body,
        })
    }

    /// Streams bytes `start..end` of an object body. The first blob is opened
    /// before returning so that a missing blob is an error, not a cut stream.
    pub(super) async fn open_body(
        &self,
        body: &ObjectBody,
        start: u64,
        end: u64,
    ) -> CoreResult<ByteStream> {
        match body {
            ObjectBody::Inline(data) => {
                let slice = data.slice(start as usize..end as usize);
                Ok(Box::pin(futures::stream::once(async move { Ok(slice) })))
            }
            ObjectBody::Blobs(segments) => {
                let mut pieces = Vec::new();
                let mut offset = 0u64;
                for segment in segments {
                    let len = segment.len as u64;
                    let (seg_start, seg_end) = (offset, offset + len);
                    offset = seg_end;
                    if seg_end <= start || seg_start >= end {
                        continue;
                    }
                    let from = start.max(seg_start) - seg_start;
                    let to = end.min(seg_end) - seg_start;
                    pieces.push((segment.blob.clone(), from, to - from));
                }
                // Open the first blobs now: a missing blob is then an error
                // rather than a cut stream, and an open file outlives the
                // deletion of a blob released while the download runs.
                const EAGER: usize = 16;
                let mut opened = Vec::new();
                for (blob, from, len) in pieces.iter().take(EAGER) {
                    opened.push(Ok::<_, std::io::Error>(
                        self.blobs.read(blob, *from, *len).await?,
                    ));
                }
                let blobs = self.blobs.clone();
                let later = pieces.into_iter().skip(EAGER);
                let lazy = futures::stream::iter(later).then(move |(blob, from, len)| {
                    let blobs = blobs.clone();
                    async move {
                        blobs
                            .read(&blob, from, len)
                            .await
                            .map_err(|e| std::io::Error::other(e.to_string()))
                    }
                });
                let all = futures::stream::iter(opened).chain(lazy).try_flatten();
                Ok(Box::pin(all))
            }
        }
    }

    /// Lists keys under `prefix` after `after`, rolling keys that contain
    /// `delimiter` past the prefix into common prefixes.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: &str,
        max_keys: usize,
    ) -> CoreResult<ListPage> {
        self.bucket(bucket).await?;
        let mut page = ListPage::default();
        if max_keys == 0 {
            return Ok(page);
        }
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut cursor = after.to_owned();
        // A resumed listing must not repeat the prefix it ended on.
        let mut last_prefix: Option<String> = Some(after.to_owned()).filter(|a| !a.is_empty());
        let mut emitted = 0usize;
        'fetch: loop {
            let want = (max_keys - emitted + 1).clamp(100, 1000);
            let batch = self
                .meta
                .list_objects(bucket, prefix, &cursor, want as i64)
                .await?;
            let exhausted = batch.len() < want;
            for object in batch {
                cursor.clone_from(&object.key);
                let rolled = delimiter.and_then(|d| {
                    let rest = &object.key[prefix.len()..];
                    rest.find(d)
                        .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
                });
                if let Some(common) = &rolled
                    && last_prefix.as_deref() == Some(common.as_str())
                {
                    // Resumed inside a prefix already returned: jump past it.
                    cursor = format!("{common}\u{10FFFF}");
                    continue 'fetch;
                }
                if emitted == max_keys {
                    page.truncated = true;
                    break 'fetch;
                }
                emitted += 1;
                match rolled {
                    Some(common) => {
                        page.last = Some(common.clone());
                        last_prefix = Some(common.clone());
                        page.common_prefixes.push(common.clone());
                        // Skip the rest of this prefix in one seek.
                        cursor = format!("{common}\u{10FFFF}");
                        continue 'fetch;
                    }
                    None => {
                        page.last = Some(object.key.clone());
                        page.objects.push(object);
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(page)
    }

    /// Refuses, before any byte is stored, an upload whose announced size
    /// does not fit the bucket's or its owner's quota. (The commit checks
    /// again, so concurrent uploads cannot overshoot together.)
    pub(super) async fn check_room(
        &self,
        bucket: &str,
        declared_len: Option<u64>,
    ) -> CoreResult<()> {
        let Some(len) = declared_len else {
            return Ok(());
        };
        match self.meta.quota_room(bucket).await? {
            Some(room) if len as i64 > room.left() => Err(room.refuse().into()),
            _ => Ok(()),
        }
    }
}

fn failure_error(failure: BodyFailure) -> CoreError {
    match failure {
        BodyFailure::TooLarge => CoreError::EntityTooLarge,
        BodyFailure::Read(message) => CoreError::BodyRead(message),
    }
}

fn body_error(handle: &DigestHandle, error: &std::io::Error) -> CoreError {
    match handle.failure() {
        Some(failure) => failure_error(failure),
        None => CoreError::BodyRead(error.to_string()),
    }
}

/// Collects a small stream into memory (tests and small helpers).
pub async fn collect(stream: ByteStream) -> std::io::Result<Bytes> {
    let chunks: Vec<Bytes> = stream.try_collect().await?;
    Ok(chunks.concat().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_s3() {
        let r = |first, last| ByteRange::From { first, last };
        assert_eq!(r(0, Some(9)).resolve(100).ok(), Some((0, 10)));
        assert_eq!(r(90, None).resolve(100).ok(), Some((90, 100)));
        assert_eq!(r(90, Some(500)).resolve(100).ok(), Some((90, 100)));
        assert_eq!(ByteRange::Suffix(10).resolve(100).ok(), Some((90, 100)));
        assert_eq!(ByteRange::Suffix(500).resolve(100).ok(), Some((0, 100)));
        assert!(r(100, None).resolve(100).is_err());
        assert!(r(5, Some(4)).resolve(100).is_err());
        assert!(ByteRange::Suffix(0).resolve(100).is_err());
        assert!(r(0, None).resolve(0).is_err());
    }
}
