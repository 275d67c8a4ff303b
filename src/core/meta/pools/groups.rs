//! The group mutations: sealing (due groups, or one early), claims under a
//! lease, renewals, results, failure reports and lapsed leases (each ends an
//! attempt: sealed again, or failed after the last), reopening, and
//! forgetting finished groups past retention. Each reads its group under a
//! row lock and writes its event in the same transaction.

use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::events::insert_event;
use super::row_lock;
use super::rows::{GROUP_COLUMNS, group_from_row};
use crate::core::meta::mutations::PoolOutcome;
use crate::core::meta::objects::{BlobRefs, delete_object, put_object};
use crate::core::meta::{MetaError, MetaResult, MutationOutcome};
use crate::model::{
    GroupRecord, GroupState, ObjectRecord, PoolError, PoolEvent, PoolEventKind, PutCondition,
};

/// The group, locked for a transition.
async fn group_in(
    conn: &mut AnyConnection,
    pool_id: &str,
    start_ms: i64,
) -> MetaResult<GroupRecord> {
    let lock = row_lock(conn, false);
    let row = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE pool_id = $1 AND start_ms = $2{lock}"
    ))
    .bind(pool_id)
    .bind(start_ms)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(MetaError::Pool(PoolError::NoSuchGroup))?;
    group_from_row(&row)
}

/// The group, if `lease_id` holds it and has not lapsed.
async fn held_group(
    conn: &mut AnyConnection,
    pool_id: &str,
    start_ms: i64,
    lease_id: &str,
    now_ms: i64,
) -> MetaResult<GroupRecord> {
    let group = group_in(conn, pool_id, start_ms).await?;
    let held = group.state == GroupState::Processing
        && group.lease_id.as_deref() == Some(lease_id)
        && group.lease_expires_ms.is_some_and(|at| at >= now_ms);
    if held {
        Ok(group)
    } else {
        Err(PoolError::LeaseNotHeld.into())
    }
}

/// Moves a group to `state`, releasing any lease, with the event that
/// announces that state.
async fn set_state(
    conn: &mut AnyConnection,
    group: &GroupRecord,
    state: GroupState,
    now_ms: i64,
    data: serde_json::Value,
) -> MetaResult<()> {
    sqlx::query(
        "UPDATE pool_groups SET state = $1, lease_id = NULL, lease_expires_ms = NULL, \
         updated_ms = $2 WHERE pool_id = $3 AND start_ms = $4",
    )
    .bind(state.as_str())
    .bind(now_ms)
    .bind(&group.pool_id)
    .bind(group.start_ms)
    .execute(&mut *conn)
    .await?;
    let Some(kind) = state.event_kind() else {
        return Ok(());
    };
    insert_event(
        conn,
        &PoolEvent {
            id: 0,
            pool_id: group.pool_id.clone(),
            member_id: None,
            kind,
            group_start_ms: Some(group.start_ms),
            data: data.to_string(),
            time_ms: now_ms,
        },
    )
    .await
}

/// How an attempt at a group ended without a result.
pub(super) enum AttemptEnd<'a> {
    /// The lease lapsed: the processor went quiet.
    Lapsed,
    /// The processor reported a failure; `last` when retrying cannot help.
    Reported { reason: &'a str, last: bool },
}

/// Ends an attempt that made no result: the group returns to `sealed` for
/// another attempt, or fails once `max_attempts` are used up (or at once on
/// a last failure report). Lapses and reports count alike, as attempts
/// are counted by claims. Answers the state the group is in now.
async fn end_attempt(
    conn: &mut AnyConnection,
    group: &GroupRecord,
    end: AttemptEnd<'_>,
    max_attempts: i64,
    now_ms: i64,
) -> MetaResult<GroupState> {
    let attempts = group.attempts;
    let used_up = attempts >= max_attempts;
    let (state, data) = match end {
        AttemptEnd::Lapsed if used_up => (
            GroupState::Failed,
            json!({"reason": format!("{attempts} attempts lapsed"), "attempts": attempts}),
        ),
        AttemptEnd::Lapsed => (
            GroupState::Sealed,
            json!({"lease_lapsed": true, "attempts": attempts}),
        ),
        AttemptEnd::Reported { reason, last } if last || used_up => (
            GroupState::Failed,
            json!({"reason": reason, "attempts": attempts, "final": last}),
        ),
        AttemptEnd::Reported { reason, .. } => (
            GroupState::Sealed,
            json!({"failure_reported": true, "reason": reason, "attempts": attempts}),
        ),
    };
    set_state(conn, group, state, now_ms, data).await?;
    Ok(state)
}

