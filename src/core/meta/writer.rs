//! The group-commit writer. Every change to metadata is a [`Mutation`] sent
//! to a writer task, which drains whatever is queued, applies the mutations
//! inside one transaction, commits once, and only then answers every
//! caller. Each mutation checks its rules before its first write, so a
//! refused mutation leaves the shared transaction as it found it. Under load many PUTs share one commit (one
//! fsync of the SQLite WAL), which is where small-object speed comes from;
//! durability is never weakened.

use std::sync::Arc;

use md5::{Digest, Md5};
use sqlx::{AnyConnection, AnyPool, Connection, Row};

use tokio::sync::{Mutex, mpsc, oneshot};

use super::accounts;
use super::queries::{OBJECT_COLUMNS, encode_attrs, part_from_row};
use super::small_puts;
use super::{
    MetaError, MetaResult, ObjectAttrs, ObjectBody, ObjectRecord, PartRecord, UploadRecord,
    UserRecord,
};
use crate::model::{AccountRecord, GrantLevel, KeyRecord, PutCondition};

/// Most mutations one transaction carries.
const MAX_BATCH: usize = 256;

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

/// One change to metadata.
#[derive(Debug)]
pub enum Mutation {
    EnsureUser {
        user: UserRecord,
        access_key: String,
        secret: String,
        password_hash: String,
        now_ms: i64,
    },
    CreateBucket {
        name: String,
        owner_id: String,
        now_ms: i64,
    },
    DeleteBucket {
        name: String,
    },
    /// Store an object whose blobs (if any) were just written.
    PutObject {
        object: ObjectRecord,
        condition: PutCondition,
    },
    /// Store an object that shares the blobs of an existing one.
    CopyObject {
        object: ObjectRecord,
        condition: PutCondition,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    CreateUpload {
        upload: UploadRecord,
    },
    PutPart {
        upload_id: String,
        part: PartRecord,
    },
    CompleteUpload {
        upload_id: String,
        /// (part number, ETag) as the client listed them.
        parts: Vec<(i32, String)>,
        min_part_size: i64,
        now_ms: i64,
        condition: PutCondition,
    },
    AbortUpload {
        upload_id: String,
    },
    CreateUser {
        account: AccountRecord,
    },
    SetUserDisabled {
        user_id: String,
        disabled_ms: Option<i64>,
    },
    SetPassword {
        user_id: String,
        password_hash: String,
    },
    DeleteUser {
        user_id: String,
    },
    CreateKey {
        key: KeyRecord,
        secret: String,
    },
    DeleteKey {
        access_key: String,
        user_id: String,
    },
    SetPublicRead {
        bucket: String,
        public_read: bool,
    },
    CreateSession {
        token_hash: String,
        user_id: String,
        created_ms: i64,
        expires_ms: i64,
    },
    /// Revokes the session `only` (or all of the user's), except `keep`.
    RevokeSessions {
        user_id: String,
        only: Option<String>,
        keep: Option<String>,
        now_ms: i64,
    },
    /// Appends audit records and adds their traffic to the daily usage.
    AppendAudit {
        records: Vec<super::AuditRecord>,
    },
    /// Drops audit and usage rows older than this.
    ExpireAudit {
        before_ms: i64,
    },
    SetUserQuota {
        user_id: String,
        bytes: Option<i64>,
    },
    SetBucketQuota {
        bucket: String,
        bytes: Option<i64>,
    },
    /// A change to pools, their members, groups or contributions.
    Pool(Box<super::pools::PoolMutation>),
    /// Shares a bucket with a user (`None` takes the grant back).
    SetGrant {
        bucket: String,
        user_id: String,
        level: Option<GrantLevel>,
    },
}

#[derive(Debug)]
pub enum MutationOutcome {
    Done,
    /// DeleteObject: whether an object was there.
    Deleted(bool),
    /// CompleteUpload: the object it created.
    Completed(Box<ObjectRecord>),
    Pool(super::pools::PoolOutcome),
}

struct Job {
    mutation: Mutation,
    reply: oneshot::Sender<MetaResult<MutationOutcome>>,
}

pub(super) struct Writer {
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Writer {
    /// `event_lock`: batches with pool mutations first take the advisory
    /// lock that orders event writers across nodes (PostgreSQL).
    pub(super) fn start(pool: AnyPool, writers: usize, event_lock: bool) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        let tasks = (0..writers)
            .map(|_| tokio::spawn(run_writer(pool.clone(), rx.clone(), event_lock)))
            .collect();
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
            tasks: Mutex::new(tasks),
        }
    }

