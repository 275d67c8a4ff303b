//! Pool rows: pools, members, time-window groups, contributions and the
//! pool event log. Every change of state is one [`PoolMutation`] applied by
//! the group-commit writer, and writes its events in the same transaction,
//! so a follower of the event log never sees a change without its event or
//! an event without its change.
//!
//! - [`mutations`]: the mutation types and their outcomes.
//! - [`members`], [`contributions`], [`groups`], [`events`]: the appliers,
//!   by what they change; [`apply`] here sends each mutation to its own.
//! - [`rows`]: columns and row readers; [`reads`]: the queries.

mod contributions;
mod events;
mod groups;
mod members;
mod reads;
mod rows;

use sqlx::AnyConnection;

use self::groups::AttemptEnd;
pub use super::mutations::{MemberChange, NewContribution, NewMember, PoolMutation, PoolOutcome};
use crate::core::meta::objects::create_bucket;
use crate::core::meta::{MetaResult, MutationOutcome};
use crate::model::{PoolError, PoolRecord, Secret};

/// Applies a pool mutation inside the writer's transaction.
pub(super) async fn apply(
    conn: &mut AnyConnection,
    mutation: &PoolMutation,
) -> MetaResult<MutationOutcome> {
    match mutation {
        PoolMutation::Create { pool } => create_pool(conn, pool).await,
        PoolMutation::AddMembers { pool_id, members } => {
            members::add_members(conn, pool_id, members).await
        }
        PoolMutation::ChangeMember {
            pool_id,
            name,
            change,
            now_ms,
        } => members::change_member(conn, pool_id, name, change, *now_ms).await,
        PoolMutation::Contribute(new) => {
            contributions::contribute(conn, &new.object, &new.contribution, &new.group, &new.event)
                .await
        }
        PoolMutation::Seal {
            pool_id,
            start_ms,
            now_ms,
        } => groups::seal(conn, pool_id.as_deref(), *start_ms, *now_ms).await,
        PoolMutation::Claim {
            pool_id,
            start_ms,
            member,
            lease_id,
            now_ms,
            lease_ms,
        } => {
            groups::claim(
                conn, pool_id, *start_ms, member, lease_id, *now_ms, *lease_ms,
            )
            .await
        }
        PoolMutation::Renew {
            pool_id,
            start_ms,
            lease_id,
            now_ms,
            lease_ms,
        } => groups::renew(conn, pool_id, *start_ms, lease_id, *now_ms, *lease_ms).await,
        PoolMutation::Publish {
            pool_id,
            start_ms,
            lease_id,
            result,
            event,
        } => groups::publish(conn, pool_id, *start_ms, lease_id, result, event).await,
        PoolMutation::Fail {
            pool_id,
            start_ms,
            lease_id,
            reason,
            last,
            max_attempts,
            now_ms,
        } => {
            let ended = AttemptEnd::Reported {
                reason,
                last: *last,
            };
            groups::fail(
                conn,
                pool_id,
                *start_ms,
                lease_id,
                ended,
                *max_attempts,
                *now_ms,
            )
            .await
        }
        PoolMutation::Reopen {
            pool_id,
            start_ms,
            now_ms,
        } => groups::reopen(conn, pool_id, *start_ms, *now_ms).await,
        PoolMutation::ExpireLeases {
            now_ms,
            max_attempts,
        } => groups::expire_leases(conn, *now_ms, *max_attempts).await,
        PoolMutation::Expire { pool_id, before_ms } => {
            groups::expire(conn, pool_id, *before_ms).await
        }
        PoolMutation::TakeWebhook {
            pool_id,
            node,
            now_ms,
            until_ms,
        } => events::take_webhook(conn, pool_id, node, *now_ms, *until_ms).await,
        PoolMutation::WebhookAttempt {
            pool_id,
            attempt,
            done,
        } => events::webhook_attempt(conn, pool_id, attempt, *done).await,
        PoolMutation::Event(event) => events::record_event(conn, event).await,
        PoolMutation::Delivered {
            pool_id,
            member_id,
            start_ms,
            now_ms,
        } => events::delivered(conn, pool_id, member_id, *start_ms, *now_ms).await,
    }
}

/// Creates the pool and its bucket; refused when either name is taken.
async fn create_pool(conn: &mut AnyConnection, pool: &PoolRecord) -> MetaResult<MutationOutcome> {
    let taken = sqlx::query("SELECT 1 AS x FROM pools WHERE name = $1")
        .bind(&pool.name)
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(PoolError::PoolExists(pool.name.clone()).into());
    }
    // Checks the bucket name before its first write.
    create_bucket(conn, &pool.bucket, &pool.owner_id, pool.created_ms).await?;
    let types = |t: &Vec<String>| serde_json::to_string(t).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO pools (id, name, owner_id, bucket, window_secs, grace_secs, origin_ms, \
         max_file_size, allowed_types, forbidden_types, allow_empty, retention_days, webhook_url, \
         webhook_secret, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&pool.id)
    .bind(&pool.name)
    .bind(&pool.owner_id)
    .bind(&pool.bucket)
    .bind(pool.window_secs)
    .bind(pool.grace_secs)
    .bind(pool.origin_ms)
    .bind(pool.max_file_size)
    .bind(types(&pool.allowed_types))
    .bind(types(&pool.forbidden_types))
    .bind(i64::from(pool.allow_empty))
    .bind(pool.retention_days)
    .bind(pool.webhook_url.clone())
    .bind(pool.webhook_secret.as_ref().map(Secret::expose))
    .bind(pool.created_ms)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}

/// Row locks for the groups a transition reads, where the database has
/// them (PostgreSQL, CockroachDB): nodes sharing it then take turns on a
/// group, so two of them never both claim or seal it. With `skip_locked`
/// a sweep passes over the groups another node is changing. SQLite has a
/// single writer, which is the same guarantee.
fn row_lock(conn: &AnyConnection, skip_locked: bool) -> &'static str {
    match (conn.backend_name() == "SQLite", skip_locked) {
        (true, _) => "",
        (false, false) => " FOR UPDATE",
        (false, true) => " FOR UPDATE SKIP LOCKED",
    }
}
