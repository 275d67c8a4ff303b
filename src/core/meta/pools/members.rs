//! The member mutations: adding members (refused as a whole when a name
//! is taken) and changing one, with the `member.*` event that ends its open
//! event streams where the change takes its rights away.

use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::events::insert_event;
use crate::core::meta::mutations::{MemberChange, NewMember};
use crate::core::meta::{MetaError, MetaResult, MutationOutcome, value_rows};
use crate::model::{PoolError, PoolEvent};

/// Adds members; refused as a whole when a name is taken, in the pool or
/// twice in the batch.
pub(super) async fn add_members(
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
            value_rows(chunk.len(), COLUMNS)
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

/// Changes one member, with its `member.*` event.
pub(super) async fn change_member(
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
