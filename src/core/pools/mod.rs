//! Pool rules, in the service layer: creating a pool (its name, window,
//! limits, types and webhook checked), which window a time falls in, and
//! the helpers the parts below share. The metadata layer stores what these
//! rules decide.
//!
//! - [`members`]: adding, changing and removing members, and finding the
//!   member behind a token.
//! - [`contributions`]: what a pool accepts from a member (a file's type
//!   detected from its bytes, its size, its timestamp) and the receipt each
//!   file gets.
//! - [`lifecycle`]: a group's life once it has files: sealing (on time, by
//!   the sealer task, or early), claims under a lease, results, failure
//!   reports, reopening, deliveries and retention.

mod contributions;
mod lifecycle;
mod members;

use std::sync::Arc;

use super::accounts::ROOT_USER_ID;
use super::objects::StoredBody;
use super::{CoreError, CoreResult, Principal, Store, now_ms};
use crate::core::meta::pools::PoolMutation;
use crate::core::meta::{Mutation, MutationOutcome};
use crate::model::{ObjectAttrs, ObjectRecord, PoolError, PoolEvent, PoolRecord, Secret};

pub use self::contributions::{Receipt, detect_type};
pub use self::lifecycle::DEFAULT_LEASE_SECS;
pub use self::members::MEMBER_TOKEN_PREFIX;

/// Content types refused unless a pool says otherwise: programs.
pub const DEFAULT_FORBIDDEN: [&str; 8] = [
    "application/x-executable",
    "application/vnd.microsoft.portable-executable",
    "application/x-mach-binary",
    "application/vnd.android.dex",
    "application/java",
    "application/wasm",
    "application/x-shellscript",
    "application/x-msdownload",
];

/// What a pool is created with; `None` takes the default. No `Debug`: it
/// holds the webhook secret as sent.
#[derive(Clone, Default)]
pub struct PoolSpec {
    pub name: String,
    pub window_secs: i64,
    pub grace_secs: Option<i64>,
    pub max_file_size: Option<i64>,
    pub allowed_types: Vec<String>,
    pub forbidden_types: Option<Vec<String>>,
    pub allow_empty: bool,
    pub retention_days: Option<i64>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

/// The window `[start, end)` that contains `time_ms`.
pub fn window_of(pool: &PoolRecord, time_ms: i64) -> (i64, i64) {
    let width = pool.window_secs * 1000;
    let start = pool.origin_ms + (time_ms - pool.origin_ms).div_euclid(width) * width;
    (start, start + width)
}

fn invalid(field: &str, why: impl std::fmt::Display) -> CoreError {
    CoreError::InvalidArgument(format!("{field}: {why}"))
}

/// Pool and member names: 1 to 56 of `a-z`, `0-9` and `-`, not starting or
/// ending with `-` (a pool's bucket is `pool-<name>`).
fn check_name(field: &str, name: &str) -> CoreResult<()> {
    let ok = (1..=56).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "1 to 56 of a-z, 0-9 and '-', not starting or ending with '-'",
        ))
    }
}

/// The object row of a stored pool file (a contribution or a result).
fn pool_object(
    pool: &PoolRecord,
    key: String,
    stored: &StoredBody,
    content_type: String,
    now: i64,
) -> ObjectRecord {
    ObjectRecord {
        bucket: pool.bucket.clone(),
        key,
        size: stored.digests.size as i64,
        etag: stored.digests.etag_hex(),
        last_modified_ms: now,
        attrs: ObjectAttrs {
            content_type: Some(content_type),
            ..ObjectAttrs::default()
        },
        body: stored.body.clone(),
        parts_count: None,
    }
}

