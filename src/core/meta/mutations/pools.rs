//! The pool mutations: each change to pools, members, groups, contributions
//! and webhooks that the group-commit writer applies in one transaction, and
//! what it answers beyond "done".

use crate::model::{
    ContributionRecord, GroupRecord, MemberRecord, ObjectRecord, PoolEvent, PoolEventKind,
    PoolRecord, Secret, WebhookAttempt,
};

/// A new member and the hash of the token that authenticates it.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub member: MemberRecord,
    pub token_hash: Secret,
}

/// A file to record: its object, its row, its group (created open if
/// new) and its event.
#[derive(Debug, Clone)]
pub struct NewContribution {
    pub object: ObjectRecord,
    pub contribution: ContributionRecord,
    pub group: GroupRecord,
    pub event: PoolEvent,
}

/// What happens to a member.
#[derive(Debug, Clone)]
pub enum MemberChange {
    Disable,
    Enable,
    /// A new token (its hash); the old one stops working.
    Rekey(Secret),
    Remove,
}

impl MemberChange {
    /// The event kind that announces the change.
    pub fn event_kind(&self) -> PoolEventKind {
        match self {
            Self::Disable => PoolEventKind::MemberDisabled,
            Self::Enable => PoolEventKind::MemberEnabled,
            Self::Rekey(_) => PoolEventKind::MemberRekeyed,
            Self::Remove => PoolEventKind::MemberRemoved,
        }
    }
}

/// Changes to pools, applied by the writer in one transaction each.
#[derive(Debug, Clone)]
pub enum PoolMutation {
    /// Creates the pool and its bucket.
    Create { pool: PoolRecord },
    /// Adds members; refused as a whole if a name is taken.
    AddMembers {
        pool_id: String,
        members: Vec<NewMember>,
    },
    /// Changes a member, with a `member.<change>` event that ends the
    /// member's open event streams where it takes its rights away.
    ChangeMember {
        pool_id: String,
        name: String,
        change: MemberChange,
        now_ms: i64,
    },
    /// Stores a contribution's object, its row, its group's counters and
    /// its event; a duplicate returns the earlier receipt and writes
    /// nothing.
    Contribute(Box<NewContribution>),
    /// Seals open groups whose time has come (or one group, early).
    Seal {
        pool_id: Option<String>,
        start_ms: Option<i64>,
        now_ms: i64,
    },
    /// A processor takes a sealed group (that one, or the oldest).
    Claim {
        pool_id: String,
        start_ms: Option<i64>,
        member: String,
        lease_id: String,
        now_ms: i64,
        lease_ms: i64,
    },
    /// Extends a lease that is still held.
    Renew {
        pool_id: String,
        start_ms: i64,
        lease_id: String,
        now_ms: i64,
        lease_ms: i64,
    },
    /// Stores the result under a held lease: the group is published.
    Publish {
        pool_id: String,
        start_ms: i64,
        lease_id: String,
        result: Box<ObjectRecord>,
        event: PoolEvent,
    },
    /// The processor reports that its attempt failed: the group returns
    /// to `sealed` for another attempt, or fails when the report is
    /// `last` (retrying cannot help) or `max_attempts` are used up.
    Fail {
        pool_id: String,
        start_ms: i64,
        lease_id: String,
        reason: String,
        last: bool,
        max_attempts: i64,
        now_ms: i64,
    },
    /// The owner gives a failed group new attempts.
    Reopen {
        pool_id: String,
        start_ms: i64,
        now_ms: i64,
    },
    /// Returns groups whose lease lapsed to `sealed`, or fails them after
    /// `max_attempts`.
    ExpireLeases { now_ms: i64, max_attempts: i64 },
    /// Makes `node` the one that delivers the pool's webhook until
    /// `until_ms`, unless another node's turn has not lapsed (a conflict).
    TakeWebhook {
        pool_id: String,
        node: String,
        now_ms: i64,
        until_ms: i64,
    },
    /// Records a webhook attempt; `done` moves the webhook past the event
    /// (delivered, or given up on).
    WebhookAttempt {
        pool_id: String,
        attempt: WebhookAttempt,
        done: bool,
    },
    /// Records an event that goes with no other change.
    Event(Box<PoolEvent>),
    /// Forgets what is older than the pool's retention: finished groups
    /// (their files, result and rows), events and webhook attempts.
    Expire { pool_id: String, before_ms: i64 },
    /// A member fetched a group's result.
    Delivered {
        pool_id: String,
        member_id: String,
        start_ms: i64,
        now_ms: i64,
    },
}

/// What a pool mutation produced, beyond "done".
#[derive(Debug, Clone)]
pub enum PoolOutcome {
    Contributed(Box<ContributionRecord>),
    /// The same file was contributed before: its first receipt.
    Duplicate(Box<ContributionRecord>),
    /// How many groups were sealed (or had a lapsed lease handled).
    Sealed(u64),
    /// The group a processor now holds.
    Claimed(Box<GroupRecord>),
    /// No sealed group to claim.
    NothingToClaim,
    /// The group after an attempt ended without a result.
    AttemptEnded(Box<GroupRecord>),
}