    pub(super) async fn submit(&self, mutation: Mutation) -> MetaResult<MutationOutcome> {
        let sender = self
            .tx
            .lock()
            .map_err(|_| MetaError::WriterStopped)?
            .clone()
            .ok_or(MetaError::WriterStopped)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Job { mutation, reply })
            .await
            .map_err(|_| MetaError::WriterStopped)?;
        answer.await.map_err(|_| MetaError::WriterStopped)?
    }

    /// Stops taking mutations and waits until every queued one committed.
    pub(super) async fn shutdown(&self) {
        if let Ok(mut guard) = self.tx.lock() {
            guard.take();
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            let _ = task.await;
        }
    }
}

async fn run_writer(pool: AnyPool, rx: Arc<Mutex<mpsc::Receiver<Job>>>, event_lock: bool) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        commit_batch(&pool, batch, event_lock).await;
    }
}

async fn commit_batch(pool: &AnyPool, batch: Vec<Job>, event_lock: bool) {
    // Every mutation checks its rules before it writes anything, so a rule
    // violation (no such bucket, a failed precondition) leaves the shared
    // transaction untouched and only that caller gets the error. A database
    // error aborts the batch, which is then replayed one mutation per
    // transaction so that it fails alone.
    match apply_together(pool, &batch, event_lock).await {
        Ok(results) => {
            for (job, result) in batch.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        // A failed COMMIT may still have committed (a lost connection): do
        // not replay, and report the outcome as unknown.
        Err(BatchError::Commit(e)) => fail_all(batch, &e, true),
        Err(BatchError::Statement(e)) if batch.len() == 1 => fail_all(batch, &e, false),
        Err(BatchError::Statement(e)) => {
            tracing::warn!(error = %e, size = batch.len(), "batch failed; replaying its mutations one by one");
            for job in batch {
                let result = match apply_together(pool, std::slice::from_ref(&job), event_lock)
                    .await
                {
                    Ok(mut results) => results.pop().unwrap_or(Err(MetaError::WriterStopped)),
                    Err(BatchError::Statement(e)) => Err(MetaError::Database(e)),
                    Err(BatchError::Commit(e)) => Err(MetaError::CommitUncertain(e.to_string())),
                };
                let _ = job.reply.send(result);
            }
        }
    }
}

/// Why a batch transaction failed.
enum BatchError {
    /// A statement failed; the transaction was rolled back.
    Statement(sqlx::Error),
    /// COMMIT itself failed; the transaction may or may not have committed.
    Commit(sqlx::Error),
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        Self::Statement(e)
    }
}

/// Applies the mutations in one transaction.
/// Key of the PostgreSQL advisory lock that orders event writers.
const EVENT_ORDER_LOCK: i64 = 0x6369_7374_6576;

