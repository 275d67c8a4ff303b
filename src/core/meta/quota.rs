//! Quotas on bytes stored, per bucket and per user (over the buckets they
//! own). Checked inside the commit that would grow usage, so concurrent
//! uploads cannot overshoot, and also before an upload's bytes are stored.

use sqlx::{AnyConnection, Row};

use super::{MetaError, MetaResult, MetaStore, MutationOutcome};

/// How much a bucket may still grow, and which quota sets that limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub scope: &'static str,
    pub quota: i64,
    pub used: i64,
}

impl Room {
    pub fn left(&self) -> i64 {
        self.quota - self.used
    }

    pub fn refuse(&self) -> MetaError {
        MetaError::QuotaExceeded {
            scope: self.scope,
            quota: self.quota,
            used: self.used,
        }
    }
}

/// The tightest quota over `bucket`, if any applies.
pub(super) async fn room(conn: &mut AnyConnection, bucket: &str) -> MetaResult<Option<Room>> {
    let row = sqlx::query(
        "SELECT b.quota_bytes AS bucket_quota, b.bytes_stored, b.owner_id, u.quota_bytes AS user_quota \
         FROM buckets b JOIN users u ON u.id = b.owner_id WHERE b.name = $1",
    )
    .bind(bucket)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut tightest: Option<Room> = None;
    if let Some(quota) = row.try_get::<Option<i64>, _>("bucket_quota")? {
        tightest = Some(Room {
            scope: "bucket",
            quota,
            used: row.try_get("bytes_stored")?,
        });
    }
    if let Some(quota) = row.try_get::<Option<i64>, _>("user_quota")? {
        let owner: String = row.try_get("owner_id")?;
        let used: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(bytes_stored), 0) AS BIGINT) AS used FROM buckets WHERE owner_id = $1",
        )
        .bind(owner)
        .fetch_one(&mut *conn)
        .await?
        .try_get("used")?;
        let user = Room {
            scope: "user",
            quota,
            used,
        };
        if tightest.is_none_or(|t| user.left() < t.left()) {
            tightest = Some(user);
        }
    }
    Ok(tightest)
}

/// Refuses growth beyond the room left.
pub(super) async fn check_growth(
    conn: &mut AnyConnection,
    bucket: &str,
    growth: i64,
) -> MetaResult<()> {
    if growth <= 0 {
        return Ok(());
    }
    match room(conn, bucket).await? {
        Some(room) if growth > room.left() => Err(room.refuse()),
        _ => Ok(()),
    }
}

pub(super) async fn set_user_quota(
    conn: &mut AnyConnection,
    user_id: &str,
    bytes: Option<i64>,
) -> MetaResult<MutationOutcome> {
    super::touched(
        sqlx::query("UPDATE users SET quota_bytes = $1 WHERE id = $2")
            .bind(bytes)
            .bind(user_id)
            .execute(&mut *conn)
            .await?,
        MetaError::NoSuchUser,
    )
}

pub(super) async fn set_bucket_quota(
    conn: &mut AnyConnection,
    bucket: &str,
    bytes: Option<i64>,
) -> MetaResult<MutationOutcome> {
    super::touched(
        sqlx::query("UPDATE buckets SET quota_bytes = $1 WHERE name = $2")
            .bind(bytes)
            .bind(bucket)
            .execute(&mut *conn)
            .await?,
        MetaError::NoSuchBucket,
    )
}

impl MetaStore {
    /// The room left in a bucket, read outside any write (the early check
    /// before an upload's bytes are stored).
    pub async fn quota_room(&self, bucket: &str) -> MetaResult<Option<Room>> {
        let mut conn = self.conn().await?;
        room(&mut conn, bucket).await
    }

    /// Every user's quota on bytes stored, by user id (users without one
    /// are left out).
    pub async fn user_quotas(&self) -> MetaResult<std::collections::BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT id, quota_bytes FROM users WHERE quota_bytes IS NOT NULL")
            .fetch_all(&mut *self.conn().await?)
            .await?;
        let mut quotas = std::collections::BTreeMap::new();
        for row in rows {
            quotas.insert(
                row.try_get::<String, _>("id")?,
                row.try_get::<i64, _>("quota_bytes")?,
            );
        }
        Ok(quotas)
    }
}
