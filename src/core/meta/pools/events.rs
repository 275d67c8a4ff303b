//! The pool event log and what follows it: writing events (every other
//! mutation writes its own through [`insert_event`]), the webhook's turn
//! between nodes and its attempts, and result deliveries.

use sqlx::AnyConnection;

use crate::core::meta::{MetaResult, MutationOutcome};
use crate::model::{PoolError, PoolEvent, WebhookAttempt};

/// Appends an event to the log, in the caller's transaction.
pub(super) async fn insert_event(conn: &mut AnyConnection, event: &PoolEvent) -> MetaResult<()> {
    sqlx::query(
        "INSERT INTO pool_events (pool_id, member_id, kind, group_start_ms, data, time_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&event.pool_id)
    .bind(event.member_id.clone())
    .bind(event.kind.as_str())
    .bind(event.group_start_ms)
    .bind(&event.data)
    .bind(event.time_ms)
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
         delivered) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(pool_id)
    .bind(a.event_id)
    .bind(a.attempt)
    .bind(a.time_ms)
    .bind(a.status)
    .bind(a.error.clone())
    .bind(i64::from(a.delivered))
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
