//! The audit log and daily usage counters: batched appends (through the
//! group-commit writer), filtered reads with a cursor, and retention.

use crate::model::{AuditFilter, AuditRecord, StoredRow, UsageRow};
use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::{MetaResult, MetaStore, MutationOutcome};

/// The UTC day of a moment, `YYYY-MM-DD`, as usage rows name days.
pub(crate) fn day_of(time_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(time_ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub(super) async fn append(
    conn: &mut AnyConnection,
    records: &[AuditRecord],
) -> MetaResult<MutationOutcome> {
    const COLUMNS: usize = 15;
    // SQLite looks a `$n` parameter up by name with a linear scan, so
    // binding costs grow with the square of a statement's parameters; short
    // statements of a few fixed sizes are cheap to bind and stay prepared.
    const ROWS_PER_STATEMENT: usize = 32;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO audit (time_ms, request_id, actor_id, actor, access_key, source, action, bucket, \
             object_key, target, status, bytes_in, bytes_out, user_agent, detail) VALUES {}",
            super::value_rows(chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = query
                .bind(r.time_ms)
                .bind(r.request_id.clone())
                .bind(r.actor_id.clone())
                .bind(r.actor.clone())
                .bind(r.access_key.clone())
                .bind(r.source.clone())
                .bind(r.action.clone())
                .bind(r.bucket.clone())
                .bind(r.key.clone())
                .bind(r.target.clone())
                .bind(i64::from(r.status))
                .bind(r.bytes_in as i64)
                .bind(r.bytes_out as i64)
                .bind(r.user_agent.clone())
                .bind(r.detail.clone());
        }
        query.execute(&mut *conn).await?;
    }
    // Usage by the requesting user; anonymous traffic has no user to bill.
    let mut usage: BTreeMap<(String, String, String), (i64, i64, i64)> = BTreeMap::new();
    for r in records {
        let Some(user) = &r.actor_id else { continue };
        let entry = usage
            .entry((
                day_of(r.time_ms),
                user.clone(),
                r.bucket.clone().unwrap_or_default(),
            ))
            .or_default();
        entry.0 += r.bytes_in as i64;
        entry.1 += r.bytes_out as i64;
        entry.2 += 1;
    }
    for ((day, user, bucket), (bytes_in, bytes_out, requests)) in usage {
        sqlx::query(
            "INSERT INTO usage_daily (day, user_id, bucket, bytes_in, bytes_out, requests) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (day, user_id, bucket) DO UPDATE SET \
             bytes_in = usage_daily.bytes_in + excluded.bytes_in, \
             bytes_out = usage_daily.bytes_out + excluded.bytes_out, \
             requests = usage_daily.requests + excluded.requests",
        )
        .bind(day)
        .bind(user)
        .bind(bucket)
        .bind(bytes_in)
        .bind(bytes_out)
        .bind(requests)
        .execute(&mut *conn)
        .await?;
    }
    Ok(MutationOutcome::Done)
}

pub(super) async fn record_stored(
    conn: &mut AnyConnection,
    rows: &[StoredRow],
) -> MetaResult<MutationOutcome> {
    for r in rows {
        sqlx::query(
            "INSERT INTO usage_stored (day, user_id, bucket, bytes, objects) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (day, user_id, bucket) DO UPDATE SET bytes = excluded.bytes, objects = excluded.objects",
        )
        .bind(r.day.clone())
        .bind(r.user_id.clone())
        .bind(r.bucket.clone())
        .bind(r.bytes)
        .bind(r.objects)
        .execute(&mut *conn)
        .await?;
    }
    Ok(MutationOutcome::Done)
}

pub(super) async fn expire(
    conn: &mut AnyConnection,
    before_ms: i64,
    usage_before_ms: i64,
) -> MetaResult<MutationOutcome> {
    sqlx::query("DELETE FROM audit WHERE time_ms < $1")
        .bind(before_ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM usage_daily WHERE day < $1")
        .bind(day_of(usage_before_ms))
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM usage_stored WHERE day < $1")
        .bind(day_of(usage_before_ms))
        .execute(&mut *conn)
        .await?;
    Ok(MutationOutcome::Done)
}

impl MetaStore {
    /// Newest first, at most `limit`.
    pub async fn audit(&self, filter: &AuditFilter, limit: i64) -> MetaResult<Vec<AuditRecord>> {
        // Every filter is always bound; an unset one matches everything.
        let rows = sqlx::query(
            "SELECT id, time_ms, request_id, actor_id, actor, access_key, source, action, bucket, object_key, \
             target, status, bytes_in, bytes_out, user_agent, detail FROM audit \
             WHERE ($1 = '' OR actor_id = $1) AND ($2 = '' OR actor = $2) AND ($3 = '' OR action = $3) \
             AND ($4 = '' OR bucket = $4) AND ($5 = 0 OR status = $5) AND time_ms >= $6 AND time_ms <= $7 \
             AND id < $8 AND ($10 = '' OR substr(action, 1, length($10)) = $10) \
             ORDER BY id DESC LIMIT $9",
        )
        .bind(filter.actor_id.clone().unwrap_or_default())
        .bind(filter.actor.clone().unwrap_or_default())
        .bind(filter.action.clone().unwrap_or_default())
        .bind(filter.bucket.clone().unwrap_or_default())
        .bind(i64::from(filter.status.unwrap_or(0)))
        .bind(filter.from_ms.unwrap_or(i64::MIN))
        .bind(filter.to_ms.unwrap_or(i64::MAX))
        .bind(filter.before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .bind(filter.action_prefix.clone().unwrap_or_default())
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.try_get("id")?,
                    time_ms: row.try_get("time_ms")?,
                    request_id: row.try_get("request_id")?,
                    actor_id: row.try_get("actor_id")?,
                    actor: row.try_get("actor")?,
                    access_key: row.try_get("access_key")?,
                    source: row.try_get("source")?,
                    action: row.try_get("action")?,
                    bucket: row.try_get("bucket")?,
                    key: row.try_get("object_key")?,
                    target: row.try_get("target")?,
                    status: row.try_get::<i64, _>("status")? as u16,
                    bytes_in: row.try_get::<i64, _>("bytes_in")? as u64,
                    bytes_out: row.try_get::<i64, _>("bytes_out")? as u64,
                    user_agent: row.try_get("user_agent")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    /// What buckets held each day from `from_day` on, for one user or
    /// (`None`) everyone.
    pub async fn stored_usage(
        &self,
        user_id: Option<&str>,
        from_day: &str,
    ) -> MetaResult<Vec<StoredRow>> {
        let query = match user_id {
            Some(user_id) => sqlx::query(
                "SELECT day, user_id, bucket, bytes, objects FROM usage_stored \
                 WHERE user_id = $1 AND day >= $2 ORDER BY day, user_id, bucket",
            )
            .bind(user_id.to_owned())
            .bind(from_day.to_owned()),
            None => sqlx::query(
                "SELECT day, user_id, bucket, bytes, objects FROM usage_stored \
                 WHERE day >= $1 ORDER BY day, user_id, bucket",
            )
            .bind(from_day.to_owned()),
        };
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter()
            .map(|row| {
                Ok(StoredRow {
                    day: row.try_get("day")?,
                    user_id: row.try_get("user_id")?,
                    bucket: row.try_get("bucket")?,
                    bytes: row.try_get("bytes")?,
                    objects: row.try_get("objects")?,
                })
            })
            .collect()
    }

    /// Daily traffic rows, for one user or (`None`) everyone.
    /// From `from_day` on when given. One user's rows are found by the
    /// `(user_id, day)` index, so a person's page reads only their own.
    pub async fn usage(
        &self,
        user_id: Option<&str>,
        from_day: Option<&str>,
    ) -> MetaResult<Vec<UsageRow>> {
        let from_day = from_day.unwrap_or_default();
        let query = match user_id {
            Some(user_id) => sqlx::query(
                "SELECT day, user_id, bucket, bytes_in, bytes_out, requests FROM usage_daily \
                 WHERE user_id = $1 AND day >= $2 ORDER BY day, user_id, bucket",
            )
            .bind(user_id.to_owned())
            .bind(from_day.to_owned()),
            None => sqlx::query(
                "SELECT day, user_id, bucket, bytes_in, bytes_out, requests FROM usage_daily \
                 WHERE day >= $1 ORDER BY day, user_id, bucket",
            )
            .bind(from_day.to_owned()),
        };
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        rows.iter()
            .map(|row| {
                Ok(UsageRow {
                    day: row.try_get("day")?,
                    user_id: row.try_get("user_id")?,
                    bucket: row.try_get("bucket")?,
                    bytes_in: row.try_get("bytes_in")?,
                    bytes_out: row.try_get("bytes_out")?,
                    requests: row.try_get("requests")?,
                })
            })
            .collect()
    }
}
