//! Notices between nodes that share one database: a node that changes
//! accounts or keys tells the others to drop the credentials they cache,
//! and a node that writes pool events wakes the other nodes' event hubs.
//!
//! On PostgreSQL they travel over LISTEN / NOTIFY (a pool event's NOTIFY is
//! sent inside the transaction that writes the event, so it is heard only
//! once the event can be read). CockroachDB has no LISTEN, nor does
//! PostgreSQL behind a pooler in transaction mode: there account changes
//! bump a counter row that every node polls, and event hubs poll the event
//! table more often. [`NoticeMode::Auto`] picks by asking the server what
//! it is, at start. SQLite serves a single node: nothing is sent.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{AnyPool, Executor};

use super::{MetaResult, MetaStore};

const ACCOUNTS_CHANNEL: &str = "cistern_accounts";
pub(super) const EVENTS_CHANNEL: &str = "cistern_events";

/// How often a node polls for account changes where it cannot listen.
const ACCOUNTS_POLL: Duration = Duration::from_millis(500);

/// How nodes sharing a database tell each other about changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NoticeMode {
    /// LISTEN/NOTIFY on PostgreSQL, polling on CockroachDB.
    #[default]
    Auto,
    /// PostgreSQL LISTEN/NOTIFY.
    Listen,
    /// Polling a counter row and the event table (CockroachDB, or
    /// PostgreSQL behind a pooler in transaction mode).
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

/// Callbacks for what other nodes announce.
pub struct NoticeHandlers {
    /// Accounts, keys, grants or sessions changed somewhere: drop caches.
    /// Also called when notices may have been missed (a lost connection).
    pub accounts: Box<dyn Fn() + Send + Sync>,
    /// Another node wrote pool events.
    pub events: Box<dyn Fn() + Send + Sync>,
}

impl MetaStore {
    /// Tells every node that accounts, keys or grants changed.
    pub async fn announce_account_change(&self) -> MetaResult<()> {
        match self.notices {
            Notices::Alone => {}
            // A plain string runs as a simple query: NOTIFY takes no
            // parameters.
            Notices::Listen => {
                self.pool
                    .execute(format!("NOTIFY {ACCOUNTS_CHANNEL}").as_str())
                    .await?;
            }
            Notices::Poll => {
                sqlx::query(
                    "UPDATE cluster_notices SET generation = generation + 1 WHERE channel = 'accounts'",
                )
                .execute(&mut *self.conn().await?)
                .await?;
            }
        }
        Ok(())
    }

    /// Whether other nodes' pool events are announced (LISTEN) rather than
    /// only found by polling the event table.
    pub fn hears_events(&self) -> bool {
        self.notices == Notices::Listen
    }

    /// Calls the handlers for what other nodes announce, until the store
    /// is closed.
    pub fn follow_notices(&self, handlers: NoticeHandlers) {
        let closed = self.closed.clone();
        let handlers = Arc::new(handlers);
        match self.notices {
            Notices::Alone => {}
            Notices::Listen => {
                let url = self.url.clone();
                tokio::spawn(async move {
                    closed.run_until_cancelled(listen(&url, &handlers)).await;
                });
            }
            Notices::Poll => {
                let pool = self.pool.clone();
                tokio::spawn(async move {
                    closed.run_until_cancelled(poll(&pool, &handlers)).await;
                });
            }
        }
    }
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

async fn listen(url: &str, handlers: &NoticeHandlers) {
    loop {
        let mut listener = match PgListener::connect(url).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for notices from other nodes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all([ACCOUNTS_CHANNEL, EVENTS_CHANNEL])
            .await
        {
            tracing::warn!(error = %e, "cannot listen for notices from other nodes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything may have changed while no one was listening.
        (handlers.accounts)();
        (handlers.events)();
        loop {
            match listener.try_recv().await {
                Ok(Some(notice)) if notice.channel() == EVENTS_CHANNEL => (handlers.events)(),
                Ok(Some(_)) => (handlers.accounts)(),
                // The connection dropped; the next call reconnects.
                Ok(None) => {
                    (handlers.accounts)();
                    (handlers.events)();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notice listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn poll(pool: &AnyPool, handlers: &NoticeHandlers) {
    let mut seen: Option<i64> = None;
    loop {
        let generation = sqlx::query_scalar::<_, i64>(
            "SELECT generation FROM cluster_notices WHERE channel = 'accounts'",
        )
        .fetch_one(pool)
        .await;
        match generation {
            Ok(now) if seen != Some(now) => {
                if seen.is_some() {
                    (handlers.accounts)();
                }
                seen = Some(now);
            }
            Ok(_) => {}
            // Changes may be missed while the database is away.
            Err(e) => {
                tracing::debug!(error = %e, "cannot poll for account changes");
                if seen.take().is_some() {
                    (handlers.accounts)();
                }
            }
        }
        tokio::time::sleep(ACCOUNTS_POLL).await;
    }
}
