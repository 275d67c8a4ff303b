//! What a writer batch locks before it writes, when several nodes share one
//! PostgreSQL or CockroachDB database. Every object, upload and quota
//! mutation reads then writes rows of one bucket (the current object, the
//! bucket's counters, its quota, the owner's total), so a batch first takes
//! the rows of every bucket it touches with `SELECT ... FOR UPDATE`, in name
//! order, and then the rows of the users whose totals it may check or
//! change, in id order. Writers of the same bucket on other nodes wait for
//! the commit, and then read what it wrote; with one order of locks
//! everywhere no two batches wait on each other. The bucket row is the one
//! that every object change updates anyway (its counters), so taking it
//! first costs no concurrency that the counters did not already cost.
//!
//! Batches that may write pool events first take the row of the counter
//! that numbers events (before any other lock: one order), so event ids are
//! given in commit order on every engine, CockroachDB included.
//!
//! SQLite has one writer at a time, so nothing is locked there.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row};

use super::MetaResult;
use super::mutations::Mutation;

/// The rows one batch locks.
#[derive(Debug, Default)]
struct LockSet {
    buckets: BTreeSet<String>,
    users: BTreeSet<String>,
    uploads: BTreeSet<String>,
}

impl LockSet {
    fn of(mutations: &[&Mutation]) -> Self {
        let mut set = Self::default();
        for mutation in mutations {
            match mutation {
                Mutation::PutObject { object, .. } | Mutation::CopyObject { object, .. } => {
                    set.buckets.insert(object.bucket.clone());
                }
                // A thumbnail takes its turn with deletes of its object,
                // so it is never stored after the delete dropped it.
                Mutation::DeleteObject { bucket, .. }
                | Mutation::SetBucketQuota { bucket, .. }
                | Mutation::PutThumbnail { bucket, .. } => {
                    set.buckets.insert(bucket.clone());
                }
                Mutation::DeleteBucket { name } => {
                    set.buckets.insert(name.clone());
                }
                Mutation::CreateUpload { upload } => {
                    set.buckets.insert(upload.bucket.clone());
                }
                Mutation::PutPart { upload_id, .. }
                | Mutation::CompleteUpload { upload_id, .. }
                | Mutation::AbortUpload { upload_id } => {
                    set.uploads.insert(upload_id.clone());
                }
                Mutation::CreateBucket { owner_id, .. } => {
                    set.users.insert(owner_id.clone());
                }
                Mutation::DeleteUser { user_id } | Mutation::SetUserQuota { user_id, .. } => {
                    set.users.insert(user_id.clone());
                }
                _ => {}
            }
        }
        set
    }
}

/// Whether the connection is to a database shared by several nodes (that
/// is, not SQLite), where read-then-write needs row locks.
pub(super) fn shared_database(conn: &AnyConnection) -> bool {
    conn.backend_name() != "SQLite"
}

/// ` FOR UPDATE` on a shared database, nothing on SQLite (which has no
/// such clause and needs none).
pub(super) fn for_update(conn: &AnyConnection) -> &'static str {
    if shared_database(conn) {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// Locks the bucket and user rows that the batch's mutations read and then
/// write, in one order on every node.
pub(super) async fn lock_for(conn: &mut AnyConnection, mutations: &[&Mutation]) -> MetaResult<()> {
    let mut set = LockSet::of(mutations);
    // An upload names its bucket; it never moves to another, so reading it
    // before the lock is exact. A missing upload locks nothing and its
    // mutation fails as NoSuchUpload.
    // One query for them all: a batch of parallel part uploads names many.
    if !set.uploads.is_empty() {
        let list: Vec<String> = (1..=set.uploads.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT DISTINCT bucket FROM uploads WHERE upload_id IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for upload_id in &set.uploads {
            query = query.bind(upload_id);
        }
        set.buckets.extend(query.fetch_all(&mut *conn).await?);
    }
    for bucket in &set.buckets {
        let row = sqlx::query(
            "SELECT owner_id, (SELECT quota_bytes FROM users WHERE id = buckets.owner_id) \
             AS user_quota FROM buckets WHERE name = $1 FOR UPDATE",
        )
        .bind(bucket)
        .fetch_optional(&mut *conn)
        .await?;
        // A user quota sums every bucket of the owner: writers of the
        // owner's other buckets must take turns with this one.
        if let Some(row) = row
            && row.try_get::<Option<i64>, _>("user_quota")?.is_some()
        {
            set.users.insert(row.try_get("owner_id")?);
        }
    }
    for user in &set.users {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Takes the turn of writers of pool events (the counter row that numbers
/// them), first thing in a batch that may write events.
pub(super) async fn lock_event_order(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT generation FROM cluster_notices WHERE channel = 'pool_events' FOR UPDATE")
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

/// Whether a database error is a conflict between concurrent transactions
/// (a serialization failure or a deadlock) that a fresh attempt of the same
/// transaction may pass. CockroachDB reports every such conflict as 40001.
pub(super) fn is_conflict(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40001" || code == "40P01")
}
