//! Object rows and what moves with them: buckets (create, delete, the
//! object and byte counters), putting and deleting an object, preconditions,
//! and blob reference counts (a released blob goes to the trash for the
//! sweeper). The writer, the multipart uploads, the small-PUT fast path and
//! pools all store objects through these functions, inside the writer's
//! transaction.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::queries::{OBJECT_COLUMNS, encode_attrs};
use super::quota;
use super::{
    BlobSegment, MetaError, MetaResult, MutationOutcome, ObjectBody, ObjectRecord, PutCondition,
    value_rows,
};

/// How an object's blob segments relate to existing blob rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BlobRefs {
    /// Newly written blobs: insert them with one reference.
    Fresh,
    /// Blobs of another object (CopyObject): add a reference each.
    Share,
    /// Blobs already counted (parts of a completed upload).
    Adopt,
}

/// Creates a bucket; refused if the name is taken, saying by whom.
pub(super) async fn create_bucket(
    conn: &mut AnyConnection,
    name: &str,
    owner_id: &str,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    // Insert first: two nodes creating the same name at once both reach
    // this statement, and the unique name decides without an error.
    let created = sqlx::query(
        "INSERT INTO buckets (name, owner_id, created_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(owner_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if created.rows_affected() > 0 {
        return Ok(MutationOutcome::Done);
    }
    let owner: String = sqlx::query_scalar("SELECT owner_id FROM buckets WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
    Err(if owner == owner_id {
        MetaError::BucketAlreadyOwnedByYou
    } else {
        MetaError::BucketAlreadyExists
    })
}

/// Deletes a bucket with no objects and no uploads in progress.
pub(super) async fn delete_bucket(
    conn: &mut AnyConnection,
    name: &str,
) -> MetaResult<MutationOutcome> {
    require_bucket(conn, name).await?;
    let busy = sqlx::query(
        "SELECT 1 AS x FROM objects WHERE bucket = $1 \
         UNION ALL SELECT 1 AS x FROM uploads WHERE bucket = $1 LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    if busy.is_some() {
        return Err(MetaError::BucketNotEmpty);
    }
    sqlx::query("DELETE FROM buckets WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(MutationOutcome::Done)
}

/// Refuses with `NoSuchBucket` unless the bucket exists.
pub(super) async fn require_bucket(conn: &mut AnyConnection, name: &str) -> MetaResult<()> {
    let found = sqlx::query("SELECT 1 AS x FROM buckets WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    found.map(|_| ()).ok_or(MetaError::NoSuchBucket)
}

/// The blob ids of a `segments` column.
fn segment_blobs(segments: Option<String>) -> MetaResult<Vec<String>> {
    match segments {
        Some(text) => Ok(serde_json::from_str::<Vec<BlobSegment>>(&text)
            .map_err(|e| MetaError::Corrupt(format!("segments: {e}")))?
            .into_iter()
            .map(|s| s.blob)
            .collect()),
        None => Ok(Vec::new()),
    }
}

/// What a write needs to know of the object it replaces or deletes.
#[derive(Debug)]
pub(super) struct StoredObject {
    pub size: i64,
    pub etag: String,
    pub blobs: Vec<String>,
}

impl StoredObject {
    /// Columns the row was selected with: `size, etag, segments`.
    pub(super) fn from_row(row: &AnyRow) -> MetaResult<Self> {
        Ok(Self {
            size: row.try_get("size")?,
            etag: row.try_get("etag")?,
            blobs: segment_blobs(row.try_get("segments")?)?,
        })
    }
}

/// The current object, if there is one.
async fn current_object(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
) -> MetaResult<Option<StoredObject>> {
    let row =
        sqlx::query("SELECT size, etag, segments FROM objects WHERE bucket = $1 AND key = $2")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    row.as_ref().map(StoredObject::from_row).transpose()
}

/// Adds to a bucket's object and byte counters; false when there is no
/// such bucket (nothing was written then).
pub(super) async fn count_in_bucket(
    conn: &mut AnyConnection,
    bucket: &str,
    objects: i64,
    bytes: i64,
) -> MetaResult<bool> {
    let counted = sqlx::query(
        "UPDATE buckets SET object_count = object_count + $1, bytes_stored = bytes_stored + $2 \
         WHERE name = $3",
    )
    .bind(objects)
    .bind(bytes)
    .bind(bucket)
    .execute(&mut *conn)
    .await?;
    Ok(counted.rows_affected() > 0)
}

/// Columns of an object row, as listed in `OBJECT_COLUMNS`.
const OBJECT_ROW_VALUES: usize = 9;

/// Inserts or replaces object rows in one statement. Every object row is
/// written here, so a column is never set on one path and missed on another.
pub(super) async fn upsert_objects(
    conn: &mut AnyConnection,
    objects: &[&ObjectRecord],
) -> MetaResult<()> {
    if objects.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO objects ({OBJECT_COLUMNS}) VALUES {} \
         ON CONFLICT (bucket, key) DO UPDATE SET size = excluded.size, etag = excluded.etag, \
         last_modified_ms = excluded.last_modified_ms, attrs = excluded.attrs, \
         inline_data = excluded.inline_data, segments = excluded.segments, \
         parts_count = excluded.parts_count",
        value_rows(objects.len(), OBJECT_ROW_VALUES)
    );
    let mut query = sqlx::query(&sql);
    for object in objects {
        let (inline, segments) = match &object.body {
            ObjectBody::Inline(data) => (Some(data.to_vec()), None),
            ObjectBody::Blobs(segments) => (
                None,
                Some(
                    serde_json::to_string(segments)
                        .map_err(|e| MetaError::Corrupt(e.to_string()))?,
                ),
            ),
        };
        query = query
            .bind(&object.bucket)
            .bind(&object.key)
            .bind(object.size)
            .bind(&object.etag)
            .bind(object.last_modified_ms)
            .bind(encode_attrs(&object.attrs))
            .bind(inline)
            .bind(segments)
            .bind(object.parts_count.map(i64::from));
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Drops one reference to a blob; a blob nobody references goes to the trash
/// for the sweeper, after this transaction commits.
pub(super) async fn release_blob(
    conn: &mut AnyConnection,
    blob: &str,
    now_ms: i64,
) -> MetaResult<()> {
    sqlx::query("UPDATE blobs SET refs = refs - 1 WHERE id = $1")
        .bind(blob)
        .execute(&mut *conn)
        .await?;
    let gone = sqlx::query("DELETE FROM blobs WHERE id = $1 AND refs <= 0")
        .bind(blob)
        .execute(&mut *conn)
        .await?;
    if gone.rows_affected() > 0 {
        sqlx::query(
            "INSERT INTO blob_trash (id, queued_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(blob)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Records a just-written blob with its one reference.
pub(super) async fn add_blob(
    conn: &mut AnyConnection,
    blob: &str,
    size: i64,
    now_ms: i64,
) -> MetaResult<()> {
    sqlx::query("INSERT INTO blobs (id, size, refs, created_ms) VALUES ($1, $2, 1, $3)")
        .bind(blob)
        .bind(size)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether a conditional write may replace `current`.
pub(super) fn check_condition(
    condition: &PutCondition,
    current: Option<&StoredObject>,
) -> MetaResult<()> {
    match (condition, current) {
        (PutCondition::Always, _) => Ok(()),
        (PutCondition::IfAbsent, None) => Ok(()),
        (PutCondition::IfEtag(want), Some(current)) if *want == current.etag => Ok(()),
        (PutCondition::IfEtag(_), None) => Err(MetaError::NoSuchKey),
        _ => Err(MetaError::PreconditionFailed),
    }
}

/// Stores an object in place of the current one (if `condition` allows and
/// the quotas have room), counts it in its bucket, takes references on its
/// blobs as `refs` says and releases the blobs the old version no longer
/// shares.
pub(super) async fn put_object(
    conn: &mut AnyConnection,
    object: &ObjectRecord,
    condition: &PutCondition,
    refs: BlobRefs,
) -> MetaResult<MutationOutcome> {
    let current = current_object(conn, &object.bucket, &object.key).await?;
    check_condition(condition, current.as_ref())?;
    let now_ms = object.last_modified_ms;
    if let (ObjectBody::Blobs(segments), BlobRefs::Share) = (&object.body, refs) {
        // The source may be in a bucket that another node is changing: lock
        // each blob row, so that it cannot be released before this commits.
        let sql = format!(
            "SELECT 1 AS x FROM blobs WHERE id = $1{}",
            super::row_locks::for_update(conn)
        );
        for segment in segments {
            let live = sqlx::query(&sql)
                .bind(&segment.blob)
                .fetch_optional(&mut *conn)
                .await?;
            if live.is_none() {
                return Err(MetaError::SourceChanged);
            }
        }
    }
    let (added, old_size) = match &current {
        Some(current) => (0_i64, current.size),
        None => (1, 0),
    };
    quota::check_growth(conn, &object.bucket, object.size - old_size).await?;
    // The first write doubles as the bucket check: no row, no bucket, and
    // nothing has been written yet.
    if !count_in_bucket(conn, &object.bucket, added, object.size - old_size).await? {
        return Err(MetaError::NoSuchBucket);
    }
    if let ObjectBody::Blobs(segments) = &object.body {
        for segment in segments {
            match refs {
                BlobRefs::Fresh => add_blob(conn, &segment.blob, segment.len, now_ms).await?,
                BlobRefs::Share => {
                    let shared = sqlx::query("UPDATE blobs SET refs = refs + 1 WHERE id = $1")
                        .bind(&segment.blob)
                        .execute(&mut *conn)
                        .await?;
                    if shared.rows_affected() != 1 {
                        // Checked above in this transaction, so only a
                        // concurrent writer can get here: abort it all.
                        return Err(MetaError::Corrupt(format!(
                            "blob {} vanished during a copy",
                            segment.blob
                        )));
                    }
                }
                BlobRefs::Adopt => {}
            }
        }
    }
    upsert_objects(conn, &[object]).await?;
    if let Some(current) = &current {
        // The old version's references all go, except where a completed
        // upload adopts what it already holds. A copy onto a key that
        // already shares the source's blobs took a reference of its own
        // above, so it releases the old one like any other.
        let kept: Vec<&str> = match (&object.body, refs) {
            (ObjectBody::Blobs(segments), BlobRefs::Adopt) => {
                segments.iter().map(|s| s.blob.as_str()).collect()
            }
            _ => Vec::new(),
        };
        for blob in current.blobs.iter().filter(|b| !kept.contains(&b.as_str())) {
            release_blob(conn, blob, now_ms).await?;
        }
    }
    Ok(MutationOutcome::Done)
}

/// Deletes an object and releases its blobs; `Deleted(false)` if there was
/// none.
pub(super) async fn delete_object(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
) -> MetaResult<MutationOutcome> {
    require_bucket(conn, bucket).await?;
    let Some(current) = current_object(conn, bucket, key).await? else {
        return Ok(MutationOutcome::Deleted(false));
    };
    sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2")
        .bind(bucket)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    super::thumbnails::drop_for(conn, bucket, key).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    for blob in &current.blobs {
        release_blob(conn, blob, now_ms).await?;
    }
    count_in_bucket(conn, bucket, -1, -current.size).await?;
    Ok(MutationOutcome::Deleted(true))
}
