//! The group-commit fast path for runs of small (inline) PUTs: instead of
//! three statements per object, a run costs one SELECT for the current
//! rows, one UPDATE per bucket and one multi-row upsert. With SQLite every
//! statement is a round trip to its worker thread, so this is where small
//! PUT throughput comes from. Rules are checked before anything is written,
//! as everywhere in the writer.

use std::collections::{BTreeMap, HashMap};

use sqlx::{AnyConnection, Row};

use super::objects::{check_condition, release_blob, segment_blobs};
use super::queries::{OBJECT_COLUMNS, encode_attrs};
use super::quota::{self, Room};
use super::{MetaError, MetaResult, MutationOutcome, ObjectBody, ObjectRecord, PutCondition};

/// Largest run handled at once: 9 parameters a row stays far below every
/// engine's parameter limit, and SQLite's by-name parameter lookup makes
/// binding cost grow with the square of a statement's parameters.
pub(super) const MAX_RUN: usize = 64;

type Current = HashMap<(String, String), (i64, String, Vec<String>)>;

async fn current_rows(
    conn: &mut AnyConnection,
    run: &[(&ObjectRecord, &PutCondition)],
) -> MetaResult<Current> {
    let clauses: Vec<String> = (0..run.len())
        .map(|i| format!("(bucket = ${} AND key = ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    let sql = format!(
        "SELECT bucket, key, size, etag, segments FROM objects WHERE {}",
        clauses.join(" OR ")
    );
    let mut query = sqlx::query(&sql);
    for (object, _) in run {
        query = query.bind(&object.bucket).bind(&object.key);
    }
    let mut current = Current::new();
    for row in query.fetch_all(&mut *conn).await? {
        let blobs = segment_blobs(row.try_get("segments")?)?;
        current.insert(
            (row.try_get("bucket")?, row.try_get("key")?),
            (row.try_get("size")?, row.try_get("etag")?, blobs),
        );
    }
    Ok(current)
}

/// Stores a run of inline objects with distinct keys; one result per object.
pub(super) async fn put_inline_run(
    conn: &mut AnyConnection,
    run: &[(&ObjectRecord, &PutCondition)],
) -> MetaResult<Vec<MetaResult<MutationOutcome>>> {
    let current = current_rows(conn, run).await?;
    let mut results: Vec<Option<MetaResult<MutationOutcome>>> = run.iter().map(|_| None).collect();
    let mut deltas: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    // Room left under quotas, per bucket, spent in order as objects are accepted.
    let mut rooms: HashMap<&str, Option<Room>> = HashMap::new();
    for (i, (object, condition)) in run.iter().enumerate() {
        let existing = current.get(&(object.bucket.clone(), object.key.clone()));
        if let Err(e) = check_condition(condition, existing) {
            results[i] = Some(Err(e));
            continue;
        }
        if !rooms.contains_key(object.bucket.as_str()) {
            let room = quota::room(conn, &object.bucket).await?;
            rooms.insert(object.bucket.as_str(), room);
        }
        let growth = object.size - existing.map_or(0, |(size, _, _)| *size);
        if let Some(Some(room)) = rooms.get_mut(object.bucket.as_str())
            && growth > 0
        {
            if growth > room.left() {
                results[i] = Some(Err(room.refuse()));
                continue;
            }
            room.used += growth;
        }
        let delta = deltas.entry(object.bucket.as_str()).or_default();
        match existing {
            Some((size, _, _)) => delta.1 += object.size - size,
            None => {
                delta.0 += 1;
                delta.1 += object.size;
            }
        }
    }
    for (bucket, (count, bytes)) in &deltas {
        let updated = sqlx::query(
            "UPDATE buckets SET object_count = object_count + $1, bytes_stored = bytes_stored + $2 \
             WHERE name = $3",
        )
        .bind(*count)
        .bind(*bytes)
        .bind(*bucket)
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() == 0 {
            for (i, (object, _)) in run.iter().enumerate() {
                if object.bucket == *bucket && results[i].is_none() {
                    results[i] = Some(Err(MetaError::NoSuchBucket));
                }
            }
        }
    }
    let accepted: Vec<usize> = (0..run.len()).filter(|i| results[*i].is_none()).collect();
    if !accepted.is_empty() {
        let sql = format!(
            "INSERT INTO objects ({OBJECT_COLUMNS}) VALUES {} \
             ON CONFLICT (bucket, key) DO UPDATE SET size = excluded.size, etag = excluded.etag, \
             last_modified_ms = excluded.last_modified_ms, attrs = excluded.attrs, \
             inline_data = excluded.inline_data, segments = excluded.segments, \
             parts_count = excluded.parts_count",
            super::value_rows(accepted.len(), 9)
        );
        let mut query = sqlx::query(&sql);
        for i in &accepted {
            let object = run[*i].0;
            let ObjectBody::Inline(data) = &object.body else {
                return Err(MetaError::Corrupt(
                    "a non-inline object in an inline run".into(),
                ));
            };
            query = query
                .bind(object.bucket.clone())
                .bind(object.key.clone())
                .bind(object.size)
                .bind(object.etag.clone())
                .bind(object.last_modified_ms)
                .bind(encode_attrs(&object.attrs))
                .bind(Some(data.to_vec()))
                .bind(None::<String>)
                .bind(None::<i64>);
        }
        query.execute(&mut *conn).await?;
        for i in &accepted {
            let object = run[*i].0;
            if let Some((_, _, blobs)) = current.get(&(object.bucket.clone(), object.key.clone())) {
                for blob in blobs {
                    release_blob(conn, blob, object.last_modified_ms).await?;
                }
            }
            results[*i] = Some(Ok(MutationOutcome::Done));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(MetaError::WriterStopped)))
        .collect())
}
