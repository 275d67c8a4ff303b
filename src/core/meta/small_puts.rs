//! The group-commit fast path for runs of small (inline) PUTs: instead of
//! three statements per object, a run costs one SELECT for the current
//! rows, one UPDATE per bucket and one multi-row upsert. With SQLite every
//! statement is a round trip to its worker thread, so this is where small
//! PUT throughput comes from. Rules are checked before anything is written,
//! as everywhere in the writer.

use std::collections::{BTreeMap, HashMap};

use sqlx::{AnyConnection, Row};

use super::objects::{
    StoredObject, check_condition, count_in_bucket, release_blob, upsert_objects,
};
use super::quota::{self, Room};
use super::{MetaError, MetaResult, MutationOutcome, ObjectBody, ObjectRecord, PutCondition};

/// Largest run handled at once: 9 parameters a row stays far below every
/// engine's parameter limit, and SQLite's by-name parameter lookup makes
/// binding cost grow with the square of a statement's parameters.
pub(super) const MAX_RUN: usize = 64;

/// The stored objects a run replaces, by (bucket, key).
type Current = HashMap<(String, String), StoredObject>;

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
        current.insert(
            (row.try_get("bucket")?, row.try_get("key")?),
            StoredObject::from_row(&row)?,
        );
    }
    Ok(current)
}

/// Stores a run of inline objects with distinct keys; one result per object.
pub(super) async fn put_inline_run(
    conn: &mut AnyConnection,
    run: &[(&ObjectRecord, &PutCondition)],
) -> MetaResult<Vec<MetaResult<MutationOutcome>>> {
    // Blob references are not counted here: a blob object would be stored
    // pointing at blobs no row accounts for.
    if run
        .iter()
        .any(|(object, _)| !matches!(object.body, ObjectBody::Inline(_)))
    {
        return Err(MetaError::Corrupt(
            "a non-inline object in an inline run".into(),
        ));
    }
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
        let growth = object.size - existing.map_or(0, |existing| existing.size);
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
            Some(existing) => delta.1 += object.size - existing.size,
            None => {
                delta.0 += 1;
                delta.1 += object.size;
            }
        }
    }
    for (bucket, (count, bytes)) in &deltas {
        if !count_in_bucket(conn, bucket, *count, *bytes).await? {
            for (i, (object, _)) in run.iter().enumerate() {
                if object.bucket == *bucket && results[i].is_none() {
                    results[i] = Some(Err(MetaError::NoSuchBucket));
                }
            }
        }
    }
    let accepted: Vec<usize> = (0..run.len()).filter(|i| results[*i].is_none()).collect();
    let objects: Vec<&ObjectRecord> = accepted.iter().map(|i| run[*i].0).collect();
    // One statement for every row: per-row statements are what this path
    // exists to avoid.
    upsert_objects(conn, &objects).await?;
    for i in &accepted {
        let object = run[*i].0;
        if let Some(existing) = current.get(&(object.bucket.clone(), object.key.clone())) {
            for blob in &existing.blobs {
                release_blob(conn, blob, object.last_modified_ms).await?;
            }
        }
        results[*i] = Some(Ok(MutationOutcome::Done));
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(MetaError::WriterStopped)))
        .collect())
}
