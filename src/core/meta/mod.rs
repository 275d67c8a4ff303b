//! The metadata store: every SQL statement Cistern runs lives under this
//! module. One schema (with a migration set per dialect) serves SQLite (the
//! default, a file in the data directory) and PostgreSQL/CockroachDB, through
//! `sqlx`'s `Any` driver with portable SQL (`$n` placeholders, `ON CONFLICT`).
//!
//! Reads go straight to the pool ([`MetaStore`] methods in `queries`,
//! `accounts`, `audit`, `quota`, `pools`). Writes are [`Mutation`]s
//! (`mutations`) handed to the group-commit engine (`writer`), which applies
//! many of them in one transaction so that small PUTs share one fsync. The
//! engine hands each mutation to its applier: `objects` (buckets, object
//! rows, blob reference counts), `uploads` (multipart), `small_puts` (a run
//! of inline PUTs at once), `accounts`, `audit`, `quota` and `pools`. The
//! dependency runs one way: the engine calls the appliers, and the appliers
//! store objects through `objects`; none of them knows the engine.
//! `notices` keeps nodes that share a database in step: the version of
//! accounts they check, and pool events announced over LISTEN/NOTIFY.

pub mod accounts;
pub mod audit;
pub(super) mod migrate;
mod mutations;
mod notices;
mod objects;
pub mod pools;
mod queries;
pub mod quota;
pub(super) mod row_locks;
mod small_puts;
#[cfg(test)]
mod tests;
mod thumbnails;
mod uploads;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use self::mutations::{Mutation, MutationOutcome};
pub use self::notices::NoticeMode;
pub use self::thumbnails::Rendition;
use self::writer::Writer;
pub use crate::model::*;

/// Errors of the metadata layer. Rule violations found inside a transaction
/// (a bucket that is not empty, a precondition) are typed so that the
/// service layer can map them; everything else is `Database`.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such key")]
    NoSuchKey,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("bucket is not empty")]
    BucketNotEmpty,
    #[error("bucket already owned by you")]
    BucketAlreadyOwnedByYou,
    #[error("bucket already exists")]
    BucketAlreadyExists,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part {0} is smaller than the minimum part size")]
    EntityTooSmall(i32),
    #[error("the source object changed during the copy")]
    SourceChanged,
    #[error("no such user")]
    NoSuchUser,
    #[error("a user with that name exists")]
    UserExists,
    #[error("the user still owns buckets")]
    UserOwnsBuckets,
    #[error("the {scope} quota of {quota} bytes would be exceeded ({used} bytes in use)")]
    QuotaExceeded {
        scope: &'static str,
        quota: i64,
        used: i64,
    },
    /// A pool, member or group is not there, or not in a state that
    /// allows the change.
    #[error(transparent)]
    Pool(#[from] crate::model::PoolError),
    #[error("the metadata writer has stopped")]
    WriterStopped,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// COMMIT failed in a way that may have committed anyway.
    #[error("commit outcome unknown: {0}")]
    CommitUncertain(String),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl MetaError {
    /// True when the mutation was refused by a rule before it wrote
    /// anything, so the caller knows nothing of it was committed.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            Self::Database(_)
                | Self::Migrate(_)
                | Self::Corrupt(_)
                | Self::CommitUncertain(_)
                | Self::WriterStopped
        )
    }
}

pub type MetaResult<T> = Result<T, MetaError>;

/// `($1, $2, ...), ($n+1, ...)`: the VALUES of a multi-row INSERT.
pub(crate) fn value_rows(rows: usize, columns: usize) -> String {
    let mut sql = String::new();
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 1..=columns {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * columns + c));
        }
        sql.push(')');
    }
    sql
}

/// Done when a write touched a row; `missing` when its target is not there.
pub(crate) fn touched(
    result: sqlx::any::AnyQueryResult,
    missing: MetaError,
) -> MetaResult<MutationOutcome> {
    if result.rows_affected() == 0 {
        Err(missing)
    } else {
        Ok(MutationOutcome::Done)
    }
}

/// Which SQL engine the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Handle to the metadata store; cheap to clone.
#[derive(Clone)]
pub struct MetaStore {
    pool: AnyPool,
    writer: Arc<Writer>,
    /// For the PostgreSQL listener of cross-node notices.
    url: String,
    /// How this node hears other nodes' changes.
    notices: notices::Notices,
    /// Reads the accounts version of a shared database (`None` on SQLite).
    accounts_reader: Option<notices::AccountsReader>,
    /// Cancelled by `close`, which ends the listener.
    closed: tokio_util::sync::CancellationToken,
}

