//! The group-commit engine. Every change to metadata is a [`Mutation`] sent
//! to a writer task, which drains whatever is queued, applies the mutations
//! inside one transaction, commits once, and only then answers every
//! caller. Each mutation checks its rules before its first write, so a
//! refused mutation leaves the shared transaction as it found it. Under load
//! many PUTs share one commit (one fsync of the SQLite WAL), which is where
//! small-object speed comes from; durability is never weakened.
//!
//! The engine only schedules: what each mutation writes is the business of
//! its applier (objects, uploads, small_puts, accounts, audit, quota, pools),
//! and none of them knows about the engine.

use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool, Connection, Executor};

use tokio::sync::{Mutex, mpsc, oneshot};

use super::mutations::{Mutation, MutationOutcome};
use super::objects::{self, BlobRefs};
use super::{MetaError, MetaResult, ObjectBody, ObjectRecord, PutCondition};
use super::{accounts, audit, pools, quota, row_locks, small_puts, thumbnails, uploads};

/// Most mutations one transaction carries.
const MAX_BATCH: usize = 256;

/// A mutation waiting for its commit, and where its answer goes.
struct Job {
    mutation: Mutation,
    reply: oneshot::Sender<MetaResult<MutationOutcome>>,
}

/// The queue into the writer task(s), and the tasks to wait for at shutdown.
pub(super) struct Writer {
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Writer {
    /// `notify_events`: a batch that writes pool events NOTIFYs the other
    /// nodes' event hubs, heard when it commits (PostgreSQL).
    pub(super) fn start(pool: AnyPool, writers: usize, notify_events: bool) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        let tasks = (0..writers)
            .map(|_| tokio::spawn(run_writer(pool.clone(), rx.clone(), notify_events)))
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

async fn run_writer(pool: AnyPool, rx: Arc<Mutex<mpsc::Receiver<Job>>>, notify_events: bool) {
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
        commit_batch(&pool, batch, notify_events).await;
    }
}

async fn commit_batch(pool: &AnyPool, batch: Vec<Job>, notify_events: bool) {
    // Every mutation checks its rules before it writes anything, so a rule
    // violation (no such bucket, a failed precondition) leaves the shared
    // transaction untouched and only that caller gets the error. A database
    // error aborts the batch, which is then replayed one mutation per
    // transaction so that it fails alone.
    match apply_with_retry(pool, &batch, notify_events).await {
        Ok(results) => {
            for (job, result) in batch.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        // A failed COMMIT may still have committed (a lost connection): do
        // not replay, and report the outcome as unknown.
        Err(BatchError::Commit(e)) => fail_all(batch, &e, true),
        Err(BatchError::Statement(e) | BatchError::Conflict(e)) if batch.len() == 1 => {
            fail_all(batch, &e, false)
        }
        // No connection (the database is away or every connection busy):
        // replaying one by one would wait that long for each mutation.
        Err(BatchError::Statement(e))
            if matches!(e, sqlx::Error::PoolTimedOut)
                || (super::unreachable(&e) && !row_locks::is_conflict(&e)) =>
        {
            fail_all(batch, &e, false)
        }
        Err(BatchError::Statement(e) | BatchError::Conflict(e)) => {
            tracing::warn!(error = %e, size = batch.len(), "batch failed; replaying its mutations one by one");
            for job in batch {
                let result = match apply_with_retry(pool, std::slice::from_ref(&job), notify_events)
                    .await
                {
                    Ok(mut results) => results.pop().unwrap_or(Err(MetaError::WriterStopped)),
                    Err(BatchError::Statement(e) | BatchError::Conflict(e)) => {
                        Err(MetaError::Database(e))
                    }
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
    /// COMMIT was refused for a conflict with another transaction (a
    /// serialization failure): certainly not committed.
    Conflict(sqlx::Error),
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        Self::Statement(e)
    }
}

/// Attempts of one batch that lose to a concurrent transaction on another
/// node before it is failed.
const CONFLICT_ATTEMPTS: u32 = 8;

/// Applies the mutations in one transaction, again from the start when it
/// conflicted with another node's (a serialization failure or a deadlock:
/// nothing of it was committed, so a fresh attempt is safe).
async fn apply_with_retry(
    pool: &AnyPool,
    batch: &[Job],
    notify_events: bool,
) -> Result<Vec<MetaResult<MutationOutcome>>, BatchError> {
    let mut attempt = 1;
    loop {
        let error = match apply_together(pool, batch, notify_events).await {
            Err(BatchError::Statement(e) | BatchError::Conflict(e))
                if row_locks::is_conflict(&e) =>
            {
                e
            }
            other => return other,
        };
        if attempt >= CONFLICT_ATTEMPTS {
            return Err(BatchError::Statement(error));
        }
        tracing::debug!(%error, attempt, "batch conflicted with another transaction; retrying");
        // Back off a little more each time, with jitter, so that the
        // transactions that collided do not collide again in step.
        let ceiling_ms = 2_u64 << attempt.min(6);
        tokio::time::sleep(std::time::Duration::from_millis(
            1 + rand::random::<u64>() % ceiling_ms,
        ))
        .await;
        attempt += 1;
    }
}

/// Applies the mutations in one transaction.
async fn apply_together(
    pool: &AnyPool,
    batch: &[Job],
    notify_events: bool,
) -> Result<Vec<MetaResult<MutationOutcome>>, BatchError> {
    let mut conn = super::acquire(pool).await?;
    let mut tx = conn.begin().await?;
    // Readers follow pool events by id. Nodes sharing a database take turns
    // from the start of a batch that may write events to its commit, and
    // number the events from a counter in that turn, so ids become visible
    // in the order they were given and no reader steps past one that
    // commits late. Taken before any other row lock: one lock order.
    let writes_events = batch
        .iter()
        .any(|job| matches!(job.mutation, Mutation::Pool(_)));
    if row_locks::shared_database(&tx) {
        if writes_events {
            row_locks::lock_event_order(&mut tx).await?;
        }
        let mutations: Vec<&Mutation> = batch.iter().map(|job| &job.mutation).collect();
        match row_locks::lock_for(&mut tx, &mutations).await {
            Ok(()) => {}
            Err(MetaError::Database(e)) => return Err(e.into()),
            Err(other) => return Err(sqlx::Error::Protocol(other.to_string()).into()),
        }
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
    // Nodes check this version before trusting credentials they remember,
    // so a change counts everywhere from the moment it commits.
    if batch.iter().any(|job| job.mutation.changes_credentials()) && row_locks::shared_database(&tx)
    {
        super::notices::bump_accounts_version(&mut tx).await?;
    }
    if writes_events && notify_events {
        // Delivered at COMMIT, and only if it commits.
        (&mut *tx)
            .execute(format!("NOTIFY {}", super::notices::EVENTS_CHANNEL).as_str())
            .await?;
    }
    tx.commit().await.map_err(|e| {
        if row_locks::is_conflict(&e) {
            BatchError::Conflict(e)
        } else {
            BatchError::Commit(e)
        }
    })?;
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
            MetaError::Database(same_kind(error))
        };
        let _ = job.reply.send(Err(reply));
    }
}

/// An error that reads as `error` does for every caller of the batch (an
/// sqlx error is not Clone): busy stays busy, unreachable stays
/// unreachable, anything else is a failed commit.
fn same_kind(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        e if super::unreachable(e) => sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            e.to_string(),
        )),
        e => sqlx::Error::Protocol(format!("commit failed: {e}")),
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
        } => {
            accounts::ensure_user(
                conn,
                user,
                access_key,
                secret.expose(),
                password_hash.expose(),
                *now_ms,
            )
            .await
        }
        Mutation::CreateBucket {
            name,
            owner_id,
            now_ms,
        } => objects::create_bucket(conn, name, owner_id, *now_ms).await,
        Mutation::DeleteBucket { name } => objects::delete_bucket(conn, name).await,
        Mutation::PutObject { object, condition } => {
            objects::put_object(conn, object, condition, BlobRefs::Fresh).await
        }
        Mutation::CopyObject { object, condition } => {
            objects::put_object(conn, object, condition, BlobRefs::Share).await
        }
        Mutation::DeleteObject { bucket, key } => objects::delete_object(conn, bucket, key).await,
        Mutation::CreateUpload { upload } => uploads::create_upload(conn, upload).await,
        Mutation::PutPart { upload_id, part } => uploads::put_part(conn, upload_id, part).await,
        Mutation::CompleteUpload {
            upload_id,
            parts,
            min_part_size,
            now_ms,
            condition,
        } => {
            uploads::complete_upload(conn, upload_id, parts, *min_part_size, *now_ms, condition)
                .await
        }
        Mutation::AbortUpload { upload_id } => uploads::abort_upload(conn, upload_id).await,
        Mutation::CreateUser { account } => accounts::create_user(conn, account).await,
        Mutation::SetUserDisabled {
            user_id,
            disabled_ms,
        } => accounts::set_disabled(conn, user_id, *disabled_ms).await,
        Mutation::SetPassword {
            user_id,
            password_hash,
        } => accounts::set_password(conn, user_id, password_hash.expose()).await,
        Mutation::DeleteUser { user_id } => accounts::delete_user(conn, user_id).await,
        Mutation::CreateKey { key, secret } => {
            accounts::create_key(conn, key, secret.expose()).await
        }
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
            quota::set_user_quota(conn, user_id, *bytes).await
        }
        Mutation::SetBucketQuota { bucket, bytes } => {
            quota::set_bucket_quota(conn, bucket, *bytes).await
        }
        Mutation::Pool(mutation) => pools::apply(conn, mutation).await,
        Mutation::AppendAudit { records } => audit::append(conn, records).await,
        Mutation::ExpireAudit {
            before_ms,
            usage_before_ms,
        } => audit::expire(conn, *before_ms, *usage_before_ms).await,
        Mutation::RecordStored { rows } => audit::record_stored(conn, rows).await,
        Mutation::PutThumbnail {
            rendition,
            bucket,
            key,
            stamp,
            jpeg,
            made_ms,
        } => {
            thumbnails::put(
                conn,
                *rendition,
                bucket,
                key,
                stamp,
                jpeg.as_deref(),
                *made_ms,
            )
            .await
        }
        Mutation::CreateSession {
            token_hash,
            user_id,
            created_ms,
            expires_ms,
        } => {
            accounts::create_session(conn, token_hash.expose(), user_id, *created_ms, *expires_ms)
                .await
        }
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
