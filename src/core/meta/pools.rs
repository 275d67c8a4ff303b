//! Pool rows: pools, members, time-window groups, contributions and the
//! pool event log. Every change of state is one [`PoolMutation`] applied by
//! the group-commit writer, and writes its events in the same transaction,
//! so a follower of the event log never sees a change without its event or
//! an event without its change.

use crate::model::{
    ContributionFilter, ContributionRecord, GroupRecord, GroupState, MemberRecord, PoolError,
    PoolEvent, PoolEventKind, PoolRecord, Secret, WebhookAttempt,
};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::writer::{BlobRefs, create_bucket, delete_object, put_object};
use super::{
    MetaError, MetaResult, MetaStore, MutationOutcome, ObjectRecord, PutCondition, parse_word,
};

/// A new member and the hash of the token that authenticates it.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub member: MemberRecord,
    pub token_hash: Secret,
}

/// A file to record: its object, its row, its group (created open if
/// new) and its event.
#[derive(Debug, Clone)]
pub struct NewContribution {
    pub object: ObjectRecord,
    pub contribution: ContributionRecord,
    pub group: GroupRecord,
    pub event: PoolEvent,
}

/// What happens to a member.
#[derive(Debug, Clone)]
pub enum MemberChange {
    Disable,
    Enable,
    /// A new token (its hash); the old one stops working.
    Rekey(Secret),
    Remove,
}

impl MemberChange {
    /// The event kind that announces the change.
    pub fn event_kind(&self) -> PoolEventKind {
        match self {
            Self::Disable => PoolEventKind::MemberDisabled,
            Self::Enable => PoolEventKind::MemberEnabled,
            Self::Rekey(_) => PoolEventKind::MemberRekeyed,
            Self::Remove => PoolEventKind::MemberRemoved,
        }
    }
}

/// Changes to pools, applied by the writer in one transaction each.
#[derive(Debug, Clone)]
pub enum PoolMutation {
    /// Creates the pool and its bucket.
    Create { pool: PoolRecord },
    /// Adds members; refused as a whole if a name is taken.
    AddMembers {
        pool_id: String,
        members: Vec<NewMember>,
    },
    /// Changes a member, with a `member.<change>` event that ends the
    /// member's open event streams where it takes its rights away.
    ChangeMember {
        pool_id: String,
        name: String,
        change: MemberChange,
        now_ms: i64,
    },
    /// Stores a contribution's object, its row, its group's counters and
    /// its event; a duplicate returns the earlier receipt and writes
    /// nothing.
    Contribute(Box<NewContribution>),
    /// Seals open groups whose time has come (or one group, early).
    Seal {
        pool_id: Option<String>,
        start_ms: Option<i64>,
        now_ms: i64,
    },
    /// A processor takes a sealed group (that one, or the oldest).
    Claim {
        pool_id: String,
        start_ms: Option<i64>,
        member: String,
        lease_id: String,
        now_ms: i64,
        lease_ms: i64,
    },
    /// Extends a lease that is still held.
    Renew {
        pool_id: String,
        start_ms: i64,
        lease_id: String,
        now_ms: i64,
        lease_ms: i64,
    },
    /// Stores the result under a held lease: the group is published.
    Publish {
        pool_id: String,
        start_ms: i64,
        lease_id: String,
        result: Box<ObjectRecord>,
        event: PoolEvent,
    },
    /// The processor reports that its attempt failed: the group returns
    /// to `sealed` for another attempt, or fails when the report is
    /// `last` (retrying cannot help) or `max_attempts` are used up.
    Fail {
        pool_id: String,
        start_ms: i64,
        lease_id: String,
        reason: String,
        last: bool,
        max_attempts: i64,
        now_ms: i64,
    },
    /// The owner gives a failed group new attempts.
    Reopen {
        pool_id: String,
        start_ms: i64,
        now_ms: i64,
    },
    /// Returns groups whose lease lapsed to `sealed`, or fails them after
    /// `max_attempts`.
    ExpireLeases { now_ms: i64, max_attempts: i64 },
    /// Makes `node` the one that delivers the pool's webhook until
    /// `until_ms`, unless another node's turn has not lapsed (a conflict).
    TakeWebhook {
        pool_id: String,
        node: String,
        now_ms: i64,
        until_ms: i64,
    },
    /// Records a webhook attempt; `done` moves the webhook past the event
    /// (delivered, or given up on).
    WebhookAttempt {
        pool_id: String,
        attempt: WebhookAttempt,
        done: bool,
    },
    /// Records an event that goes with no other change.
    Event(Box<PoolEvent>),
    /// Forgets what is older than the pool's retention: finished groups
    /// (their files, result and rows), events and webhook attempts.
    Expire { pool_id: String, before_ms: i64 },
    /// A member fetched a group's result.
    Delivered {
        pool_id: String,
        member_id: String,
        start_ms: i64,
        now_ms: i64,
    },
}

