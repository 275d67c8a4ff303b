//! Read-only queries of buckets, objects, uploads and blobs, and the row
//! encoding and decoding the write side shares (object columns, attributes,
//! parts).

use bytes::Bytes;
use sqlx::Row;

use crate::model::StoredTotals;
use sqlx::any::AnyRow;

use super::{
    BucketRecord, MetaError, MetaResult, MetaStore, ObjectAttrs, ObjectBody, ObjectRecord,
    ObjectSummary, PartRecord, UploadRecord,
};

/// Columns are always named: `SELECT *` would pull in boolean columns,
/// which the `Any` driver cannot decode from SQLite.
const BUCKET_COLUMNS: &str = "name, owner_id, created_ms, object_count, bytes_stored, \
     CASE WHEN public_read THEN 1 ELSE 0 END AS public_read";

pub(super) const OBJECT_COLUMNS: &str =
    "bucket, key, size, etag, last_modified_ms, attrs, inline_data, segments, parts_count";

pub(super) fn decode_attrs(text: &str) -> MetaResult<ObjectAttrs> {
    serde_json::from_str(text).map_err(|e| MetaError::Corrupt(format!("attrs: {e}")))
}

pub(super) fn encode_attrs(attrs: &ObjectAttrs) -> String {
    // Serializing plain strings and maps cannot fail.
    serde_json::to_string(attrs).unwrap_or_else(|_| "{}".to_owned())
}

pub(super) fn object_from_row(row: &AnyRow) -> MetaResult<ObjectRecord> {
    let inline: Option<Vec<u8>> = row.try_get("inline_data")?;
    let segments: Option<String> = row.try_get("segments")?;
    let body = match (inline, segments) {
        (Some(data), _) => ObjectBody::Inline(Bytes::from(data)),
        (None, Some(text)) => ObjectBody::Blobs(
            serde_json::from_str(&text)
                .map_err(|e| MetaError::Corrupt(format!("segments: {e}")))?,
        ),
        (None, None) => ObjectBody::Inline(Bytes::new()),
    };
    let parts_count: Option<i64> = row.try_get("parts_count")?;
    Ok(ObjectRecord {
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        size: row.try_get("size")?,
        etag: row.try_get("etag")?,
        last_modified_ms: row.try_get("last_modified_ms")?,
        attrs: decode_attrs(&row.try_get::<String, _>("attrs")?)?,
        body,
        parts_count: parts_count.map(|n| n as i32),
    })
}

fn bucket_from_row(row: &AnyRow) -> MetaResult<BucketRecord> {
    Ok(BucketRecord {
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        created_ms: row.try_get("created_ms")?,
        object_count: row.try_get("object_count")?,
        bytes_stored: row.try_get("bytes_stored")?,
        public_read: row.try_get::<i64, _>("public_read")? != 0,
    })
}

fn upload_from_row(row: &AnyRow) -> MetaResult<UploadRecord> {
    Ok(UploadRecord {
        upload_id: row.try_get("upload_id")?,
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        initiated_ms: row.try_get("initiated_ms")?,
        attrs: decode_attrs(&row.try_get::<String, _>("attrs")?)?,
    })
}

pub(super) fn part_from_row(row: &AnyRow) -> MetaResult<PartRecord> {
    let number: i64 = row.try_get("part_number")?;
    Ok(PartRecord {
        part_number: number as i32,
        blob_id: row.try_get("blob_id")?,
        size: row.try_get("size")?,
        etag: row.try_get("etag")?,
        last_modified_ms: row.try_get("last_modified_ms")?,
    })
}

