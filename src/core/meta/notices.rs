//! Notices between nodes that share a PostgreSQL database, over LISTEN /
//! NOTIFY: a node that changes accounts or keys tells the others to drop
//! the credentials they cache. SQLite serves a single node, so there
//! nothing is sent and nothing is heard.

use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::PgListener;

use super::{Dialect, MetaResult, MetaStore};

const ACCOUNTS_CHANNEL: &str = "cistern_accounts";

impl MetaStore {
    /// Tells every node that accounts, keys or grants changed.
    pub async fn announce_account_change(&self) -> MetaResult<()> {
        if self.dialect == Dialect::Postgres {
            // A plain string runs as a simple query: NOTIFY takes no
            // parameters.
            self.pool
                .execute(format!("NOTIFY {ACCOUNTS_CHANNEL}").as_str())
                .await?;
        }
        Ok(())
    }

    /// Calls `on_change` for every account change another node announces,
    /// and also whenever the listening connection was lost (notices may
    /// have been missed), until the store is closed.
    pub fn follow_account_changes(&self, on_change: impl Fn() + Send + Sync + 'static) {
        if self.dialect != Dialect::Postgres {
            return;
        }
        let url = self.url.clone();
        let closed = self.closed.clone();
        tokio::spawn(async move {
            closed.run_until_cancelled(listen(&url, &on_change)).await;
        });
    }
}

async fn listen(url: &str, on_change: &(impl Fn() + Send + Sync)) {
    loop {
        let mut listener = match PgListener::connect(url).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for account changes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(ACCOUNTS_CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for account changes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything may have changed while no one was listening.
        on_change();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => on_change(),
                // The connection dropped; the next call reconnects.
                Ok(None) => on_change(),
                Err(e) => {
                    tracing::warn!(error = %e, "account change listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}
