//! The contribution mutation: a file's object, its row, its group's
//! counters (the group created open with its first file) and its event in
//! one transaction; a file sent again answers its first receipt and writes
//! nothing, and a group no longer open refuses it.

use sqlx::AnyConnection;

use super::events::insert_event;
use super::row_lock;
use super::rows::{CONTRIBUTION_COLUMNS, contribution_from_row};
use crate::core::meta::mutations::PoolOutcome;
use crate::core::meta::objects::{BlobRefs, put_object};
use crate::core::meta::{MetaResult, MutationOutcome, parse_word};
use crate::model::{
    ContributionRecord, GroupRecord, GroupState, ObjectRecord, PoolError, PoolEvent, PutCondition,
};

/// Records a contribution, or answers the earlier one of the same file.
pub(super) async fn contribute(
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