impl MetaStore {
    pub async fn count_users(&self) -> MetaResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn bucket(&self, name: &str) -> MetaResult<Option<BucketRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(bucket_from_row).transpose()
    }

    pub async fn buckets(&self) -> MetaResult<Vec<BucketRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {BUCKET_COLUMNS} FROM buckets ORDER BY name"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(bucket_from_row).collect()
    }

    pub async fn stored_totals(&self) -> MetaResult<StoredTotals> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(object_count), 0) AS BIGINT) AS objects, \
             CAST(COALESCE(SUM(bytes_stored), 0) AS BIGINT) AS bytes FROM buckets",
        )
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(StoredTotals {
            objects: row.try_get("objects")?,
            bytes: row.try_get("bytes")?,
        })
    }

    pub async fn object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>> {
        let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = $1 AND key = $2");
        let row = sqlx::query(&sql)
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(object_from_row).transpose()
    }

    /// Up to `limit` objects whose key starts with `prefix` and sorts after
    /// `after`, in byte order.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: i64,
    ) -> MetaResult<Vec<ObjectSummary>> {
        // `key >= prefix` lets the primary key index seek; the prefix test
        // itself is done here, where it cannot be confused by LIKE wildcards.
        let rows = sqlx::query(
            "SELECT key, size, etag, last_modified_ms FROM objects \
             WHERE bucket = $1 AND key > $2 AND key >= $3 ORDER BY key LIMIT $4",
        )
        .bind(bucket)
        .bind(after)
        .bind(prefix)
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("key")?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(ObjectSummary {
                key,
                size: row.try_get("size")?,
                etag: row.try_get("etag")?,
                last_modified_ms: row.try_get("last_modified_ms")?,
            });
        }
        Ok(out)
    }

    pub async fn upload(&self, upload_id: &str) -> MetaResult<Option<UploadRecord>> {
        let row = sqlx::query("SELECT * FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    /// Uploads idle since `before_ms`: started before it and with no part
    /// stored since, oldest first (the abandoned ones the sweeper aborts).
    pub async fn idle_uploads(&self, before_ms: i64, limit: i64) -> MetaResult<Vec<UploadRecord>> {
        let rows = sqlx::query(
            "SELECT u.* FROM uploads u WHERE u.initiated_ms < $1 AND NOT EXISTS \
             (SELECT 1 FROM upload_parts p WHERE p.upload_id = u.upload_id \
             AND p.last_modified_ms >= $1) ORDER BY u.initiated_ms LIMIT $2",
        )
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(upload_from_row).collect()
    }

    /// Uploads in progress in a bucket, ordered by key then upload id, after
    /// the (`key_marker`, `upload_id_marker`) position; without an upload id
    /// marker, after every upload of `key_marker`.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: i64,
    ) -> MetaResult<Vec<UploadRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM uploads WHERE bucket = $1 AND key >= $2 \
             AND (key > $3 OR (key = $3 AND $4 <> '' AND upload_id > $4)) \
             ORDER BY key, upload_id LIMIT $5",
        )
        .bind(bucket)
        .bind(prefix)
        .bind(key_marker)
        .bind(upload_id_marker)
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let upload = upload_from_row(row)?;
            if !upload.key.starts_with(prefix) {
                break;
            }
            out.push(upload);
        }
        Ok(out)
    }

    pub async fn list_parts(
        &self,
        upload_id: &str,
        after_part: i32,
        limit: i64,
    ) -> MetaResult<Vec<PartRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM upload_parts WHERE upload_id = $1 AND part_number > $2 \
             ORDER BY part_number LIMIT $3",
        )
        .bind(upload_id)
        .bind(i64::from(after_part))
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(part_from_row).collect()
    }

    /// Which of these blob ids the metadata knows: referenced, or released
    /// and waiting out the trash delay (which the trash sweep handles).
    pub async fn known_blobs(&self, ids: &[String]) -> MetaResult<Vec<String>> {
        let mut live = Vec::new();
        for chunk in ids.chunks(200) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let list = placeholders.join(",");
            let sql = format!(
                "SELECT id FROM blobs WHERE id IN ({list}) \
                 UNION SELECT id FROM blob_trash WHERE id IN ({list})"
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(&mut *self.conn().await?).await? {
                live.push(row.try_get("id")?);
            }
        }
        Ok(live)
    }

    /// Blobs released by committed changes before `before_ms`, oldest first.
    pub async fn trashed_blobs(&self, before_ms: i64, limit: i64) -> MetaResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM blob_trash WHERE queued_ms <= $1 ORDER BY queued_ms LIMIT $2",
        )
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    pub async fn forget_trashed(&self, ids: &[String]) -> MetaResult<()> {
        for id in ids {
            sqlx::query("DELETE FROM blob_trash WHERE id = $1")
                .bind(id)
                .execute(&mut *self.conn().await?)
                .await?;
        }
        Ok(())
    }
}