/// What a pool mutation produced, beyond "done".
#[derive(Debug, Clone)]
pub enum PoolOutcome {
    Contributed(Box<ContributionRecord>),
    /// The same file was contributed before: its first receipt.
    Duplicate(Box<ContributionRecord>),
    /// How many groups were sealed (or had a lapsed lease handled).
    Sealed(u64),
    /// The group a processor now holds.
    Claimed(Box<GroupRecord>),
    /// No sealed group to claim.
    NothingToClaim,
    /// The group after an attempt ended without a result.
    AttemptEnded(Box<GroupRecord>),
}

pub(super) async fn apply(
    conn: &mut AnyConnection,
    mutation: &PoolMutation,
) -> MetaResult<MutationOutcome> {
    match mutation {
        PoolMutation::Create { pool } => create_pool(conn, pool).await,
        PoolMutation::AddMembers { pool_id, members } => add_members(conn, pool_id, members).await,
        PoolMutation::ChangeMember {
            pool_id,
            name,
            change,
            now_ms,
        } => change_member(conn, pool_id, name, change, *now_ms).await,
        PoolMutation::Contribute(new) => {
            contribute(conn, &new.object, &new.contribution, &new.group, &new.event).await
        }
        PoolMutation::Seal {
            pool_id,
            start_ms,
            now_ms,
        } => seal(conn, pool_id.as_deref(), *start_ms, *now_ms).await,
        PoolMutation::Claim {
            pool_id,
            start_ms,
            member,
            lease_id,
            now_ms,
            lease_ms,
        } => {
            claim(
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
        } => {
            held_group(conn, pool_id, *start_ms, lease_id, *now_ms).await?;
            sqlx::query(
                "UPDATE pool_groups SET lease_expires_ms = $1, updated_ms = $2 \
                 WHERE pool_id = $3 AND start_ms = $4",
            )
            .bind(now_ms + lease_ms)
            .bind(*now_ms)
            .bind(pool_id)
            .bind(*start_ms)
            .execute(&mut *conn)
            .await?;
            Ok(MutationOutcome::Done)
        }
        PoolMutation::Publish {
            pool_id,
            start_ms,
            lease_id,
            result,
            event,
        } => {
            held_group(conn, pool_id, *start_ms, lease_id, event.time_ms).await?;
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
            .bind(*start_ms)
            .execute(&mut *conn)
            .await?;
            insert_event(conn, event).await?;
            Ok(MutationOutcome::Done)
        }
        PoolMutation::Fail {
            pool_id,
            start_ms,
            lease_id,
            reason,
            last,
            max_attempts,
            now_ms,
        } => {
            let group = held_group(conn, pool_id, *start_ms, lease_id, *now_ms).await?;
            let ended = AttemptEnd::Reported {
                reason,
                last: *last,
            };
            let state = end_attempt(conn, &group, ended, *max_attempts, *now_ms).await?;
            Ok(MutationOutcome::Pool(PoolOutcome::AttemptEnded(Box::new(
                GroupRecord {
                    state,
                    lease_id: None,
                    lease_expires_ms: None,
                    updated_ms: *now_ms,
                    ..group
                },
            ))))
        }
        PoolMutation::Reopen {
            pool_id,
            start_ms,
            now_ms,
        } => {
            let group = group_in(conn, pool_id, *start_ms).await?;
            if group.state != GroupState::Failed {
                return Err(PoolError::GroupNotFailed(group.state).into());
            }
            sqlx::query("UPDATE pool_groups SET attempts = 0 WHERE pool_id = $1 AND start_ms = $2")
                .bind(pool_id)
                .bind(*start_ms)
                .execute(&mut *conn)
                .await?;
            let reopened = json!({"reopened": true});
            set_state(conn, &group, GroupState::Sealed, *now_ms, reopened).await?;
            Ok(MutationOutcome::Done)
        }
        PoolMutation::ExpireLeases {
            now_ms,
            max_attempts,
        } => {
            let lock = row_lock(conn, true);
            let lapsed: Vec<GroupRecord> = sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE state = $1 \
                 AND lease_expires_ms < $2 LIMIT 500{lock}"
            ))
            .bind(GroupState::Processing.as_str())
            .bind(*now_ms)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(group_from_row)
            .collect::<MetaResult<_>>()?;
            for group in &lapsed {
                end_attempt(conn, group, AttemptEnd::Lapsed, *max_attempts, *now_ms).await?;
            }
            Ok(MutationOutcome::Pool(PoolOutcome::Sealed(
                lapsed.len() as u64
            )))
        }
        PoolMutation::WebhookAttempt {
            pool_id,
            attempt: a,
            done,
        } => {
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
            if *done {
                sqlx::query("UPDATE pools SET webhook_cursor = $1 WHERE id = $2")
                    .bind(a.event_id)
                    .bind(pool_id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(MutationOutcome::Done)
        }
        PoolMutation::Expire { pool_id, before_ms } => expire(conn, pool_id, *before_ms).await,
        PoolMutation::TakeWebhook {
            pool_id,
            node,
            now_ms,
            until_ms,
        } => {
            let taken = sqlx::query(
                "UPDATE pools SET webhook_node = $1, webhook_lease_ms = $2 WHERE id = $3 \
                 AND (webhook_node IS NULL OR webhook_node = $1 OR webhook_lease_ms < $4)",
            )
            .bind(node)
            .bind(*until_ms)
            .bind(pool_id)
            .bind(*now_ms)
            .execute(&mut *conn)
            .await?;
            if taken.rows_affected() == 0 {
                return Err(PoolError::WebhookTaken.into());
            }
            Ok(MutationOutcome::Done)
        }
        PoolMutation::Event(event) => {
            insert_event(conn, event).await?;
            Ok(MutationOutcome::Done)
        }
        PoolMutation::Delivered {
            pool_id,
            member_id,
            start_ms,
            now_ms,
        } => {
            sqlx::query(
                "INSERT INTO pool_deliveries (pool_id, member_id, group_start_ms, fetched_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (pool_id, member_id, group_start_ms) \
                 DO UPDATE SET fetched_ms = excluded.fetched_ms",
            )
            .bind(pool_id)
            .bind(member_id)
            .bind(*start_ms)
            .bind(*now_ms)
            .execute(&mut *conn)
            .await?;
            Ok(MutationOutcome::Done)
        }
    }
}

async fn expire(
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

async fn change_member(
    conn: &mut AnyConnection,
    pool_id: &str,
    name: &str,
    change: &MemberChange,
    now_ms: i64,
) -> MetaResult<MutationOutcome> {
    let member_id: String =
        sqlx::query("SELECT id FROM pool_members WHERE pool_id = $1 AND name = $2")
            .bind(pool_id)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(MetaError::Pool(PoolError::NoSuchMember))?
            .try_get("id")?;
    let statement = match change {
        MemberChange::Disable => {
            sqlx::query("UPDATE pool_members SET disabled_ms = $1 WHERE id = $2").bind(Some(now_ms))
        }
        MemberChange::Enable => {
            sqlx::query("UPDATE pool_members SET disabled_ms = $1 WHERE id = $2").bind(None::<i64>)
        }
        MemberChange::Rekey(token_hash) => {
            sqlx::query("UPDATE pool_members SET token_hash = $1 WHERE id = $2")
                .bind(token_hash.expose())
        }
        MemberChange::Remove => sqlx::query("DELETE FROM pool_members WHERE id = $1"),
    };
    statement.bind(&member_id).execute(&mut *conn).await?;
    insert_event(
        conn,
        &PoolEvent {
            id: 0,
            pool_id: pool_id.to_owned(),
            member_id: Some(member_id),
            kind: change.event_kind(),
            group_start_ms: None,
            data: json!({ "member": name }).to_string(),
            time_ms: now_ms,
        },
    )
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
enum AttemptEnd<'a> {
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

#[allow(clippy::too_many_arguments)]
async fn claim(
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
            lease_expires_ms: Some(now_ms + lease_ms),
            ..group
        },
    ))))
}

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

