//! A group's life once it has files: sealed at its window's end plus grace
//! (by the sealer task, which also takes back lapsed leases and applies
//! retention) or early on request; claimed by a processor under a lease it
//! renews; published with its result, or sealed again after a failed
//! attempt and failed after the last; reopened by its owner; and forgotten
//! once past the pool's retention.

use std::time::Duration;

use super::{detect_type, pool_object, rfc3339, sha256_of};
use crate::core::blob::ByteStream;
use crate::core::meta::MutationOutcome;
use crate::core::meta::pools::{PoolMutation, PoolOutcome};
use crate::core::{CoreError, CoreResult, Store, now_ms};
use crate::model::{
    ContributionFilter, ContributionRecord, GroupRecord, MemberRecord, MemberRole, PoolEvent,
    PoolEventKind, PoolRecord,
};

/// How long a claim holds a group unless renewed.
pub const DEFAULT_LEASE_SECS: i64 = 300;

/// Attempts (claims whose lease lapsed or whose processor reported a
/// failure) before a group fails.
const MAX_ATTEMPTS: i64 = 3;

impl Store {
    /// Seals every open group whose window and grace have passed.
    pub async fn seal_due_groups(&self) -> CoreResult<u64> {
        self.seal(None, None).await
    }

    /// Seals one open group before its time.
    pub async fn seal_group(&self, pool: &PoolRecord, start_ms: i64) -> CoreResult<()> {
        self.seal(Some(pool.id.clone()), Some(start_ms)).await?;
        Ok(())
    }

    async fn seal(&self, pool_id: Option<String>, start_ms: Option<i64>) -> CoreResult<u64> {
        let outcome = self
            .apply_pool(PoolMutation::Seal {
                pool_id,
                start_ms,
                now_ms: now_ms(),
            })
            .await?;
        let sealed = match outcome {
            MutationOutcome::Pool(PoolOutcome::Sealed(n)) => n,
            _ => 0,
        };
        if sealed > 0 {
            self.pool_events.notify_waiters();
        }
        Ok(sealed)
    }