/// Seals due open groups (or one group early) and writes a
/// `group.sealed` event for each.
pub(super) async fn seal(
    conn: &mut AnyConnection,
    pool_id: Option<&str>,
    start_ms: Option<i64>,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    let due = match (pool_id, start_ms) {
        (Some(pool_id), Some(start_ms)) => {
            let group = group_in(conn, pool_id, start_ms).await?;
            if group.state != GroupState::Open {
                return Err(PoolError::GroupNotOpen(group.state).into());
            }
            vec![group]
        }
        _ => sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE state = $1 AND seal_at_ms <= $2 \
             ORDER BY seal_at_ms LIMIT 500{}",
            row_lock(conn, true)
        ))
        .bind(GroupState::Open.as_str())
        .bind(now_ms)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(group_from_row)
        .collect::<MetaResult<_>>()?,
    };
    for group in &due {
        let data = json!({"files": group.files, "bytes": group.bytes});
        set_state(conn, group, GroupState::Sealed, now_ms, data).await?;
    }
    Ok(MutationOutcome::Pool(PoolOutcome::Sealed(due.len() as u64)))
}

/// A processor takes a sealed group (that one, or the oldest) under a
/// new lease.
#[allow(clippy::too_many_arguments)]
pub(super) async fn claim(
    conn: &mut AnyConnection,
    pool_id: &str,
    start_ms: Option<i64>,
    member: &str,
    lease_id: &str,
    now_ms: i64,
    lease_ms: i64,
) -> MetaResult<MutationOutcome> {
    let group = match start_ms {
        Some(start_ms) => {
            let group = group_in(conn, pool_id, start_ms).await?;
            if group.state != GroupState::Sealed {
                return Err(PoolError::GroupNotSealed(group.state).into());
            }
            group
        }
        None => {
            let lock = row_lock(conn, true);
            let row = sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE pool_id = $1 AND state = $2 \
                 ORDER BY start_ms LIMIT 1{lock}"
            ))
            .bind(pool_id)
            .bind(GroupState::Sealed.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some(row) => group_from_row(&row)?,
                None => return Ok(MutationOutcome::Pool(PoolOutcome::NothingToClaim)),
            }
        }
    };
    // The row lock (or SQLite's single writer) makes check-then-update
    // exact: no second claim can slip between them.
    sqlx::query(
        "UPDATE pool_groups SET state = $1, attempts = attempts + 1, lease_id = $2, \
         lease_member = $3, lease_expires_ms = $4, updated_ms = $5 \
         WHERE pool_id = $6 AND start_ms = $7 AND state = $8",
    )
    .bind(GroupState::Processing.as_str())
    .bind(lease_id)
    .bind(member)
    .bind(now_ms + lease_ms)
    .bind(now_ms)
    .bind(pool_id)
    .bind(group.start_ms)
    .bind(GroupState::Sealed.as_str())
    .execute(&mut *conn)
    .await?;
    insert_event(
        conn,
        &PoolEvent {
            id: 0,
            pool_id: pool_id.to_owned(),
            member_id: None,
            kind: PoolEventKind::GroupClaimed,
            group_start_ms: Some(group.start_ms),
            data: json!({"processor": member, "attempt": group.attempts + 1}).to_string(),
            time_ms: now_ms,
        },
    )
    .await?;
    Ok(MutationOutcome::Pool(PoolOutcome::Claimed(Box::new(
        GroupRecord {
            state: GroupState::Processing,
            attempts: group.attempts + 1,
            lease_id: Some(lease_id.to_owned()),
            lease_member: Some(member.to_owned()),
            lease_expires_ms: Some(now_ms + lease_ms),
            ..group
        },
    ))))
}

/// Extends a lease that still holds the group.
pub(super) async fn renew(
    conn: &mut AnyConnection,
    pool_id: &str,
    start_ms: i64,
    lease_id: &str,
    now_ms: i64,
    lease_ms: i64,
) -> MetaResult<MutationOutcome> {
    held_group(conn, pool_id, start_ms, lease_id, now_ms).await?;
    sqlx::query(
        "UPDATE pool_groups SET lease_expires_ms = $1, updated_ms = $2 \
         WHERE pool_id = $3 AND start_ms = $4",
    )
    .bind(now_ms + lease_ms)
    .bind(now_ms)
    .bind(pool_id)
    .bind(start_ms)
    .execute(&mut *conn)
    .await?;
    Ok(MutationOutcome::Done)
}

/// Stores the result of a group under a held lease and publishes it.
pub(super) async fn publish(
    conn: &mut AnyConnection,
    pool_id: &str,
    start_ms: i64,
    lease_id: &str,
    result: &ObjectRecord,
    event: &PoolEvent,
) -> MetaResult<MutationOutcome> {
    held_group(conn, pool_id, start_ms, lease_id, event.time_ms).await?;
    put_object(conn, result, &PutCondition::Always, BlobRefs::Fresh).await?;
    sqlx::query(
        "UPDATE pool_groups SET state = $1, lease_id = NULL, lease_expires_ms = NULL, \
         result_key = $2, result_size = $3, result_etag = $4, updated_ms = $5 \
         WHERE pool_id = $6 AND start_ms = $7",
    )
    .bind(GroupState::Published.as_str())
    .bind(&result.key)
    .bind(result.size)
    .bind(&result.etag)
    .bind(event.time_ms)
    .bind(pool_id)
    .bind(start_ms)
    .execute(&mut *conn)
    .await?;
    insert_event(conn, event).await?;
    Ok(MutationOutcome::Done)
}