async fn add_members(
    conn: &mut AnyConnection,
    pool_id: &str,
    members: &[NewMember],
) -> MetaResult<MutationOutcome> {
    let existing: std::collections::HashSet<String> =
        sqlx::query("SELECT name FROM pool_members WHERE pool_id = $1")
            .bind(pool_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>("name"))
            .collect::<Result<_, _>>()?;
    let mut names = std::collections::HashSet::new();
    for new in members {
        if existing.contains(&new.member.name) || !names.insert(new.member.name.as_str()) {
            return Err(PoolError::MemberExists(new.member.name.clone()).into());
        }
    }
    // Short statements: SQLite binds `$n` by name, at a cost that grows
    // with the square of a statement's parameters.
    const COLUMNS: usize = 6;
    for chunk in members.chunks(64) {
        let sql = format!(
            "INSERT INTO pool_members (id, pool_id, name, role, token_hash, created_ms) VALUES {}",
            super::value_rows(chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(&sql);
        for new in chunk {
            query = query
                .bind(new.member.id.clone())
                .bind(pool_id.to_owned())
                .bind(new.member.name.clone())
                .bind(new.member.role.as_str())
                .bind(new.token_hash.expose())
                .bind(new.member.created_ms);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(MutationOutcome::Done)
}

async fn contribute(
    conn: &mut AnyConnection,
    object: &ObjectRecord,
    c: &ContributionRecord,
    group: &GroupRecord,
    event: &PoolEvent,
) -> MetaResult<MutationOutcome> {
    let earlier = sqlx::query(&format!(
        "SELECT {CONTRIBUTION_COLUMNS} FROM contributions WHERE pool_id = $1 AND member_id = $2 \
         AND client_time_ms = $3 AND name = $4 AND sha256 = $5"
    ))
    .bind(&c.pool_id)
    .bind(&c.member_id)
    .bind(c.client_time_ms)
    .bind(&c.name)
    .bind(&c.sha256)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = earlier {
        return Ok(MutationOutcome::Pool(PoolOutcome::Duplicate(Box::new(
            contribution_from_row(&row)?,
        ))));
    }
    // Locked, so a sealing on another node waits for this contribution
    // (or this one sees the group sealed).
    let lock = row_lock(conn, false);
    let state = sqlx::query(&format!(
        "SELECT state FROM pool_groups WHERE pool_id = $1 AND start_ms = $2{lock}"
    ))
    .bind(&c.pool_id)
    .bind(c.group_start_ms)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = state {
        let state: GroupState = parse_word(&row, "state")?;
        if state != GroupState::Open {
            return Err(PoolError::GroupNotOpen(state).into());
        }
    } else if group.seal_at_ms <= event.time_ms {
        return Err(PoolError::GroupNotOpen(GroupState::Sealed).into());
    }
    // The object write checks the bucket and quotas before it writes.
    put_object(conn, object, &PutCondition::Always, BlobRefs::Fresh).await?;
    sqlx::query(&format!(
        "INSERT INTO contributions ({CONTRIBUTION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&c.id)
    .bind(&c.pool_id)
    .bind(&c.member_id)
    .bind(c.group_start_ms)
    .bind(c.client_time_ms)
    .bind(&c.name)
    .bind(c.size)
    .bind(&c.sha256)
    .bind(&c.content_type)
    .bind(&c.object_key)
    .bind(c.created_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO pool_groups (pool_id, start_ms, end_ms, seal_at_ms, state, files, bytes, \
         attempts, updated_ms) VALUES ($1, $2, $3, $4, $5, 1, $6, 0, $7) \
         ON CONFLICT (pool_id, start_ms) DO UPDATE SET files = pool_groups.files + 1, \
         bytes = pool_groups.bytes + excluded.bytes, updated_ms = excluded.updated_ms",
    )
    .bind(&group.pool_id)
    .bind(group.start_ms)
    .bind(group.end_ms)
    .bind(group.seal_at_ms)
    .bind(GroupState::Open.as_str())
    .bind(c.size)
    .bind(c.created_ms)
    .execute(&mut *conn)
    .await?;
    insert_event(conn, event).await?;
    Ok(MutationOutcome::Pool(PoolOutcome::Contributed(Box::new(
        c.clone(),
    ))))
}

/// Seals due open groups (or one group early) and writes a
/// `group.sealed` event for each.
async fn seal(
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

async fn insert_event(conn: &mut AnyConnection, event: &PoolEvent) -> MetaResult<()> {
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

const POOL_COLUMNS: &str = "id, name, owner_id, bucket, window_secs, grace_secs, origin_ms, \
     max_file_size, allowed_types, forbidden_types, allow_empty, retention_days, webhook_url, \
     webhook_secret, webhook_cursor, created_ms";
const MEMBER_COLUMNS: &str = "id, pool_id, name, role, created_ms, disabled_ms";
const GROUP_COLUMNS: &str = "pool_id, start_ms, end_ms, seal_at_ms, state, files, bytes, \
     attempts, lease_id, lease_expires_ms, result_key, result_size, result_etag, updated_ms";
const CONTRIBUTION_COLUMNS: &str = "id, pool_id, member_id, group_start_ms, client_time_ms, \
     name, size, sha256, content_type, object_key, created_ms";
const EVENT_COLUMNS: &str = "id, pool_id, member_id, kind, group_start_ms, data, time_ms";

fn pool_from_row(row: &AnyRow) -> MetaResult<PoolRecord> {
    let types = |column: &str| -> MetaResult<Vec<String>> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| MetaError::Corrupt(e.to_string()))
    };
    Ok(PoolRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        bucket: row.try_get("bucket")?,
        window_secs: row.try_get("window_secs")?,
        grace_secs: row.try_get("grace_secs")?,
        origin_ms: row.try_get("origin_ms")?,
        max_file_size: row.try_get("max_file_size")?,
        allowed_types: types("allowed_types")?,
        forbidden_types: types("forbidden_types")?,
        allow_empty: row.try_get::<i64, _>("allow_empty")? != 0,
        retention_days: row.try_get("retention_days")?,
        webhook_url: row.try_get("webhook_url")?,
        webhook_secret: row
            .try_get::<Option<String>, _>("webhook_secret")?
            .map(Secret::new),
        webhook_cursor: row.try_get("webhook_cursor")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn member_from_row(row: &AnyRow) -> MetaResult<MemberRecord> {
    Ok(MemberRecord {
        id: row.try_get("id")?,
        pool_id: row.try_get("pool_id")?,
        name: row.try_get("name")?,
        role: parse_word(row, "role")?,
        created_ms: row.try_get("created_ms")?,
        disabled_ms: row.try_get("disabled_ms")?,
    })
}

fn group_from_row(row: &AnyRow) -> MetaResult<GroupRecord> {
    Ok(GroupRecord {
        pool_id: row.try_get("pool_id")?,
        start_ms: row.try_get("start_ms")?,
        end_ms: row.try_get("end_ms")?,
        seal_at_ms: row.try_get("seal_at_ms")?,
        state: parse_word(row, "state")?,
        files: row.try_get("files")?,
        bytes: row.try_get("bytes")?,
        attempts: row.try_get("attempts")?,
        lease_id: row.try_get("lease_id")?,
        lease_expires_ms: row.try_get("lease_expires_ms")?,
        result_key: row.try_get("result_key")?,
        result_size: row.try_get("result_size")?,
        result_etag: row.try_get("result_etag")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

fn contribution_from_row(row: &AnyRow) -> MetaResult<ContributionRecord> {
    Ok(ContributionRecord {
        id: row.try_get("id")?,
        pool_id: row.try_get("pool_id")?,
        member_id: row.try_get("member_id")?,
        group_start_ms: row.try_get("group_start_ms")?,
        client_time_ms: row.try_get("client_time_ms")?,
        name: row.try_get("name")?,
        size: row.try_get("size")?,
        sha256: row.try_get("sha256")?,
        content_type: row.try_get("content_type")?,
        object_key: row.try_get("object_key")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn event_from_row(row: &AnyRow) -> MetaResult<PoolEvent> {
    Ok(PoolEvent {
        id: row.try_get("id")?,
        pool_id: row.try_get("pool_id")?,
        member_id: row.try_get("member_id")?,
        kind: parse_word(row, "kind")?,
        group_start_ms: row.try_get("group_start_ms")?,
        data: row.try_get("data")?,
        time_ms: row.try_get("time_ms")?,
    })
}

impl MetaStore {
    pub async fn pool(&self, name: &str) -> MetaResult<PoolRecord> {
        let row = sqlx::query(&format!("SELECT {POOL_COLUMNS} FROM pools WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(MetaError::Pool(PoolError::NoSuchPool))?;
        pool_from_row(&row)
    }

    /// Pools owned by `owner_id`, or (`None`) every pool.
    pub async fn pools(&self, owner_id: Option<&str>) -> MetaResult<Vec<PoolRecord>> {
        sqlx::query(&format!(
            "SELECT {POOL_COLUMNS} FROM pools WHERE ($1 = '' OR owner_id = $1) ORDER BY name"
        ))
        .bind(owner_id.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pool_from_row)
        .collect()
    }

    /// The member a token belongs to, with its pool.
    pub async fn member_by_token(
        &self,
        token_hash: &str,
    ) -> MetaResult<Option<(MemberRecord, PoolRecord)>> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM pool_members WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let member = member_from_row(&row)?;
        let pool = sqlx::query(&format!("SELECT {POOL_COLUMNS} FROM pools WHERE id = $1"))
            .bind(&member.pool_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some((member, pool_from_row(&pool)?)))
    }

    /// Whether a member exists, is enabled and still has this token.
    pub async fn member_active(&self, member_id: &str, token_hash: &str) -> MetaResult<bool> {
        let row = sqlx::query(
            "SELECT CASE WHEN disabled_ms IS NULL THEN 1 ELSE 0 END AS active \
             FROM pool_members WHERE id = $1 AND token_hash = $2",
        )
        .bind(member_id)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("active")? == 1,
            None => false,
        })
    }

    pub async fn members(&self, pool_id: &str) -> MetaResult<Vec<MemberRecord>> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM pool_members WHERE pool_id = $1 ORDER BY name"
        ))
        .bind(pool_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(member_from_row)
        .collect()
    }

    /// Groups of a pool, newest window first, optionally in one state.
    pub async fn groups(&self, pool_id: &str, state: Option<&str>) -> MetaResult<Vec<GroupRecord>> {
        sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE pool_id = $1 AND ($2 = '' OR state = $2) \
             ORDER BY start_ms DESC LIMIT 1000"
        ))
        .bind(pool_id)
        .bind(state.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(group_from_row)
        .collect()
    }

    pub async fn group(&self, pool_id: &str, start_ms: i64) -> MetaResult<GroupRecord> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE pool_id = $1 AND start_ms = $2"
        ))
        .bind(pool_id)
        .bind(start_ms)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(MetaError::Pool(PoolError::NoSuchGroup))?;
        group_from_row(&row)
    }

    /// The newest published group of a pool.
    pub async fn latest_published(&self, pool_id: &str) -> MetaResult<Option<GroupRecord>> {
        sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM pool_groups WHERE pool_id = $1 AND state = $2 \
             ORDER BY start_ms DESC LIMIT 1"
        ))
        .bind(pool_id)
        .bind(GroupState::Published.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(group_from_row)
        .transpose()
    }

    /// The newest event id (0 when there is none).
    pub async fn last_pool_event_id(&self) -> MetaResult<i64> {
        let row = sqlx::query("SELECT id FROM pool_events ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("id")?,
            None => 0,
        })
    }

    /// Events of every pool after `after_id`, in id order.
    pub async fn pool_events_after(&self, after_id: i64, limit: i64) -> MetaResult<Vec<PoolEvent>> {
        sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM pool_events WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    /// Pools that have a webhook.
    pub async fn pools_with_webhooks(&self) -> MetaResult<Vec<PoolRecord>> {
        sqlx::query(&format!(
            "SELECT {POOL_COLUMNS} FROM pools WHERE webhook_url IS NOT NULL ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(pool_from_row)
        .collect()
    }

    /// The newest webhook attempts of a pool, newest first.
    pub async fn webhook_attempts(
        &self,
        pool_id: &str,
        limit: i64,
    ) -> MetaResult<Vec<WebhookAttempt>> {
        sqlx::query(
            "SELECT event_id, attempt, time_ms, status, error, delivered FROM webhook_attempts \
             WHERE pool_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(pool_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(WebhookAttempt {
                event_id: row.try_get("event_id")?,
                attempt: row.try_get("attempt")?,
                time_ms: row.try_get("time_ms")?,
                status: row.try_get("status")?,
                error: row.try_get("error")?,
                delivered: row.try_get::<i64, _>("delivered")? != 0,
            })
        })
        .collect()
    }

    /// Members who fetched the result of a group, with when (ms).
    pub async fn deliveries(&self, pool_id: &str, start_ms: i64) -> MetaResult<Vec<(String, i64)>> {
        sqlx::query(
            "SELECT member_id, fetched_ms FROM pool_deliveries \
             WHERE pool_id = $1 AND group_start_ms = $2",
        )
        .bind(pool_id)
        .bind(start_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("member_id")?, row.try_get("fetched_ms")?)))
        .collect()
    }

    /// The earliest lease expiry of a group being processed.
    pub async fn next_lease_expiry_ms(&self) -> MetaResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT lease_expires_ms FROM pool_groups WHERE state = $1 \
             ORDER BY lease_expires_ms LIMIT 1",
        )
        .bind(GroupState::Processing.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => row.try_get("lease_expires_ms")?,
            None => None,
        })
    }

    /// The seal time of the earliest open group, across all pools.
    pub async fn next_seal_ms(&self) -> MetaResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT seal_at_ms FROM pool_groups WHERE state = $1 ORDER BY seal_at_ms LIMIT 1",
        )
        .bind(GroupState::Open.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("seal_at_ms")?),
            None => None,
        })
    }

    /// A page of contributions in id order.
    pub async fn contributions(
        &self,
        pool_id: &str,
        filter: &ContributionFilter,
        limit: i64,
    ) -> MetaResult<Vec<ContributionRecord>> {
        sqlx::query(&format!(
            "SELECT {CONTRIBUTION_COLUMNS} FROM contributions WHERE pool_id = $1 \
             AND ($2 = '' OR member_id = $2) AND ($3 = -1 OR group_start_ms = $3) AND id > $4 \
             ORDER BY id LIMIT $5"
        ))
        .bind(pool_id)
        .bind(filter.member_id.clone().unwrap_or_default())
        .bind(filter.group_start_ms.unwrap_or(-1))
        .bind(filter.after_id.clone().unwrap_or_default())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(contribution_from_row)
        .collect()
    }

    pub async fn contribution(&self, pool_id: &str, id: &str) -> MetaResult<ContributionRecord> {
        let row = sqlx::query(&format!(
            "SELECT {CONTRIBUTION_COLUMNS} FROM contributions WHERE pool_id = $1 AND id = $2"
        ))
        .bind(pool_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(MetaError::Pool(PoolError::NoSuchContribution))?;
        contribution_from_row(&row)
    }

    /// Contributions per member id.
    pub async fn contribution_counts(&self, pool_id: &str) -> MetaResult<Vec<(String, i64)>> {
        sqlx::query(
            "SELECT member_id, COUNT(*) AS n FROM contributions WHERE pool_id = $1 \
             GROUP BY member_id ORDER BY member_id",
        )
        .bind(pool_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("member_id")?, row.try_get("n")?)))
        .collect()
    }

    /// Events after `after_id` in id order: the pool-wide ones and, when
    /// `member_id` is given, that member's own (`None`: every event).
    pub async fn pool_events(
        &self,
        pool_id: &str,
        member_id: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> MetaResult<Vec<PoolEvent>> {
        sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM pool_events WHERE pool_id = $1 AND id > $2 \
             AND ($3 = '' OR member_id IS NULL OR member_id = $3) ORDER BY id LIMIT $4"
        ))
        .bind(pool_id)
        .bind(after_id)
        .bind(member_id.unwrap_or_default())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }
}
