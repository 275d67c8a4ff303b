//! Pools, members, groups, contributions and pool events as every layer
//! sees them.

use super::Secret;

/// A pool and its rules.
#[derive(Debug, Clone)]
pub struct PoolRecord {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    /// The bucket that holds the pool's files and results.
    pub bucket: String,
    pub window_secs: i64,
    pub grace_secs: i64,
    /// Windows are aligned to this instant (Unix ms).
    pub origin_ms: i64,
    pub max_file_size: i64,
    /// Detected content types accepted; empty means any not forbidden.
    /// A trailing `/*` matches a whole family (`image/*`).
    pub allowed_types: Vec<String>,
    pub forbidden_types: Vec<String>,
    pub allow_empty: bool,
    pub retention_days: i64,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret>,
    /// The last event the webhook has had (delivered or given up on).
    pub webhook_cursor: i64,
    pub created_ms: i64,
}

/// One attempt to deliver an event to a pool's webhook.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub event_id: i64,
    /// 1 for the first try.
    pub attempt: i64,
    pub time_ms: i64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<i64>,
    pub error: Option<String>,
    pub delivered: bool,
    /// When the event is tried again; `None` once delivered or given up.
    pub next_try_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub id: String,
    pub pool_id: String,
    pub name: String,
    pub role: MemberRole,
    pub created_ms: i64,
    pub disabled_ms: Option<i64>,
}

/// One time window of a pool.
#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub pool_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// When the window closes for late files too (end plus grace).
    pub seal_at_ms: i64,
    pub state: GroupState,
    pub files: i64,
    pub bytes: i64,
    pub attempts: i64,
    pub lease_id: Option<String>,
    /// The processor that holds the lease, or held the last one.
    pub lease_member: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub result_key: Option<String>,
    pub result_size: Option<i64>,
    pub result_etag: Option<String>,
    pub updated_ms: i64,
}

#[derive(Debug, Clone)]
pub struct ContributionRecord {
    pub id: String,
    pub pool_id: String,
    pub member_id: String,
    pub group_start_ms: i64,
    pub client_time_ms: i64,
    pub name: String,
    pub size: i64,
    /// Hex.
    pub sha256: String,
    /// Detected from the bytes.
    pub content_type: String,
    pub object_key: String,
    pub created_ms: i64,
}

/// One entry of the pool event log.
#[derive(Debug, Clone)]
pub struct PoolEvent {
    /// Assigned by the database; 0 before the insert.
    pub id: i64,
    pub pool_id: String,
    /// `None`: for everyone in the pool; otherwise for that member only.
    pub member_id: Option<String>,
    pub kind: PoolEventKind,
    pub group_start_ms: Option<i64>,
    /// JSON text.
    pub data: String,
    pub time_ms: i64,
}

/// Which contributions a listing wants.
#[derive(Debug, Clone, Default)]
pub struct ContributionFilter {
    pub member_id: Option<String>,
    pub group_start_ms: Option<i64>,
    /// Contributions with a larger id than this (the cursor).
    pub after_id: Option<String>,
}

wire_words! {
    /// Where a time-window group is in its life.
    pub enum GroupState {
        /// Taking files.
        Open = "open",
        /// Closed to files, waiting for a processor.
        Sealed = "sealed",
        /// Claimed by a processor holding a lease.
        Processing = "processing",
        /// Its result is out.
        Published = "published",
        /// Given up on after its attempts; an owner may reopen it.
        Failed = "failed",
    }
}

wire_words! {
    /// What a pool member may do.
    pub enum MemberRole {
        /// Sends files and receives results.
        Contributor = "contributor",
        /// Receives results only.
        Listener = "listener",
        /// Claims groups and publishes their results.
        Processor = "processor",
    }
}

wire_words! {
    /// Why a file was not taken into a pool.
    pub enum RefusalReason {
        /// Its window's group no longer takes files.
        Sealed = "sealed",
        /// Its timestamp lies ahead of the server's clock.
        InFuture = "in_future",
        TooLarge = "too_large",
        Empty = "empty",
        ForbiddenType = "forbidden_type",
        BadName = "bad_name",
        BadTimestamp = "bad_timestamp",
        QuotaExceeded = "quota_exceeded",
    }
}

wire_words! {
    /// What a pool event says happened.
    pub enum PoolEventKind {
        /// A member's file was stored (for that member).
        ContributionAccepted = "contribution.accepted",
        /// A member's file was refused, with its reason (for that member).
        ContributionRefused = "contribution.refused",
        /// A group closed to files, or is waiting for a processor again.
        GroupSealed = "group.sealed",
        GroupClaimed = "group.claimed",
        GroupPublished = "group.published",
        GroupFailed = "group.failed",
        MemberDisabled = "member.disabled",
        MemberEnabled = "member.enabled",
        MemberRekeyed = "member.rekeyed",
        MemberRemoved = "member.removed",
    }
}

impl GroupState {
    /// The event that announces a group's move into this state. None for
    /// `open`: a group opens with its first file, whose own event says so.
    pub fn event_kind(self) -> Option<PoolEventKind> {
        match self {
            Self::Open => None,
            Self::Sealed => Some(PoolEventKind::GroupSealed),
            Self::Processing => Some(PoolEventKind::GroupClaimed),
            Self::Published => Some(PoolEventKind::GroupPublished),
            Self::Failed => Some(PoolEventKind::GroupFailed),
        }
    }
}

impl PoolEventKind {
    /// A change to one member (disabled, enabled, re-keyed, removed): the
    /// member's open streams check whether it may still listen.
    pub fn is_member_change(self) -> bool {
        matches!(
            self,
            Self::MemberDisabled | Self::MemberEnabled | Self::MemberRekeyed | Self::MemberRemoved
        )
    }
}

/// Why a request about a pool, a member or a group cannot be done as
/// asked. The metadata store and the service layer carry it whole, so each
/// case is written once and each front-end maps it in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("no such pool")]
    NoSuchPool,
    #[error("no such member")]
    NoSuchMember,
    #[error("no such group")]
    NoSuchGroup,
    #[error("no such contribution")]
    NoSuchContribution,
    /// The group (or, asked for the latest, the pool) has no published
    /// result.
    #[error("no such result")]
    NoResultYet,
    #[error("a pool named {0:?} exists")]
    PoolExists(String),
    #[error("a member named {0:?} exists")]
    MemberExists(String),
    /// A file, or an early seal, came after its group stopped taking files.
    #[error("the group is already {0}")]
    GroupNotOpen(GroupState),
    #[error("only a sealed group can be claimed; this one is {0}")]
    GroupNotSealed(GroupState),
    #[error("only a failed group can be reopened; this one is {0}")]
    GroupNotFailed(GroupState),
    /// The lease lapsed, or another processor holds the group.
    #[error("this lease does not hold the group (it lapsed, or another processor has it)")]
    LeaseNotHeld,
    /// Another node's turn at the pool's webhook has not lapsed.
    #[error("another node delivers this pool's webhook")]
    WebhookTaken,
}