/// A stored pool file's SHA-256 (always computed for pool files).
fn sha256_of(stored: &StoredBody) -> CoreResult<String> {
    stored
        .digests
        .sha256_hex()
        .ok_or_else(|| CoreError::Internal("no SHA-256 computed".into()))
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl Store {
    async fn apply_pool(
        &self,
        mutation: PoolMutation,
    ) -> crate::core::meta::MetaResult<MutationOutcome> {
        self.meta.apply(Mutation::Pool(Box::new(mutation))).await
    }

    /// Creates a pool owned by `who`, with a bucket of its own.
    pub async fn create_pool(&self, who: &Principal, spec: PoolSpec) -> CoreResult<PoolRecord> {
        check_name("name", &spec.name)?;
        const MIN_WINDOW: i64 = 60;
        const MAX_WINDOW: i64 = 30 * 24 * 3600;
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&spec.window_secs) {
            return Err(invalid(
                "window_secs",
                format!("{MIN_WINDOW} (1 minute) to {MAX_WINDOW} (30 days)"),
            ));
        }
        let grace_secs = spec
            .grace_secs
            .unwrap_or_else(|| (spec.window_secs / 4).min(3600));
        if !(0..=3600).contains(&grace_secs) {
            return Err(invalid("grace_secs", "0 to 3600 (1 hour)"));
        }
        let max_file_size = spec.max_file_size.unwrap_or(64 << 20);
        if max_file_size < 1 || max_file_size as u64 > self.settings.max_object_size {
            return Err(invalid(
                "max_file_size",
                format!("1 to {} bytes", self.settings.max_object_size),
            ));
        }
        let retention_days = spec.retention_days.unwrap_or(30);
        if !(1..=3650).contains(&retention_days) {
            return Err(invalid("retention_days", "1 to 3650"));
        }
        for (field, list) in [
            ("allowed_types", Some(&spec.allowed_types)),
            ("forbidden_types", spec.forbidden_types.as_ref()),
        ] {
            for t in list.into_iter().flatten() {
                if !t.contains('/') || t.len() > 127 {
                    return Err(invalid(field, format!("{t:?} is not a content type")));
                }
            }
        }
        if let Some(url) = &spec.webhook_url {
            let parsed = url::Url::parse(url).map_err(|e| invalid("webhook_url", e))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid("webhook_url", "http or https"));
            }
        }
        let now = now_ms();
        let pool = PoolRecord {
            id: uuid::Uuid::now_v7().simple().to_string(),
            bucket: format!("pool-{}", spec.name),
            name: spec.name,
            owner_id: who.user_id.clone(),
            window_secs: spec.window_secs,
            grace_secs,
            origin_ms: 0,
            max_file_size,
            allowed_types: spec.allowed_types,
            forbidden_types: spec
                .forbidden_types
                .unwrap_or_else(|| DEFAULT_FORBIDDEN.iter().map(|s| s.to_string()).collect()),
            allow_empty: spec.allow_empty,
            retention_days,
            webhook_url: spec.webhook_url,
            webhook_secret: spec.webhook_secret.map(Secret::new),
            webhook_cursor: 0,
            created_ms: now,
        };
        self.apply_pool(PoolMutation::Create { pool: pool.clone() })
            .await?;
        Ok(pool)
    }

    /// A pool its owner (or an admin) manages.
    pub async fn owned_pool(&self, who: &Principal, name: &str) -> CoreResult<PoolRecord> {
        let pool = self.meta.pool(name).await?;
        if pool.owner_id == who.user_id || who.is_admin() || who.user_id == ROOT_USER_ID {
            Ok(pool)
        } else {
            // Someone else's pool is not even acknowledged.
            Err(PoolError::NoSuchPool.into())
        }
    }

    /// The pool by name, for the server's own tasks (no caller to check).
    pub async fn pool_by_name(&self, name: &str) -> CoreResult<PoolRecord> {
        Ok(self.meta.pool(name).await?)
    }

    /// A page of the pool's event log after `after`, for every member.
    pub async fn pool_event_page(
        &self,
        pool: &PoolRecord,
        after: i64,
        limit: i64,
    ) -> CoreResult<Vec<PoolEvent>> {
        Ok(self.meta.pool_events(&pool.id, None, after, limit).await?)
    }

    /// The id of the newest event of any pool, for a page that follows
    /// events from now on (0 when there is none).
    pub async fn last_pool_event_id(&self) -> CoreResult<i64> {
        Ok(self.meta.last_pool_event_id().await?)
    }

    /// Notified whenever this node writes a pool event (events written by
    /// other nodes are found by polling).
    pub fn pool_event_signal(&self) -> Arc<tokio::sync::Notify> {
        self.pool_events.clone()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::core::pools) fn pool(window_secs: i64) -> PoolRecord {
        PoolRecord {
            id: "p".into(),
            name: "p".into(),
            owner_id: "o".into(),
            bucket: "pool-p".into(),
            window_secs,
            grace_secs: 0,
            origin_ms: 0,
            max_file_size: 1,
            allowed_types: vec![],
            forbidden_types: DEFAULT_FORBIDDEN.iter().map(|s| s.to_string()).collect(),
            allow_empty: false,
            retention_days: 30,
            webhook_url: None,
            webhook_secret: None,
            webhook_cursor: 0,
            created_ms: 0,
        }
    }

    #[test]
    fn windows_align_to_the_origin_also_before_it() {
        let p = pool(60);
        assert_eq!(window_of(&p, 0), (0, 60_000));
        assert_eq!(window_of(&p, 59_999), (0, 60_000));
        assert_eq!(window_of(&p, 60_000), (60_000, 120_000));
        assert_eq!(window_of(&p, -1), (-60_000, 0));
    }
}