    /// Seals groups on time and takes back lapsed leases, forever: at each
    /// deadline, and after a restart at once for those that passed while
    /// down.
    pub async fn run_sealer(self) {
        const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);
        // The first pass runs soon after start.
        let mut last_expiry = std::time::Instant::now() - EXPIRY_INTERVAL;
        loop {
            if let Err(e) = self.seal_due_groups().await {
                tracing::warn!(error = %e, "sealing due groups failed");
            }
            match self
                .apply_pool(PoolMutation::ExpireLeases {
                    now_ms: now_ms(),
                    max_attempts: MAX_ATTEMPTS,
                })
                .await
            {
                Ok(MutationOutcome::Pool(PoolOutcome::Sealed(n))) if n > 0 => {
                    self.pool_events.notify_waiters();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "expiring leases failed"),
            }
            if last_expiry.elapsed() > EXPIRY_INTERVAL {
                last_expiry = std::time::Instant::now();
                self.expire_pool_data().await;
            }
            let next = match (
                self.meta.next_seal_ms().await,
                self.meta.next_lease_expiry_ms().await,
            ) {
                (Ok(a), Ok(b)) => a.into_iter().chain(b.map(|b| b + 1)).min(),
                _ => None,
            };
            let wait = next.map_or(1000, |at| (at - now_ms()).clamp(20, 1000)) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// Applies every pool's retention.
    pub async fn expire_pool_data(&self) {
        let pools = match self.meta.pools(None).await {
            Ok(pools) => pools,
            Err(e) => {
                tracing::warn!(error = %e, "listing pools for retention failed");
                return;
            }
        };
        for pool in pools {
            let before_ms = now_ms() - pool.retention_days * 86_400_000;
            if let Err(e) = self.forget_groups_before(&pool, before_ms).await {
                tracing::warn!(error = %e, pool = %pool.name, "applying retention failed");
            }
        }
        self.sweep.notify_one();
    }

    /// Forgets the pool's finished groups that ended before `before_ms`,
    /// with their files, results and events, a batch per transaction.
    pub async fn forget_groups_before(&self, pool: &PoolRecord, before_ms: i64) -> CoreResult<()> {
        loop {
            let expired = self
                .apply_pool(PoolMutation::Expire {
                    pool_id: pool.id.clone(),
                    before_ms,
                })
                .await?;
            if !matches!(expired, MutationOutcome::Pool(PoolOutcome::Sealed(n)) if n > 0) {
                self.sweep.notify_one();
                return Ok(());
            }
        }
    }

    fn require_processor(member: &MemberRecord) -> CoreResult<()> {
        if member.role == MemberRole::Processor {
            Ok(())
        } else {
            Err(CoreError::AccessDenied)
        }
    }

    /// A processor claims a sealed group (that one, or the oldest);
    /// `None` when there is none.
    pub async fn claim_group(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        start_ms: Option<i64>,
        lease_secs: i64,
    ) -> CoreResult<Option<GroupRecord>> {
        Self::require_processor(member)?;
        let outcome = self
            .apply_pool(PoolMutation::Claim {
                pool_id: pool.id.clone(),
                start_ms,
                member: member.name.clone(),
                lease_id: uuid::Uuid::new_v4().simple().to_string(),
                now_ms: now_ms(),
                lease_ms: lease_secs * 1000,
            })
            .await?;
        match outcome {
            MutationOutcome::Pool(PoolOutcome::Claimed(group)) => {
                self.pool_events.notify_waiters();
                Ok(Some(*group))
            }
            _ => Ok(None),
        }
    }

    /// Extends the lease; answers its new expiry (ms).
    pub async fn renew_lease(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        start_ms: i64,
        lease_id: &str,
        lease_secs: i64,
    ) -> CoreResult<i64> {
        Self::require_processor(member)?;
        let now = now_ms();
        self.apply_pool(PoolMutation::Renew {
            pool_id: pool.id.clone(),
            start_ms,
            lease_id: lease_id.to_owned(),
            now_ms: now,
            lease_ms: lease_secs * 1000,
        })
        .await?;
        Ok(now + lease_secs * 1000)
    }

    /// Stores the result of a held group and publishes it to the pool.
    pub async fn publish_result(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        start_ms: i64,
        lease_id: &str,
        stream: ByteStream,
    ) -> CoreResult<GroupRecord> {
        Self::require_processor(member)?;
        let (stored, head, _) = self
            .store_pool_file(pool, stream)
            .await?
            .ok_or(CoreError::EntityTooLarge)?;
        let now = now_ms();
        let sha256 = sha256_of(&stored)?;
        let result = pool_object(
            pool,
            format!("results/{}/result", rfc3339(start_ms)),
            &stored,
            detect_type(&head),
            now,
        );
        let event = PoolEvent {
            id: 0,
            pool_id: pool.id.clone(),
            member_id: None,
            kind: PoolEventKind::GroupPublished,
            group_start_ms: Some(start_ms),
            data: serde_json::json!({
                "size": result.size,
                "sha256": sha256,
                "etag": result.etag,
                "key": result.key,
                "processor": member.name,
            })
            .to_string(),
            time_ms: now,
        };
        let published = self
            .apply_pool(PoolMutation::Publish {
                pool_id: pool.id.clone(),
                start_ms,
                lease_id: lease_id.to_owned(),
                result: Box::new(result),
                event,
            })
            .await;
        if let Err(e) = published {
            if e.is_refusal() {
                self.discard(&stored.body).await;
            }
            return Err(e.into());
        }
        self.pool_events.notify_waiters();
        self.sweep.notify_one();
        Ok(self.meta.group(&pool.id, start_ms).await?)
    }

    /// The processor reports that it could not make a result. Like a
    /// lapsed lease, this ends one attempt: the group is sealed again for
    /// another processor, and fails after the last attempt; a `last`
    /// report (retrying cannot help) fails it at once. Answers the group
    /// as the report left it.
    pub async fn fail_group(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        start_ms: i64,
        lease_id: &str,
        reason: &str,
        last: bool,
    ) -> CoreResult<GroupRecord> {
        Self::require_processor(member)?;
        let outcome = self
            .apply_pool(PoolMutation::Fail {
                pool_id: pool.id.clone(),
                start_ms,
                lease_id: lease_id.to_owned(),
                reason: reason.chars().take(4000).collect(),
                last,
                max_attempts: MAX_ATTEMPTS,
                now_ms: now_ms(),
            })
            .await?;
        self.pool_events.notify_waiters();
        match outcome {
            MutationOutcome::Pool(PoolOutcome::AttemptEnded(group)) => Ok(*group),
            _ => Err(CoreError::Internal("unexpected outcome".into())),
        }
    }

    /// The owner gives a failed group another three attempts.
    pub async fn reopen_group(&self, pool: &PoolRecord, start_ms: i64) -> CoreResult<()> {
        self.apply_pool(PoolMutation::Reopen {
            pool_id: pool.id.clone(),
            start_ms,
            now_ms: now_ms(),
        })
        .await?;
        self.pool_events.notify_waiters();
        Ok(())
    }

    /// Every contribution of a group, in order.
    pub async fn manifest(
        &self,
        pool: &PoolRecord,
        start_ms: i64,
    ) -> CoreResult<Vec<ContributionRecord>> {
        self.meta.group(&pool.id, start_ms).await?;
        let mut all = Vec::new();
        let mut filter = ContributionFilter {
            group_start_ms: Some(start_ms),
            ..Default::default()
        };
        loop {
            let page = self.meta.contributions(&pool.id, &filter, 1000).await?;
            let done = page.len() < 1000;
            filter.after_id = page.last().map(|c| c.id.clone());
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Notes that a member fetched a group's result.
    pub async fn record_delivery(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        start_ms: i64,
    ) -> CoreResult<()> {
        self.apply_pool(PoolMutation::Delivered {
            pool_id: pool.id.clone(),
            member_id: member.id.clone(),
            start_ms,
            now_ms: now_ms(),
        })
        .await?;
        Ok(())
    }
}
