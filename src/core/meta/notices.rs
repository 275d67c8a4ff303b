//! What nodes that share one database tell each other.
//!
//! Account changes: every batch that changes credentials bumps a version
//! row in the same transaction, and a node reads that version before it
//! trusts credentials it remembers (see `Store::credentials`), so a key
//! revoked or a user disabled on one node is refused on every node from
//! the next request on. No message is needed, which also serves
//! CockroachDB.
//!
//! Pool events: on PostgreSQL a batch that writes events sends a NOTIFY
//! inside its transaction, so other nodes' event hubs wake as soon as the
//! events can be read. CockroachDB has no LISTEN, nor does PostgreSQL
//! behind a pooler in transaction mode: there event hubs poll the event
//! table more often. [`NoticeMode::Auto`] picks by asking the server what
//! it is, at start. SQLite serves a single node: nothing is sent.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{AnyConnection, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{MetaResult, MetaStore};

pub(super) const EVENTS_CHANNEL: &str = "cistern_events";

/// How nodes sharing a database tell each other about changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NoticeMode {
    /// LISTEN/NOTIFY on PostgreSQL, polling on CockroachDB.
    #[default]
    Auto,
    /// PostgreSQL LISTEN/NOTIFY.
    Listen,
    /// Polling the event table (CockroachDB, or PostgreSQL behind a
    /// pooler in transaction mode).
    Poll,
}

/// What the store settled on at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notices {
    /// One node (SQLite): nobody to tell.
    Alone,
    Listen,
    Poll,
}

impl MetaStore {
    /// The version of accounts and keys in a database shared by several
    /// nodes (it goes up with every change to credentials); `None` on
    /// SQLite, where this node makes every change itself.
    pub async fn accounts_version(&self) -> MetaResult<Option<i64>> {
        let Some(reader) = &self.accounts_reader else {
            return Ok(None);
        };
        let (reply, answer) = oneshot::channel();
        reader.send(reply).map_err(|_| sqlx::Error::PoolClosed)?;
        let version = answer.await.map_err(|_| sqlx::Error::PoolClosed)??;
        Ok(Some(version))
    }

    /// Whether other nodes' pool events are announced (LISTEN) rather than
    /// only found by polling the event table.
    pub fn hears_events(&self) -> bool {
        self.notices == Notices::Listen
    }

    /// Calls `events` whenever another node announces pool events (and
    /// after a lost connection, when some may have been missed), until the
    /// store is closed. Nothing to follow where events are polled.
    pub fn follow_event_notices(&self, events: impl Fn() + Send + Sync + 'static) {
        if self.notices != Notices::Listen {
            return;
        }
        let closed = self.closed.clone();
        let url = self.url.clone();
        tokio::spawn(async move {
            closed.run_until_cancelled(listen(&url, &events)).await;
        });
    }
}

/// Where to ask for the accounts version: one reader per node, whose every
/// read answers all the requests that asked before the read began (as
/// group commit does for writes). Each of them was sent after any change
/// its client had seen answered, so the read sees that change; a busy node
/// makes one read per round trip rather than one per request.
pub(super) type AccountsReader = mpsc::UnboundedSender<oneshot::Sender<Result<i64, sqlx::Error>>>;

/// Starts the accounts version reader of a node on a shared database. It
/// keeps a connection of its own (the pool's checks and queue would cost
/// more than the read), opened again after any failure; a read that takes
/// longer than `patience` fails as unreachable.
pub(super) fn start_accounts_reader(
    url: String,
    patience: Duration,
    closed: CancellationToken,
) -> AccountsReader {
    let (requests, mut asked) = mpsc::unbounded_channel::<oneshot::Sender<_>>();
    tokio::spawn(async move {
        closed
            .run_until_cancelled(async move {
                let mut conn: Option<AnyConnection> = None;
                while let Some(first) = asked.recv().await {
                    let mut waiting = vec![first];
                    while let Ok(more) = asked.try_recv() {
                        waiting.push(more);
                    }
                    let read = tokio::time::timeout(patience, async {
                        // A kept connection may have been closed while idle
                        // (a server timeout, a pooler, a restart): one more
                        // try on a fresh one before the requests are failed.
                        match read_accounts_version(&url, &mut conn).await {
                            Err(_) if conn.take().is_some() => {
                                read_accounts_version(&url, &mut conn).await
                            }
                            read => read,
                        }
                    })
                    .await
                    .unwrap_or_else(|_| Err("the database did not answer in time".to_owned()));
                    if read.is_err() {
                        conn = None;
                    }
                    for reply in waiting {
                        // Whatever went wrong (no connection, too many
                        // clients, a timeout), the database cannot vouch
                        // for credentials now: unavailable, not a fault.
                        let _ = reply.send(read.clone().map_err(|e| {
                            sqlx::Error::Io(std::io::Error::new(
                                std::io::ErrorKind::NotConnected,
                                format!("cannot read the accounts version: {e}"),
                            ))
                        }));
                    }
                }
            })
            .await;
    });
    requests
}

async fn read_accounts_version(url: &str, conn: &mut Option<AnyConnection>) -> Result<i64, String> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(
            AnyConnection::connect(url)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    sqlx::query_scalar::<_, i64>(
        "SELECT generation FROM cluster_notices WHERE channel = 'accounts'",
    )
    .fetch_one(conn)
    .await
    .map_err(|e| e.to_string())
}

/// Bumps the accounts version, inside the transaction of the change.
pub(super) async fn bump_accounts_version(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE cluster_notices SET generation = generation + 1 WHERE channel = 'accounts'",
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Settles the mode: `Auto` listens unless the server is CockroachDB,
/// which has no LISTEN or NOTIFY at all (a NOTIFY would fail every batch
/// that writes a pool event), so it polls there whatever was asked.
pub(super) fn settle(mode: NoticeMode, shared: bool, cockroach: bool) -> Notices {
    match (shared, mode) {
        (false, _) => Notices::Alone,
        (true, NoticeMode::Listen) if cockroach => {
            tracing::warn!("CockroachDB cannot LISTEN: polling for notices instead");
            Notices::Poll
        }
        (true, NoticeMode::Listen) => Notices::Listen,
        (true, NoticeMode::Poll) => Notices::Poll,
        (true, NoticeMode::Auto) if cockroach => Notices::Poll,
        (true, NoticeMode::Auto) => Notices::Listen,
    }
}

async fn listen(url: &str, events: &(impl Fn() + Send + Sync)) {
    loop {
        let mut listener = match PgListener::connect(url).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for notices from other nodes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(EVENTS_CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for notices from other nodes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Events may have been written while no one was listening.
        events();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => events(),
                // The connection dropped; the next call reconnects.
                Ok(None) => events(),
                Err(e) => {
                    tracing::warn!(error = %e, "notice listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}
