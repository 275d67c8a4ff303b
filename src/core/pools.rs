//! Pool rules: who owns and who belongs to a pool, which window a file
//! falls in, what a pool accepts (size, emptiness, type detected from the
//! bytes), when groups seal, and the receipts members get. The metadata
//! layer stores what these rules decide.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;

use super::accounts::ROOT_USER_ID;
use super::digest::ChecksumAlgorithm;
use super::objects::IncomingBody;
use super::sessions::token_hash;
use super::{CoreError, CoreResult, Principal, Store, now_ms};
use crate::core::blob::ByteStream;
use crate::core::meta::pools::{
    MemberChange, NewContribution, NewMember, PoolMutation, PoolOutcome,
};
use crate::core::meta::{Mutation, MutationOutcome};
use crate::model::{
    ContributionRecord, GroupRecord, GroupState, MemberRecord, MemberRole, ObjectAttrs,
    ObjectRecord, PoolError, PoolEvent, PoolEventKind, PoolRecord, RefusalReason, Secret,
};

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

/// How far in the future a client timestamp may be (clocks drift).
const FUTURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;
/// How long a claim holds a group unless renewed.
pub const DEFAULT_LEASE_SECS: i64 = 300;
/// Attempts (claims whose lease lapsed or whose processor reported a
/// failure) before a group fails.
const MAX_ATTEMPTS: i64 = 3;
/// Bytes looked at to detect a file's type.
const SNIFF_LEN: usize = 8192;
/// Prefix of member tokens, so a bearer token says what it is.
pub const MEMBER_TOKEN_PREFIX: &str = "cpm_";

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

/// What a file sent to a pool became.
#[derive(Debug, Clone)]
pub enum Receipt {
    Accepted(ContributionRecord),
    /// Sent before: the first receipt's contribution.
    Duplicate(ContributionRecord),
    /// Not stored; `code` is stable, `message` explains.
    Refused {
        code: RefusalReason,
        message: String,
    },
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

/// The content type of a file, from its first bytes.
pub fn detect_type(head: &[u8]) -> String {
    if head.starts_with(b"#!") {
        return "application/x-shellscript".into();
    }
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().into();
    }
    // Text when the head is UTF-8, allowing a character cut at its end.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() >= SNIFF_LEN,
    };
    if text && !head.contains(&0) {
        "text/plain".into()
    } else {
        "application/octet-stream".into()
    }
}

fn type_matches(pattern: &str, mime: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some(family) => mime.split('/').next() == Some(family),
        None => pattern == mime,
    }
}

fn type_allowed(pool: &PoolRecord, mime: &str) -> bool {
    !pool.forbidden_types.iter().any(|p| type_matches(p, mime))
        && (pool.allowed_types.is_empty()
            || pool.allowed_types.iter().any(|p| type_matches(p, mime)))
}