impl MetaStore {
    /// Opens the store: `database_url` if given (postgres://...), otherwise
    /// `cistern.db` in `data_dir`. Runs migrations and starts the writer.
    /// A request that finds no free connection within `acquire_timeout`
    /// fails with `PoolTimedOut` rather than queueing without end.
    /// `notices` says how nodes sharing the database hear of each other's
    /// changes.
    pub async fn open(
        database_url: Option<&str>,
        data_dir: &Path,
        acquire_timeout: Duration,
        notices: NoticeMode,
    ) -> MetaResult<Self> {
        sqlx::any::install_default_drivers();
        let url = match database_url {
            Some(url) => url.to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("cistern.db").to_string_lossy()
            ),
        };
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let max_connections = match dialect {
            Dialect::Sqlite => 8,
            Dialect::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers run beside the single writer;
                        // FULL makes every commit durable before we answer.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // CockroachDB has no LISTEN (nodes poll there) and its own form of
        // the migrations (`migrate`).
        let cockroach = match dialect {
            Dialect::Sqlite => false,
            Dialect::Postgres => {
                let version: String = sqlx::query_scalar("SELECT version()")
                    .fetch_one(&pool)
                    .await?;
                version.contains("CockroachDB")
            }
        };
        match dialect {
            Dialect::Sqlite => migrate::run_sqlite(&pool).await?,
            Dialect::Postgres => migrate::run_shared(&pool, cockroach).await?,
        }
        // One writer per node: SQLite has one writer at a time anyway, and
        // batching is what gives the speed. On a shared database each batch
        // locks the bucket and user rows it reads then writes (`row_locks`),
        // so writers on several nodes take turns per bucket.
        let notices = notices::settle(notices, dialect == Dialect::Postgres, cockroach);
        let writer = Writer::start(pool.clone(), 1, notices == notices::Notices::Listen);
        let closed = tokio_util::sync::CancellationToken::new();
        let accounts_reader = (notices != notices::Notices::Alone)
            .then(|| notices::start_accounts_reader(url.clone(), acquire_timeout, closed.clone()));
        Ok(Self {
            pool,
            writer: Arc::new(writer),
            url,
            notices,
            accounts_reader,
            closed,
        })
    }

    /// Applies one mutation through the group-commit writer; returns once
    /// its transaction is durable.
    pub async fn apply(&self, mutation: Mutation) -> MetaResult<MutationOutcome> {
        self.writer.submit(mutation).await
    }

    /// Waits for queued mutations to commit and closes the pool.
    pub async fn close(&self) {
        self.closed.cancel();
        self.writer.shutdown().await;
        self.pool.close().await;
    }

    /// A trivial round trip, for readiness probes.
    pub async fn ping(&self) -> MetaResult<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    /// A connection from the pool, for one read.
    async fn conn(&self) -> MetaResult<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(acquire(&self.pool).await?)
    }
}

/// A connection from the pool. Waiting in vain has two causes that callers
/// must tell apart: every connection is busy (the server is overloaded:
/// `PoolTimedOut`), or none can be opened (the database refuses or is gone:
/// reported as a connection error, so that it reads as unreachable).
pub(super) async fn acquire(
    pool: &AnyPool,
) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, sqlx::Error> {
    match pool.acquire().await {
        Err(sqlx::Error::PoolTimedOut) if pool.size() < pool.options().get_max_connections() => {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "no connection to the database could be opened",
            )))
        }
        other => other,
    }
}

/// Whether a database error says the database cannot be reached now (a
/// refused or dropped connection, a server shutting down or starting, a
/// conflict that outlasted its retries) rather than that something is wrong
/// with the request or the data.
pub fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P0x: shutting down or starting;
            // 40001/40P01: a conflict that kept recurring.
            code.starts_with("08") || code.starts_with("57P0") || code == "40001" || code == "40P01"
        }),
        _ => false,
    }
}

/// Reads a text column holding one of a set of words (a role, a state),
/// refusing a row whose word this build does not know.
pub(super) fn parse_word<T>(row: &sqlx::any::AnyRow, column: &str) -> MetaResult<T>
where
    T: std::str::FromStr<Err = crate::model::UnknownWord>,
{
    let text: String = sqlx::Row::try_get(row, column)?;
    text.parse()
        .map_err(|e: crate::model::UnknownWord| MetaError::Corrupt(format!("{column}: {e}")))
}