/// The processor's report that its attempt failed, under its lease:
/// answers the group as the report left it.
pub(super) async fn fail(
    conn: &mut AnyConnection,
    pool_id: &str,
    start_ms: i64,
    lease_id: &str,
    ended: AttemptEnd<'_>,
    max_attempts: i64,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    let group = held_group(conn, pool_id, start_ms, lease_id, now_ms).await?;
    let state = end_attempt(conn, &group, ended, max_attempts, now_ms).await?;
    Ok(MutationOutcome::Pool(PoolOutcome::AttemptEnded(Box::new(
        GroupRecord {
            state,
            lease_id: None,
            lease_expires_ms: None,
            updated_ms: now_ms,
            ..group
        },
    ))))
}

/// Gives a failed group new attempts: it is sealed again.
pub(super) async fn reopen(
    conn: &mut AnyConnection,
    pool_id: &str,
    start_ms: i64,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    let group = group_in(conn, pool_id, start_ms).await?;
    if group.state != GroupState::Failed {
        return Err(PoolError::GroupNotFailed(group.state).into());
    }
    sqlx::query("UPDATE pool_groups SET attempts = 0 WHERE pool_id = $1 AND start_ms = $2")
        .bind(pool_id)
        .bind(start_ms)
        .execute(&mut *conn)
        .await?;
    let reopened = json!({"reopened": true});
    set_state(conn, &group, GroupState::Sealed, now_ms, reopened).await?;
    Ok(MutationOutcome::Done)
}

/// Ends the attempts whose lease lapsed (a few hundred at a time).
pub(super) async fn expire_leases(
    conn: &mut AnyConnection,
    now_ms: i64,
    max_attempts: i64,
) -> MetaResult<MutationOutcome> {
    let lock = row_lock(conn, true);
    let lapsed: Vec<GroupRecord> = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE state = $1 \
         AND lease_expires_ms < $2 LIMIT 500{lock}"
    ))
    .bind(GroupState::Processing.as_str())
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(group_from_row)
    .collect::<MetaResult<_>>()?;
    for group in &lapsed {
        end_attempt(conn, group, AttemptEnd::Lapsed, max_attempts, now_ms).await?;
    }
    Ok(MutationOutcome::Pool(PoolOutcome::Sealed(
        lapsed.len() as u64
    )))
}

/// Forgets a batch of the pool's finished groups that ended before
/// `before_ms` (their files, result and rows), and older events and webhook
/// attempts.
pub(super) async fn expire(
    conn: &mut AnyConnection,
    pool_id: &str,
    before_ms: i64,
) -> MetaResult<MutationOutcome> {
    let bucket: String = sqlx::query("SELECT bucket FROM pools WHERE id = $1")
        .bind(pool_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(MetaError::Pool(PoolError::NoSuchPool))?
        .try_get("bucket")?;
    // A few groups per transaction keeps each commit short.
    let old: Vec<GroupRecord> = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE pool_id = $1 \
         AND state IN ($2, $3) AND updated_ms < $4 ORDER BY start_ms LIMIT 20"
    ))
    .bind(pool_id)
    .bind(GroupState::Published.as_str())
    .bind(GroupState::Failed.as_str())
    .bind(before_ms)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(group_from_row)
    .collect::<MetaResult<_>>()?;
    for group in &old {
        let keys: Vec<String> = sqlx::query(
            "SELECT object_key FROM contributions WHERE pool_id = $1 AND group_start_ms = $2",
        )
        .bind(pool_id)
        .bind(group.start_ms)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get("object_key"))
        .collect::<Result<_, _>>()?;
        for key in keys.iter().chain(group.result_key.iter()) {
            delete_object(conn, &bucket, key).await?;
        }
        for table in ["contributions", "pool_deliveries"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE pool_id = $1 AND group_start_ms = $2"
            ))
            .bind(pool_id)
            .bind(group.start_ms)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query("DELETE FROM pool_groups WHERE pool_id = $1 AND start_ms = $2")
            .bind(pool_id)
            .bind(group.start_ms)
            .execute(&mut *conn)
            .await?;
    }
    for (table, column) in [("pool_events", "time_ms"), ("webhook_attempts", "time_ms")] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE pool_id = $1 AND {column} < $2"
        ))
        .bind(pool_id)
        .bind(before_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(MutationOutcome::Pool(PoolOutcome::Sealed(old.len() as u64)))
}
