//! Bringing the schema up to date at start. On SQLite one process owns the
//! file. On a shared database several nodes may start at once against an
//! empty or older schema: one runs the migrations and the others wait for
//! it, then find nothing left to do. The turn is a row lock on a table of
//! its own (`SELECT ... FOR UPDATE`, held by an open transaction on its own
//! connection), not sqlx's advisory lock, because CockroachDB has no
//! advisory locks; a node that dies holding it loses its connection, and
//! with it the lock.

use std::time::Duration;

use sqlx::{AnyPool, Connection};

use super::MetaResult;

fn sqlite_migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

/// PostgreSQL's migrations, or CockroachDB's form of them: the same
/// schema, without the "C" collation CockroachDB lacks for columns (its
/// STRING order is byte order already), every statement safe to repeat.
pub(super) fn shared_migrator(cockroach: bool) -> sqlx::migrate::Migrator {
    let mut migrator = if cockroach {
        sqlx::migrate!("./migrations/cockroach")
    } else {
        sqlx::migrate!("./migrations/postgres")
    };
    // The turn is taken below, the same way on PostgreSQL and CockroachDB.
    migrator.set_locking(false);
    migrator
}

pub(super) async fn run_sqlite(pool: &AnyPool) -> MetaResult<()> {
    sqlite_migrator().run(pool).await?;
    Ok(())
}

/// Runs the migrations on a shared database, one node at a time.
pub(super) async fn run_shared(pool: &AnyPool, cockroach: bool) -> MetaResult<()> {
    ensure_turn_table(pool).await?;
    let mut turn = pool.acquire().await?;
    if cockroach {
        // CockroachDB keeps SERIALIZABLE's row locks best-effort unless
        // told otherwise; the turn must hold for as long as it is taken.
        sqlx::query("SET enable_durable_locking_for_serializable = on")
            .execute(&mut *turn)
            .await?;
    }
    let mut held = turn.begin().await?;
    sqlx::query("SELECT id FROM cistern_migration_turn WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *held)
        .await?;
    let outcome = shared_migrator(cockroach).run(pool).await;
    // Whether or not they ran, the next node may look now.
    held.rollback().await?;
    outcome?;
    Ok(())
}

/// Creates the one-row table whose row is the turn. Nodes that start
/// together may collide creating it (PostgreSQL reports a duplicate type
/// for a concurrent `CREATE TABLE IF NOT EXISTS`): try again a few times.
async fn ensure_turn_table(pool: &AnyPool) -> MetaResult<()> {
    let mut attempt = 0;
    loop {
        let created = async {
            sqlx::query("CREATE TABLE IF NOT EXISTS cistern_migration_turn (id INT PRIMARY KEY)")
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO cistern_migration_turn (id) VALUES (1) ON CONFLICT (id) DO NOTHING",
            )
            .execute(pool)
            .await
        }
        .await;
        match created {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 5 && e.as_database_error().is_some() => {
                tracing::debug!(error = %e, "another node is creating the migration turn table");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
