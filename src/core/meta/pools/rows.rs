//! The columns of the pool tables and the records read from their rows.
//! A word column (a role, a state, an event kind) that this build does not
//! know makes the row corrupt.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::core::meta::{MetaError, MetaResult, parse_word};
use crate::model::{ContributionRecord, GroupRecord, MemberRecord, PoolEvent, PoolRecord, Secret};

pub(super) const POOL_COLUMNS: &str = "id, name, owner_id, bucket, window_secs, grace_secs, origin_ms, \
     max_file_size, allowed_types, forbidden_types, allow_empty, retention_days, webhook_url, \
     webhook_secret, webhook_cursor, created_ms";
pub(super) const MEMBER_COLUMNS: &str = "id, pool_id, name, role, created_ms, disabled_ms";
pub(super) const GROUP_COLUMNS: &str = "pool_id, start_ms, end_ms, seal_at_ms, state, files, bytes, \
     attempts, lease_id, lease_member, lease_expires_ms, result_key, result_size, result_etag, updated_ms";
pub(super) const CONTRIBUTION_COLUMNS: &str = "id, pool_id, member_id, group_start_ms, client_time_ms, \
     name, size, sha256, content_type, object_key, created_ms";
pub(super) const EVENT_COLUMNS: &str =
    "id, pool_id, member_id, kind, group_start_ms, data, time_ms";

pub(super) fn pool_from_row(row: &AnyRow) -> MetaResult<PoolRecord> {
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

pub(super) fn member_from_row(row: &AnyRow) -> MetaResult<MemberRecord> {
    Ok(MemberRecord {
        id: row.try_get("id")?,
        pool_id: row.try_get("pool_id")?,
        name: row.try_get("name")?,
        role: parse_word(row, "role")?,
        created_ms: row.try_get("created_ms")?,
        disabled_ms: row.try_get("disabled_ms")?,
    })
}

pub(super) fn group_from_row(row: &AnyRow) -> MetaResult<GroupRecord> {
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
        lease_member: row.try_get("lease_member")?,
        lease_expires_ms: row.try_get("lease_expires_ms")?,
        result_key: row.try_get("result_key")?,
        result_size: row.try_get("result_size")?,
        result_etag: row.try_get("result_etag")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

pub(super) fn contribution_from_row(row: &AnyRow) -> MetaResult<ContributionRecord> {
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

pub(super) fn event_from_row(row: &AnyRow) -> MetaResult<PoolEvent> {
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
