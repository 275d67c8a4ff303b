//! The pool event log and what follows it: writing events (every other
//! mutation writes its own through [`insert_event`]), the webhook's turn
//! between nodes and its attempts, and result deliveries.

use sqlx::AnyConnection;

use crate::core::meta::{MetaResult, MutationOutcome};
use crate::model::{PoolError, PoolEvent, WebhookAttempt};

/// Appends an event to the log, in the caller's transaction. On a shared
/// database its id is the next number of the event counter, whose row the
/// writer locked at the start of the batch (`row_locks::lock_event_order`):
/// ids are then given in commit order. SQLite's single writer commits in
/// the order it numbers.
pub(super) async fn insert_event(conn: &mut AnyConnection, event: &PoolEvent) -> MetaResult<()> {
    let id: Option<i64> = if crate::core::meta::row_locks::shared_database(conn) {
        Some(
            sqlx::query_scalar(
                "UPDATE cluster_notices SET generation = generation + 1 \
                 WHERE channel = 'pool_events' RETURNING generation",
            )
            .fetch_one(&mut *conn)
            .await?,
        )
    } else {
        None
    };
    // SQLite numbers the row itself (AUTOINCREMENT never reuses an id).
    let query = match id {
        Some(_) => sqlx::query(
            "INSERT INTO pool_events (pool_id, member_id, kind, group_start_ms, data, time_ms, id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        ),
        None => sqlx::query(
            "INSERT INTO pool_events (pool_id, member_id, kind, group_start_ms, data, time_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        ),
    };
    let query = query
        .bind(&event.pool_id)
        .bind(event.member_id.clone())
        .bind(event.kind.as_str())
        .bind(event.group_start_ms)
        .bind(&event.data)
        .bind(event.time_ms);
    match id {
        Some(id) => query.bind(id),
        None => query,
    }
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records an event that goes with no other change.
pub(super) async fn record_event(
    conn: &mut AnyConnection,
    event: &PoolEvent,
) -> MetaResult<MutationOutcome> {
    insert_event(conn, event).await?;
    Ok(MutationOutcome::Done)
}

/// Makes `node` the one that delivers the pool's webhook until
/// `until_ms`, unless another node's turn has not lapsed.
pub(super) async fn take_webhook(
    conn: &mut AnyConnection,
    pool_id: &str,
    node: &str,
    now_ms: i64,
    until_ms: i64,
) -> MetaResult<MutationOutcome> {
    let taken = sqlx::query(
        "UPDATE pools SET webhook_node = $1, webhook_lease_ms = $2 WHERE id = $3 \
         AND (webhook_node IS NULL OR webhook_node = $1 OR webhook_lease_ms < $4)",
    )
    .bind(node)
    .bind(until_ms)
    .bind(pool_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    if taken.rows_affected() == 0 {
        return Err(PoolError::WebhookTaken.into());
    }
    Ok(MutationOutcome::Done)
}

/// Records a webhook attempt; `done` moves the webhook past its event.
pub(super) async fn webhook_attempt(
    conn: &mut AnyConnection,
    pool_id: &str,
    a: &WebhookAttempt,
    done: bool,
) -> MetaResult<MutationOutcome> {
    sqlx::query(
        "INSERT INTO webhook_attempts (pool_id, event_id, attempt, time_ms, status, error, \
         delivered, next_try_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(pool_id)
    .bind(a.event_id)
    .bind(a.attempt)
    .bind(a.time_ms)
    .bind(a.status)
    .bind(a.error.clone())
    .bind(i64::from(a.delivered))
    .bind(a.next_try_ms)
    .execute(&mut *conn)
    .await?;
    if done {
        sqlx::query("UPDATE pools SET webhook_cursor = $1 WHERE id = $2")
            .bind(a.event_id)
            .bind(pool_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(MutationOutcome::Done)
}

/// Notes that a member fetched a group's result (the latest fetch counts).
pub(super) async fn delivered(
    conn: &mut AnyConnection,
    pool_id: &str,
    member_id: &str,
    start_ms: i64,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    sqlx::query(
        "INSERT INTO pool_deliveries (pool_id, member_id, group_start_ms, fetched_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (pool_id, member_id, group_start_ms) \
         DO UPDATE SET fetched_ms = excluded.fetched_ms",
    )
    .bind(pool_id)
    .bind(member_id)
    .bind(start_ms)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}