async fn apply_together(
    pool: &AnyPool,
    batch: &[Job],
    event_lock: bool,
) -> Result<Vec<MetaResult<MutationOutcome>>, BatchError> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    // Readers follow pool events by id. Nodes sharing PostgreSQL take turns
    // from the start of a batch that may write events to its commit, so ids
    // become visible in the order they were given and no reader steps past
    // one that commits late. Taken before any row lock: one lock order.
    if event_lock
        && batch
            .iter()
            .any(|job| matches!(job.mutation, Mutation::Pool(_)))
    {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(EVENT_ORDER_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut next = 0;
    while next < batch.len() {
        let run = inline_run(&batch[next..]);
        if run.len() > 1 {
            match small_puts::put_inline_run(&mut tx, &run).await {
                Ok(outcomes) => results.extend(outcomes),
                Err(MetaError::Database(e)) => return Err(e.into()),
                Err(other) => return Err(sqlx::Error::Protocol(other.to_string()).into()),
            }
            next += run.len();
            continue;
        }
        match apply(&mut tx, &batch[next].mutation).await {
            Err(MetaError::Database(e)) => return Err(e.into()),
            other => results.push(other),
        }
        next += 1;
    }
    tx.commit().await.map_err(BatchError::Commit)?;
    Ok(results)
}

/// The leading run of inline PutObjects with distinct keys.
fn inline_run(jobs: &[Job]) -> Vec<(&ObjectRecord, &PutCondition)> {
    let mut run = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for job in jobs.iter().take(small_puts::MAX_RUN) {
        let Mutation::PutObject { object, condition } = &job.mutation else {
            break;
        };
        if !matches!(object.body, ObjectBody::Inline(_))
            || !keys.insert((&object.bucket, &object.key))
        {
            break;
        }
        run.push((object, condition));
    }
    run
}

fn fail_all(batch: Vec<Job>, error: &sqlx::Error, uncertain: bool) {
    tracing::error!(%error, uncertain, "metadata commit failed");
    for job in batch {
        let reply = if uncertain {
            MetaError::CommitUncertain(error.to_string())
        } else {
            MetaError::Database(sqlx::Error::Protocol(format!("commit failed: {error}")))
        };
        let _ = job.reply.send(Err(reply));
    }
}

async fn apply(conn: &mut AnyConnection, mutation: &Mutation) -> MetaResult<MutationOutcome> {
    match mutation {
        Mutation::EnsureUser {
            user,
            access_key,
            secret,
            password_hash,
            now_ms,
        } => ensure_user(conn, user, access_key, secret, password_hash, *now_ms).await,
        Mutation::CreateBucket {
            name,
            owner_id,
            now_ms,
        } => create_bucket(conn, name, owner_id, *now_ms).await,
        Mutation::DeleteBucket { name } => delete_bucket(conn, name).await,
        Mutation::PutObject { object, condition } => {
            put_object(conn, object, condition, BlobRefs::Fresh).await
        }
        Mutation::CopyObject { object, condition } => {
            put_object(conn, object, condition, BlobRefs::Share).await
        }
        Mutation::DeleteObject { bucket, key } => delete_object(conn, bucket, key).await,
        Mutation::CreateUpload { upload } => create_upload(conn, upload).await,
        Mutation::PutPart { upload_id, part } => put_part(conn, upload_id, part).await,
        Mutation::CompleteUpload {
            upload_id,
            parts,
            min_part_size,
            now_ms,
            condition,
        } => complete_upload(conn, upload_id, parts, *min_part_size, *now_ms, condition).await,
        Mutation::AbortUpload { upload_id } => abort_upload(conn, upload_id).await,
        Mutation::CreateUser { account } => accounts::create_user(conn, account).await,
        Mutation::SetUserDisabled {
            user_id,
            disabled_ms,
        } => accounts::set_disabled(conn, user_id, *disabled_ms).await,
        Mutation::SetPassword {
            user_id,
            password_hash,
        } => accounts::set_password(conn, user_id, password_hash).await,
        Mutation::DeleteUser { user_id } => accounts::delete_user(conn, user_id).await,
        Mutation::CreateKey { key, secret } => accounts::create_key(conn, key, secret).await,
        Mutation::DeleteKey {
            access_key,
            user_id,
        } => accounts::delete_key(conn, access_key, user_id).await,
        Mutation::SetPublicRead {
            bucket,
            public_read,
        } => accounts::set_public_read(conn, bucket, *public_read).await,
        Mutation::SetGrant {
            bucket,
            user_id,
            level,
        } => accounts::set_grant(conn, bucket, user_id, *level).await,
        Mutation::SetUserQuota { user_id, bytes } => {
            super::quota::set_user_quota(conn, user_id, *bytes).await
        }
        Mutation::SetBucketQuota { bucket, bytes } => {
            super::quota::set_bucket_quota(conn, bucket, *bytes).await
        }
        Mutation::Pool(mutation) => super::pools::apply(conn, mutation).await,
        Mutation::AppendAudit { records } => super::audit::append(conn, records).await,
        Mutation::ExpireAudit { before_ms } => super::audit::expire(conn, *before_ms).await,
        Mutation::CreateSession {
            token_hash,
            user_id,
            created_ms,
            expires_ms,
        } => accounts::create_session(conn, token_hash, user_id, *created_ms, *expires_ms).await,
        Mutation::RevokeSessions {
            user_id,
            only,
            keep,
            now_ms,
        } => {
            accounts::revoke_sessions(conn, user_id, only.as_deref(), keep.as_deref(), *now_ms)
                .await
        }
    }
}

async fn ensure_user(
    conn: &mut AnyConnection,
    user: &UserRecord,
    access_key: &str,
    secret: &str,
    password_hash: &str,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    sqlx::query(
        "INSERT INTO users (id, name, role, created_ms, password_hash) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, \
         password_hash = excluded.password_hash, disabled_ms = NULL",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(now_ms)
    .bind(password_hash)
    .execute(&mut *conn)
    .await?;
    let id = user.id.clone();
    // The user's previous keys (an old name or password) stop working.
    sqlx::query("DELETE FROM access_keys WHERE user_id = $1 AND access_key <> $2")
        .bind(&id)
        .bind(access_key)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO access_keys (access_key, secret, user_id, created_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (access_key) DO UPDATE SET secret = excluded.secret, user_id = excluded.user_id",
    )
    .bind(access_key)
    .bind(secret)
    .bind(&id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}

pub(super) async fn create_bucket(
    conn: &mut AnyConnection,
    name: &str,
    owner_id: &str,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    let existing = sqlx::query("SELECT owner_id FROM buckets WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = existing {
        let owner: String = row.try_get("owner_id")?;
        return Err(if owner == owner_id {
            MetaError::BucketAlreadyOwnedByYou
        } else {
            MetaError::BucketAlreadyExists
        });
    }
    sqlx::query("INSERT INTO buckets (name, owner_id, created_ms) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(owner_id)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(MutationOutcome::Done)
}

async fn delete_bucket(conn: &mut AnyConnection, name: &str) -> MetaResult<MutationOutcome> {
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

async fn require_bucket(conn: &mut AnyConnection, name: &str) -> MetaResult<()> {
    let found = sqlx::query("SELECT 1 AS x FROM buckets WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    found.map(|_| ()).ok_or(MetaError::NoSuchBucket)
}

/// The blob ids of a `segments` column.
pub(super) fn segment_blobs(segments: Option<String>) -> MetaResult<Vec<String>> {
    match segments {
        Some(text) => Ok(serde_json::from_str::<Vec<super::BlobSegment>>(&text)
            .map_err(|e| MetaError::Corrupt(format!("segments: {e}")))?
            .into_iter()
            .map(|s| s.blob)
            .collect()),
        None => Ok(Vec::new()),
    }
}

/// The current object's size, ETag and blobs, if there is one.
async fn current_object(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
) -> MetaResult<Option<(i64, String, Vec<String>)>> {
    let row =
        sqlx::query("SELECT size, etag, segments FROM objects WHERE bucket = $1 AND key = $2")
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let blobs = segment_blobs(row.try_get("segments")?)?;
    Ok(Some((row.try_get("size")?, row.try_get("etag")?, blobs)))
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

async fn add_blob(conn: &mut AnyConnection, blob: &str, size: i64, now_ms: i64) -> MetaResult<()> {
    sqlx::query("INSERT INTO blobs (id, size, refs, created_ms) VALUES ($1, $2, 1, $3)")
        .bind(blob)
        .bind(size)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) fn check_condition(
    condition: &PutCondition,
    current: Option<&(i64, String, Vec<String>)>,
) -> MetaResult<()> {
    match (condition, current) {
        (PutCondition::Always, _) => Ok(()),
        (PutCondition::IfAbsent, None) => Ok(()),
        (PutCondition::IfEtag(want), Some((_, etag, _))) if want == etag => Ok(()),
        (PutCondition::IfEtag(_), None) => Err(MetaError::NoSuchKey),
        _ => Err(MetaError::PreconditionFailed),
    }
}

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
        for segment in segments {
            let live = sqlx::query("SELECT 1 AS x FROM blobs WHERE id = $1")
                .bind(&segment.blob)
                .fetch_optional(&mut *conn)
                .await?;
            if live.is_none() {
                return Err(MetaError::SourceChanged);
            }
        }
    }
    let (added, old_size) = match &current {
        Some((size, _, _)) => (0_i64, *size),
        None => (1, 0),
    };
    super::quota::check_growth(conn, &object.bucket, object.size - old_size).await?;
    // The first write doubles as the bucket check: no row, no bucket, and
    // nothing has been written yet.
    let counted = sqlx::query(
        "UPDATE buckets SET object_count = object_count + $1, bytes_stored = bytes_stored + $2 \
         WHERE name = $3",
    )
    .bind(added)
    .bind(object.size - old_size)
    .bind(&object.bucket)
    .execute(&mut *conn)
    .await?;
    if counted.rows_affected() == 0 {
        return Err(MetaError::NoSuchBucket);
    }
    let (inline, segments) = match &object.body {
        ObjectBody::Inline(data) => (Some(data.to_vec()), None),
        ObjectBody::Blobs(segments) => {
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
            (
                None,
                Some(
                    serde_json::to_string(segments)
                        .map_err(|e| MetaError::Corrupt(e.to_string()))?,
                ),
            )
        }
    };
    let sql = format!(
        "INSERT INTO objects ({OBJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (bucket, key) DO UPDATE SET size = excluded.size, etag = excluded.etag, \
         last_modified_ms = excluded.last_modified_ms, attrs = excluded.attrs, \
         inline_data = excluded.inline_data, segments = excluded.segments, \
         parts_count = excluded.parts_count"
    );
    sqlx::query(&sql)
        .bind(&object.bucket)
        .bind(&object.key)
        .bind(object.size)
        .bind(&object.etag)
        .bind(object.last_modified_ms)
        .bind(encode_attrs(&object.attrs))
        .bind(inline)
        .bind(segments)
        .bind(object.parts_count.map(i64::from))
        .execute(&mut *conn)
        .await?;
    if let Some((_, _, blobs)) = &current {
        let kept: Vec<&str> = match &object.body {
            ObjectBody::Blobs(segments) => segments.iter().map(|s| s.blob.as_str()).collect(),
            ObjectBody::Inline(_) => Vec::new(),
        };
        for blob in blobs.iter().filter(|b| !kept.contains(&b.as_str())) {
            release_blob(conn, blob, now_ms).await?;
        }
    }
    Ok(MutationOutcome::Done)
}

pub(super) async fn delete_object(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
) -> MetaResult<MutationOutcome> {
    require_bucket(conn, bucket).await?;
    let Some((size, _, blobs)) = current_object(conn, bucket, key).await? else {
        return Ok(MutationOutcome::Deleted(false));
    };
    sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2")
        .bind(bucket)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    for blob in &blobs {
        release_blob(conn, blob, now_ms).await?;
    }
    sqlx::query(
        "UPDATE buckets SET object_count = object_count - 1, bytes_stored = bytes_stored - $1 \
         WHERE name = $2",
    )
    .bind(size)
    .bind(bucket)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Deleted(true))
}

async fn create_upload(
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
        super::queries::decode_attrs(&attrs)?,
    ))
}

async fn put_part(
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

async fn complete_upload(
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
                .map(|p| super::BlobSegment {
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

async fn abort_upload(conn: &mut AnyConnection, upload_id: &str) -> MetaResult<MutationOutcome> {
    require_upload(conn, upload_id).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    for part in upload_parts(conn, upload_id).await? {
        release_blob(conn, &part.blob_id, now_ms).await?;
    }
    drop_upload(conn, upload_id).await?;
    Ok(MutationOutcome::Done)
}
