//! Multipart uploads: creating one, storing its parts (each part a blob
//! with one reference), completing it into an object that adopts the chosen
//! parts' blobs without copying them, and aborting it.

use md5::{Digest, Md5};
use sqlx::{AnyConnection, Row};

use super::objects::{BlobRefs, add_blob, put_object, release_blob, require_bucket};
use super::queries::{decode_attrs, encode_attrs, part_from_row};
use super::{
    BlobSegment, MetaError, MetaResult, MutationOutcome, ObjectAttrs, ObjectBody, ObjectRecord,
    PartRecord, PutCondition, UploadRecord,
};

pub(super) async fn create_upload(
    conn: &mut AnyConnection,
    upload: &UploadRecord,
) -> MetaResult<MutationOutcome> {
    require_bucket(conn, &upload.bucket).await?;
    sqlx::query(
        "INSERT INTO uploads (upload_id, bucket, key, initiated_ms, attrs) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&upload.upload_id)
    .bind(&upload.bucket)
    .bind(&upload.key)
    .bind(upload.initiated_ms)
    .bind(encode_attrs(&upload.attrs))
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}

async fn require_upload(
    conn: &mut AnyConnection,
    upload_id: &str,
) -> MetaResult<(String, String, ObjectAttrs)> {
    let row = sqlx::query("SELECT bucket, key, attrs FROM uploads WHERE upload_id = $1")
        .bind(upload_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(MetaError::NoSuchUpload)?;
    let attrs: String = row.try_get("attrs")?;
    Ok((
        row.try_get("bucket")?,
        row.try_get("key")?,
        decode_attrs(&attrs)?,
    ))
}

pub(super) async fn put_part(
    conn: &mut AnyConnection,
    upload_id: &str,
    part: &PartRecord,
) -> MetaResult<MutationOutcome> {
    require_upload(conn, upload_id).await?;
    let old =
        sqlx::query("SELECT blob_id FROM upload_parts WHERE upload_id = $1 AND part_number = $2")
            .bind(upload_id)
            .bind(i64::from(part.part_number))
            .fetch_optional(&mut *conn)
            .await?;
    add_blob(conn, &part.blob_id, part.size, part.last_modified_ms).await?;
    sqlx::query(
        "INSERT INTO upload_parts (upload_id, part_number, blob_id, size, etag, last_modified_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (upload_id, part_number) DO UPDATE SET \
         blob_id = excluded.blob_id, size = excluded.size, etag = excluded.etag, \
         last_modified_ms = excluded.last_modified_ms",
    )
    .bind(upload_id)
    .bind(i64::from(part.part_number))
    .bind(&part.blob_id)
    .bind(part.size)
    .bind(&part.etag)
    .bind(part.last_modified_ms)
    .execute(&mut *conn)
    .await?;
    if let Some(row) = old {
        let blob: String = row.try_get("blob_id")?;
        release_blob(conn, &blob, part.last_modified_ms).await?;
    }
    Ok(MutationOutcome::Done)
}

async fn upload_parts(conn: &mut AnyConnection, upload_id: &str) -> MetaResult<Vec<PartRecord>> {
    let rows = sqlx::query("SELECT * FROM upload_parts WHERE upload_id = $1 ORDER BY part_number")
        .bind(upload_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(part_from_row).collect()
}

async fn drop_upload(conn: &mut AnyConnection, upload_id: &str) -> MetaResult<()> {
    sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The S3 multipart ETag: MD5 of the concatenated binary part MD5s, `-N`.
fn multipart_etag(parts: &[&PartRecord]) -> MetaResult<String> {
    let mut hasher = Md5::new();
    for part in parts {
        let digest = hex::decode(&part.etag)
            .map_err(|_| MetaError::Corrupt(format!("part etag {}", part.etag)))?;
        hasher.update(&digest);
    }
    Ok(format!(
        "{}-{}",
        hex::encode(hasher.finalize()),
        parts.len()
    ))
}

pub(super) async fn complete_upload(
    conn: &mut AnyConnection,
    upload_id: &str,
    requested: &[(i32, String)],
    min_part_size: i64,
    now_ms: i64,
    condition: &PutCondition,
) -> MetaResult<MutationOutcome> {
    let (bucket, key, attrs) = require_upload(conn, upload_id).await?;
    let stored = upload_parts(conn, upload_id).await?;
    if requested.is_empty() {
        return Err(MetaError::InvalidPart("the part list is empty".into()));
    }
    let mut chosen: Vec<&PartRecord> = Vec::with_capacity(requested.len());
    let mut previous = 0;
    for (number, etag) in requested {
        if *number <= previous {
            return Err(MetaError::InvalidPartOrder);
        }
        previous = *number;
        let part = stored
            .iter()
            .find(|p| p.part_number == *number)
            .ok_or_else(|| MetaError::InvalidPart(format!("part {number} was not uploaded")))?;
        if part.etag != etag.trim_matches('"') {
            return Err(MetaError::InvalidPart(format!(
                "part {number} has a different ETag"
            )));
        }
        chosen.push(part);
    }
    for part in &chosen[..chosen.len() - 1] {
        if part.size < min_part_size {
            return Err(MetaError::EntityTooSmall(part.part_number));
        }
    }
    let object = ObjectRecord {
        bucket,
        key,
        size: chosen.iter().map(|p| p.size).sum(),
        etag: multipart_etag(&chosen)?,
        last_modified_ms: now_ms,
        attrs,
        body: ObjectBody::Blobs(
            chosen
                .iter()
                .map(|p| BlobSegment {
                    blob: p.blob_id.clone(),
                    len: p.size,
                })
                .collect(),
        ),
        parts_count: Some(chosen.len() as i32),
    };
    put_object(conn, &object, condition, BlobRefs::Adopt).await?;
    for part in &stored {
        if !chosen.iter().any(|c| c.part_number == part.part_number) {
            release_blob(conn, &part.blob_id, now_ms).await?;
        }
    }
    drop_upload(conn, upload_id).await?;
    Ok(MutationOutcome::Completed(Box::new(object)))
}

pub(super) async fn abort_upload(
    conn: &mut AnyConnection,
    upload_id: &str,
) -> MetaResult<MutationOutcome> {
    require_upload(conn, upload_id).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    for part in upload_parts(conn, upload_id).await? {
        release_blob(conn, &part.blob_id, now_ms).await?;
    }
    drop_upload(conn, upload_id).await?;
    Ok(MutationOutcome::Done)
}
