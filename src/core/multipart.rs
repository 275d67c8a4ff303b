//! Multipart uploads: creating one, storing its parts (sent, or copied
//! from a range of another object), listing parts and uploads, and
//! completing or aborting it. Parts go through the objects' write path
//! (`store_body`) and always into a blob of their own, so that
//! completing an upload only lists the parts' blobs in the object's row.

use super::names::ObjectKey;
use super::objects::{IncomingBody, ReadConditions, StoredBody};
use super::{CoreError, CoreResult, Store, now_ms};
use crate::core::meta::{Mutation, MutationOutcome};
use crate::model::{ObjectAttrs, ObjectBody, ObjectRecord, PartRecord, PutCondition, UploadRecord};

impl Store {
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &ObjectKey,
        attrs: ObjectAttrs,
    ) -> CoreResult<UploadRecord> {
        let upload = UploadRecord {
            upload_id: uuid::Uuid::new_v4().simple().to_string(),
            bucket: bucket.to_owned(),
            key: key.as_str().to_owned(),
            initiated_ms: now_ms(),
            attrs,
        };
        self.meta
            .apply(Mutation::CreateUpload {
                upload: upload.clone(),
            })
            .await?;
        Ok(upload)
    }

    /// The upload, checked to belong to this bucket and key.
    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> CoreResult<UploadRecord> {
        match self.meta.upload(upload_id).await? {
            Some(upload) if upload.bucket == bucket && upload.key == key => Ok(upload),
            _ => {
                self.bucket(bucket).await?;
                Err(CoreError::NoSuchUpload)
            }
        }
    }

    fn check_part_number(part_number: i32) -> CoreResult<()> {
        if !(1..=10_000).contains(&part_number) {
            return Err(CoreError::InvalidArgument(
                "part number must be an integer between 1 and 10000".into(),
            ));
        }
        Ok(())
    }

    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: IncomingBody,
    ) -> CoreResult<PartRecord> {
        Self::check_part_number(part_number)?;
        self.upload(bucket, key, upload_id).await?;
        self.check_room(bucket, body.declared_len).await?;
        let stored = self.store_body(body, false).await?;
        self.commit_part(upload_id, part_number, stored).await
    }

    async fn commit_part(
        &self,
        upload_id: &str,
        part_number: i32,
        stored: StoredBody,
    ) -> CoreResult<PartRecord> {
        let blob_id = match &stored.body {
            ObjectBody::Blobs(segments) if segments.len() == 1 => segments[0].blob.clone(),
            _ => return Err(CoreError::Internal("a part must be one blob".into())),
        };
        let part = PartRecord {
            part_number,
            blob_id,
            size: stored.digests.size as i64,
            etag: stored.digests.etag_hex(),
            last_modified_ms: now_ms(),
        };
        let result = self
            .meta
            .apply(Mutation::PutPart {
                upload_id: upload_id.to_owned(),
                part: part.clone(),
            })
            .await;
        if let Err(e) = result {
            if e.is_refusal() {
                self.discard(&stored.body).await;
            }
            return Err(e.into());
        }
        self.sweep.notify_one();
        Ok(part)
    }

    /// UploadPartCopy: the (range of the) source object becomes a new part.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        source_bucket: &str,
        source_key: &str,
        source_conditions: &ReadConditions,
        range: Option<(u64, u64)>,
    ) -> CoreResult<(PartRecord, ObjectRecord)> {
        Self::check_part_number(part_number)?;
        self.upload(bucket, key, upload_id).await?;
        let source = self.head_object(source_bucket, source_key).await?;
        source_conditions.check(&source, true)?;
        let size = source.size as u64;
        let (start, end) = match range {
            // x-amz-copy-source-range is inclusive and must lie inside the object.
            Some((first, last)) if first <= last && last < size => (first, last + 1),
            Some(_) => return Err(CoreError::InvalidRange),
            None => (0, size),
        };
        let stream = self.open_body(&source.body, start, end).await?;
        let incoming = IncomingBody {
            stream,
            declared_len: Some(end - start),
            md5: true,
            checksums: Vec::new(),
            verify: Box::new(|_| Ok(())),
        };
        let stored = self.store_body(incoming, false).await?;
        let part = self.commit_part(upload_id, part_number, stored).await?;
        Ok((part, source))
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
        condition: PutCondition,
    ) -> CoreResult<ObjectRecord> {
        self.upload(bucket, key, upload_id).await?;
        let outcome = self
            .meta
            .apply(Mutation::CompleteUpload {
                upload_id: upload_id.to_owned(),
                parts,
                min_part_size: self.settings.min_part_size as i64,
                now_ms: now_ms(),
                condition,
            })
            .await?;
        self.sweep.notify_one();
        match outcome {
            MutationOutcome::Completed(object) => Ok(*object),
            other => Err(CoreError::Internal(format!("unexpected outcome {other:?}"))),
        }
    }

    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> CoreResult<()> {
        self.upload(bucket, key, upload_id).await?;
        self.meta
            .apply(Mutation::AbortUpload {
                upload_id: upload_id.to_owned(),
            })
            .await?;
        self.sweep.notify_one();
        Ok(())
    }

    /// Parts after `after_part`, at most `max`; the flag says more remain.
    pub async fn list_parts(
        &self,
        upload_id: &str,
        after_part: i32,
        max: usize,
    ) -> CoreResult<(Vec<PartRecord>, bool)> {
        let mut parts = self
            .meta
            .list_parts(upload_id, after_part, max as i64 + 1)
            .await?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok((parts, truncated))
    }

    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        max: usize,
    ) -> CoreResult<(Vec<UploadRecord>, bool)> {
        self.bucket(bucket).await?;
        let mut uploads = self
            .meta
            .list_uploads(bucket, prefix, key_marker, upload_id_marker, max as i64 + 1)
            .await?;
        let truncated = max > 0 && uploads.len() > max;
        uploads.truncate(max);
        Ok((uploads, truncated))
    }
}
