//! The reads of the pool tables: pools, members (by token too), groups,
//! contributions, the event log, webhook attempts, deliveries, and the next
//! deadlines the sealer waits for.

use sqlx::Row;

use super::rows::{
    CONTRIBUTION_COLUMNS, EVENT_COLUMNS, GROUP_COLUMNS, MEMBER_COLUMNS, POOL_COLUMNS,
    contribution_from_row, event_from_row, group_from_row, member_from_row, pool_from_row,
};
use crate::core::meta::{MetaError, MetaResult, MetaStore};
use crate::model::{
    ContributionFilter, ContributionRecord, GroupRecord, GroupState, MemberRecord, PoolError,
    PoolEvent, PoolEventKind, PoolRecord, WebhookAttempt,
};

impl MetaStore {
    pub async fn pool(&self, name: &str) -> MetaResult<PoolRecord> {
        let row = sqlx::query(&format!("SELECT {POOL_COLUMNS} FROM pools WHERE name = $1"))
            .bind(name)
            .fetch_optional(&mut *self.conn().await?)
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
        .fetch_all(&mut *self.conn().await?)
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
        .fetch_optional(&mut *self.conn().await?)
        .await?
        else {
            return Ok(None);
        };
        let member = member_from_row(&row)?;
        let pool = sqlx::query(&format!("SELECT {POOL_COLUMNS} FROM pools WHERE id = $1"))
            .bind(&member.pool_id)
            .fetch_one(&mut *self.conn().await?)
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
        .fetch_optional(&mut *self.conn().await?)
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
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(member_from_row)
        .collect()
    }

    /// A page of a pool's members by name: those whose names contain
    /// `contains` (letters, digits and '-' only, as names have), after the
    /// name `after`.
    pub async fn members_named(
        &self,
        pool_id: &str,
        contains: &str,
        after: &str,
        limit: i64,
    ) -> MetaResult<Vec<MemberRecord>> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM pool_members \
             WHERE pool_id = $1 AND name LIKE $2 AND name > $3 ORDER BY name LIMIT $4"
        ))
        .bind(pool_id)
        .bind(format!("%{contains}%"))
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(member_from_row)
        .collect()
    }

    /// How many members a pool has.
    pub async fn member_count(&self, pool_id: &str) -> MetaResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM pool_members WHERE pool_id = $1")
            .bind(pool_id)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// For each of the members named that has sent any: how many files
    /// and when the last came (ms).
    pub async fn member_activity(
        &self,
        pool_id: &str,
        member_ids: &[String],
    ) -> MetaResult<Vec<(String, i64, i64)>> {
        if member_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT member_id, COUNT(*) AS n, MAX(created_ms) AS last_ms FROM contributions \
             WHERE pool_id = $1 AND member_id IN ({}) GROUP BY member_id",
            placeholders(2, member_ids.len())
        );
        member_ids
            .iter()
            .fold(sqlx::query(&sql).bind(pool_id), |query, id| query.bind(id))
            .fetch_all(&mut *self.conn().await?)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("member_id")?,
                    row.try_get("n")?,
                    row.try_get("last_ms")?,
                ))
            })
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
        .fetch_all(&mut *self.conn().await?)
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
        .fetch_optional(&mut *self.conn().await?)
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
        .fetch_optional(&mut *self.conn().await?)
        .await?
        .as_ref()
        .map(group_from_row)
        .transpose()
    }

    /// The newest event id (0 when there is none).
    pub async fn last_pool_event_id(&self) -> MetaResult<i64> {
        let row = sqlx::query("SELECT id FROM pool_events ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *self.conn().await?)
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
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    /// Events of the pools named after `after_id`, in id order.
    pub async fn pool_events_in(
        &self,
        pool_ids: &[String],
        after_id: i64,
        limit: i64,
    ) -> MetaResult<Vec<PoolEvent>> {
        if pool_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM pool_events WHERE id > $1 AND pool_id IN ({}) \
             ORDER BY id LIMIT $2",
            placeholders(3, pool_ids.len())
        );
        pool_ids
            .iter()
            .fold(sqlx::query(&sql).bind(after_id).bind(limit), |query, id| {
                query.bind(id)
            })
            .fetch_all(&mut *self.conn().await?)
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
        .fetch_all(&mut *self.conn().await?)
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
            "SELECT event_id, attempt, time_ms, status, error, delivered, next_try_ms \
             FROM webhook_attempts \
             WHERE pool_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(pool_id)
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
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
                next_try_ms: row.try_get("next_try_ms")?,
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
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("member_id")?, row.try_get("fetched_ms")?)))
        .collect()
    }

    /// Which of the members named (by id) fetched the result of a group.
    pub async fn deliveries_to(
        &self,
        pool_id: &str,
        start_ms: i64,
        member_ids: &[String],
    ) -> MetaResult<Vec<String>> {
        if member_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT member_id FROM pool_deliveries \
             WHERE pool_id = $1 AND group_start_ms = $2 AND member_id IN ({})",
            placeholders(3, member_ids.len())
        );
        member_ids
            .iter()
            .fold(
                sqlx::query(&sql).bind(pool_id).bind(start_ms),
                |query, id| query.bind(id),
            )
            .fetch_all(&mut *self.conn().await?)
            .await?
            .iter()
            .map(|row| Ok(row.try_get("member_id")?))
            .collect()
    }

    /// The earliest lease expiry of a group being processed.
    pub async fn next_lease_expiry_ms(&self) -> MetaResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT lease_expires_ms FROM pool_groups WHERE state = $1 \
             ORDER BY lease_expires_ms LIMIT 1",
        )
        .bind(GroupState::Processing.as_str())
        .fetch_optional(&mut *self.conn().await?)
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
        .fetch_optional(&mut *self.conn().await?)
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
        .fetch_all(&mut *self.conn().await?)
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
        .fetch_optional(&mut *self.conn().await?)
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
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("member_id")?, row.try_get("n")?)))
        .collect()
    }

    /// A member's newest contributions first, before the id `before_id`
    /// (the cursor of the next older page).
    pub async fn member_contributions_newest_first(
        &self,
        pool_id: &str,
        member_id: &str,
        before_id: Option<&str>,
        limit: i64,
    ) -> MetaResult<Vec<ContributionRecord>> {
        sqlx::query(&format!(
            "SELECT {CONTRIBUTION_COLUMNS} FROM contributions \
             WHERE pool_id = $1 AND member_id = $2 AND ($3 = '' OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(pool_id)
        .bind(member_id)
        .bind(before_id.unwrap_or_default())
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(contribution_from_row)
        .collect()
    }

    /// The newest events of one kind addressed to one member, newest first.
    pub async fn member_events_newest_first(
        &self,
        pool_id: &str,
        member_id: &str,
        kind: PoolEventKind,
        limit: i64,
    ) -> MetaResult<Vec<PoolEvent>> {
        sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM pool_events \
             WHERE pool_id = $1 AND member_id = $2 AND kind = $3 ORDER BY id DESC LIMIT $4"
        ))
        .bind(pool_id)
        .bind(member_id)
        .bind(kind.as_str())
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(event_from_row)
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
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }
}

/// `count` numbered parameters from `$first`, for an `IN (...)` list.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