fn new_member_token() -> String {
    format!(
        "{MEMBER_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    )
}

/// The object row of a stored pool file (a contribution or a result).
fn pool_object(
    pool: &PoolRecord,
    key: String,
    stored: &super::objects::StoredBody,
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
fn sha256_of(stored: &super::objects::StoredBody) -> CoreResult<String> {
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

/// Counts a body's bytes and keeps its first ones, refusing it once it
/// grows past the pool's limit.
#[derive(Default)]
struct BodyWatch {
    head: Vec<u8>,
    len: u64,
    too_large: bool,
}

fn watched(stream: ByteStream, limit: u64, watch: Arc<Mutex<BodyWatch>>) -> ByteStream {
    Box::pin(stream.map(move |chunk| {
        let chunk: Bytes = chunk?;
        let mut w = watch
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        w.len += chunk.len() as u64;
        if w.head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - w.head.len()).min(chunk.len());
            w.head.extend_from_slice(&chunk[..take]);
        }
        if w.len > limit {
            w.too_large = true;
            return Err(std::io::Error::other(
                "the file is larger than the pool allows",
            ));
        }
        Ok(chunk)
    }))
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

    /// Adds members; answers each with its token, shown only this once.
    pub async fn add_members(
        &self,
        pool: &PoolRecord,
        wanted: Vec<(String, String)>,
    ) -> CoreResult<Vec<(MemberRecord, String)>> {
        if wanted.is_empty() || wanted.len() > 10_000 {
            return Err(invalid("count", "1 to 10000 members at a time"));
        }
        let now = now_ms();
        let mut created = Vec::with_capacity(wanted.len());
        let mut rows = Vec::with_capacity(wanted.len());
        for (name, role) in wanted {
            check_name("name", &name)?;
            let role: MemberRole = role
                .parse()
                .map_err(|_| invalid("role", "contributor, listener or processor"))?;
            let token = new_member_token();
            let member = MemberRecord {
                id: uuid::Uuid::now_v7().simple().to_string(),
                pool_id: pool.id.clone(),
                name,
                role,
                created_ms: now,
                disabled_ms: None,
            };
            rows.push(NewMember {
                member: member.clone(),
                token_hash: Secret::new(token_hash(&token)),
            });
            created.push((member, token));
        }
        self.apply_pool(PoolMutation::AddMembers {
            pool_id: pool.id.clone(),
            members: rows,
        })
        .await?;
        Ok(created)
    }

    pub async fn set_member_disabled(
        &self,
        pool: &PoolRecord,
        name: &str,
        disabled: bool,
    ) -> CoreResult<()> {
        let change = if disabled {
            MemberChange::Disable
        } else {
            MemberChange::Enable
        };
        self.change_member(pool, name, change).await
    }

    async fn change_member(
        &self,
        pool: &PoolRecord,
        name: &str,
        change: MemberChange,
    ) -> CoreResult<()> {
        self.apply_pool(PoolMutation::ChangeMember {
            pool_id: pool.id.clone(),
            name: name.to_owned(),
            change,
            now_ms: now_ms(),
        })
        .await?;
        self.pool_events.notify_waiters();
        Ok(())
    }

    /// Gives a member a new token; the old one stops working at once.
    pub async fn rekey_member(&self, pool: &PoolRecord, name: &str) -> CoreResult<String> {
        let token = new_member_token();
        self.change_member(
            pool,
            name,
            MemberChange::Rekey(Secret::new(token_hash(&token))),
        )
        .await?;
        Ok(token)
    }

    pub async fn remove_member(&self, pool: &PoolRecord, name: &str) -> CoreResult<()> {
        self.change_member(pool, name, MemberChange::Remove).await
    }

    /// The member behind a token, refused when unknown or disabled.
    pub async fn pool_member(&self, token: &str) -> CoreResult<(MemberRecord, PoolRecord)> {
        let (member, pool) = self
            .meta
            .member_by_token(&token_hash(token))
            .await?
            .ok_or(CoreError::BadSession)?;
        if member.disabled_ms.is_some() {
            return Err(CoreError::AccountDisabled(member.name));
        }
        Ok((member, pool))
    }

    /// Stores one file from a member. Rule violations become a refused
    /// receipt (and a `contribution.refused` event for the member); only
    /// failures of the server itself are errors.
    pub async fn contribute(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        name: &str,
        client_time_ms: i64,
        stream: ByteStream,
    ) -> CoreResult<Receipt> {
        let receipt = self
            .contribute_file(pool, member, name, client_time_ms, stream)
            .await?;
        if let Receipt::Refused { code, message } = &receipt {
            self.record_refusal(pool, member, name, Some(client_time_ms), *code, message)
                .await?;
        }
        Ok(receipt)
    }

    /// Tells a member, through its events, that a file was refused.
    pub async fn record_refusal(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        name: &str,
        client_time_ms: Option<i64>,
        code: RefusalReason,
        message: &str,
    ) -> CoreResult<()> {
        let event = PoolEvent {
            id: 0,
            pool_id: pool.id.clone(),
            member_id: Some(member.id.clone()),
            kind: PoolEventKind::ContributionRefused,
            group_start_ms: None,
            data: serde_json::json!({
                "member": member.name,
                "name": name,
                "timestamp": client_time_ms.map(rfc3339),
                "reason": code,
                "message": message,
            })
            .to_string(),
            time_ms: now_ms(),
        };
        self.apply_pool(PoolMutation::Event(Box::new(event)))
            .await?;
        self.pool_events.notify_waiters();
        Ok(())
    }

    async fn contribute_file(
        &self,
        pool: &PoolRecord,
        member: &MemberRecord,
        name: &str,
        client_time_ms: i64,
        stream: ByteStream,
    ) -> CoreResult<Receipt> {
        let refused = |code, message: String| Ok(Receipt::Refused { code, message });
        if member.role != MemberRole::Contributor {
            return Err(CoreError::AccessDenied);
        }
        if name.is_empty() || name.len() > 255 || name.contains(['/', '\\', '\0']) {
            return refused(
                RefusalReason::BadName,
                "a file name has 1 to 255 bytes and no slashes".into(),
            );
        }
        let now = now_ms();
        if client_time_ms > now + FUTURE_TOLERANCE_MS {
            return refused(
                RefusalReason::InFuture,
                "the timestamp is more than 5 minutes in the future".into(),
            );
        }
        let (start_ms, end_ms) = window_of(pool, client_time_ms);
        let seal_at_ms = end_ms + pool.grace_secs * 1000;
        if seal_at_ms <= now {
            return refused(
                RefusalReason::Sealed,
                format!("the group of {} is already sealed", rfc3339(start_ms)),
            );
        }
        let Some((stored, head, size)) = self.store_pool_file(pool, stream).await? else {
            return refused(
                RefusalReason::TooLarge,
                format!(
                    "the pool accepts files of at most {} bytes",
                    pool.max_file_size
                ),
            );
        };
        let content_type = detect_type(&head);
        let refusal = if size == 0 && !pool.allow_empty {
            Some((
                RefusalReason::Empty,
                "the pool does not accept empty files".to_owned(),
            ))
        } else if !type_allowed(pool, &content_type) {
            Some((
                RefusalReason::ForbiddenType,
                format!("the pool does not accept {content_type}"),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            self.discard(&stored.body).await;
            return refused(code, message);
        }
        let sha256 = sha256_of(&stored)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let object_key = format!("groups/{}/{}/{id}-{name}", rfc3339(start_ms), member.name);
        let contribution = ContributionRecord {
            id: id.clone(),
            pool_id: pool.id.clone(),
            member_id: member.id.clone(),
            group_start_ms: start_ms,
            client_time_ms,
            name: name.to_owned(),
            size: size as i64,
            sha256: sha256.clone(),
            content_type: content_type.clone(),
            object_key: object_key.clone(),
            created_ms: now,
        };
        let object = pool_object(pool, object_key, &stored, content_type.clone(), now);
        let event = PoolEvent {
            id: 0,
            pool_id: pool.id.clone(),
            member_id: Some(member.id.clone()),
            kind: PoolEventKind::ContributionAccepted,
            group_start_ms: Some(start_ms),
            data: serde_json::json!({
                "contribution": id,
                "member": member.name,
                "name": name,
                "size": size,
                "sha256": sha256,
                "group": rfc3339(start_ms),
            })
            .to_string(),
            time_ms: now,
        };
        let group = GroupRecord {
            pool_id: pool.id.clone(),
            start_ms,
            end_ms,
            seal_at_ms,
            state: GroupState::Open,
            files: 0,
            bytes: 0,
            attempts: 0,
            lease_id: None,
            lease_expires_ms: None,
            result_key: None,
            result_size: None,
            result_etag: None,
            updated_ms: now,
        };
        let outcome = self
            .apply_pool(PoolMutation::Contribute(Box::new(NewContribution {
                object,
                contribution,
                group,
                event,
            })))
            .await;
        match outcome {
            Ok(MutationOutcome::Pool(PoolOutcome::Contributed(c))) => {
                self.pool_events.notify_waiters();
                Ok(Receipt::Accepted(*c))
            }
            Ok(MutationOutcome::Pool(PoolOutcome::Duplicate(c))) => {
                self.discard(&stored.body).await;
                Ok(Receipt::Duplicate(*c))
            }
            Ok(_) => Err(CoreError::Internal("unexpected outcome".into())),
            Err(e) if e.is_refusal() => {
                self.discard(&stored.body).await;
                match CoreError::from(e) {
                    e @ CoreError::Pool(PoolError::GroupNotOpen(_)) => {
                        refused(RefusalReason::Sealed, e.to_string())
                    }
                    e @ CoreError::QuotaExceeded { .. } => {
                        refused(RefusalReason::QuotaExceeded, e.to_string())
                    }
                    other => Err(other),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

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

    /// Notified whenever this node writes a pool event (events written by
    /// other nodes are found by polling).
    pub fn pool_event_signal(&self) -> Arc<tokio::sync::Notify> {
        self.pool_events.clone()
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

    /// Stores a pool file (a contribution or a result) with its SHA-256;
    /// answers it with its first bytes and size, or `None` when it grew
    /// past the pool's limit (nothing is kept then).
    async fn store_pool_file(
        &self,
        pool: &PoolRecord,
        stream: ByteStream,
    ) -> CoreResult<Option<(super::objects::StoredBody, Vec<u8>, u64)>> {
        let watch = Arc::new(Mutex::new(BodyWatch::default()));
        let body = IncomingBody {
            stream: watched(stream, pool.max_file_size as u64, watch.clone()),
            declared_len: None,
            md5: false,
            checksums: vec![ChecksumAlgorithm::Sha256],
            verify: Box::new(|_| Ok(())),
        };
        match self.store_body(body, true).await {
            Ok(stored) => {
                let (head, size) = watch
                    .lock()
                    .map(|w| (w.head.clone(), w.len))
                    .unwrap_or_default();
                Ok(Some((stored, head, size)))
            }
            Err(_) if watch.lock().is_ok_and(|w| w.too_large) => Ok(None),
            Err(e) => Err(e),
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
        let mut filter = crate::model::ContributionFilter {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(window_secs: i64) -> PoolRecord {
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

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(detect_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(detect_type(&elf), "application/x-executable");
        assert_eq!(
            detect_type(b"#!/bin/sh\necho hi\n"),
            "application/x-shellscript"
        );
        assert_eq!(detect_type("plain text, ünïcode".as_bytes()), "text/plain");
        assert_eq!(detect_type(&[0, 159, 146, 150]), "application/octet-stream");
        let p = pool(60);
        assert!(type_allowed(&p, "image/png"));
        assert!(!type_allowed(&p, "application/x-executable"));
        let only_images = PoolRecord {
            allowed_types: vec!["image/*".into()],
            ..p
        };
        assert!(type_allowed(&only_images, "image/jpeg"));
        assert!(!type_allowed(&only_images, "text/plain"));
    }
}
