//! The vocabulary of writes: every change to metadata is one [`Mutation`],
//! and the writer answers each with a [`MutationOutcome`]. Only types live
//! here, so the appliers (objects, uploads, accounts, audit, quota, pools)
//! and the group-commit engine can all name them without naming each other.
//! The pool changes and their outcomes are declared in [`pools`] and
//! carried in [`Mutation`] as one variant each. Nothing here imports an
//! applier, so dependencies run one way: engine -> appliers -> these types.

mod pools;

pub use self::pools::{MemberChange, NewContribution, NewMember, PoolMutation, PoolOutcome};
use super::{AuditRecord, ObjectRecord, PartRecord, UploadRecord, UserRecord};
use crate::model::{AccountRecord, GrantLevel, KeyRecord, PutCondition, Secret, StoredRow};

/// One change to metadata.
#[derive(Debug)]
pub enum Mutation {
    EnsureUser {
        user: UserRecord,
        access_key: String,
        secret: Secret,
        password_hash: Secret,
        now_ms: i64,
    },
    CreateBucket {
        name: String,
        owner_id: String,
        now_ms: i64,
    },
    DeleteBucket {
        name: String,
    },
    /// Store an object whose blobs (if any) were just written.
    PutObject {
        object: ObjectRecord,
        condition: PutCondition,
    },
    /// Store an object that shares the blobs of an existing one.
    CopyObject {
        object: ObjectRecord,
        condition: PutCondition,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    CreateUpload {
        upload: UploadRecord,
    },
    PutPart {
        upload_id: String,
        part: PartRecord,
    },
    CompleteUpload {
        upload_id: String,
        /// (part number, ETag) as the client listed them.
        parts: Vec<(i32, String)>,
        min_part_size: i64,
        now_ms: i64,
        condition: PutCondition,
    },
    AbortUpload {
        upload_id: String,
    },
    CreateUser {
        account: AccountRecord,
    },
    SetUserDisabled {
        user_id: String,
        disabled_ms: Option<i64>,
    },
    SetPassword {
        user_id: String,
        password_hash: Secret,
    },
    DeleteUser {
        user_id: String,
    },
    CreateKey {
        key: KeyRecord,
        secret: Secret,
    },
    DeleteKey {
        access_key: String,
        user_id: String,
    },
    SetPublicRead {
        bucket: String,
        public_read: bool,
    },
    CreateSession {
        token_hash: Secret,
        user_id: String,
        created_ms: i64,
        expires_ms: i64,
    },
    /// Revokes the session `only` (or all of the user's), except `keep`.
    RevokeSessions {
        user_id: String,
        only: Option<String>,
        keep: Option<String>,
        now_ms: i64,
    },
    /// Appends audit records and adds their traffic to the daily usage.
    AppendAudit {
        records: Vec<AuditRecord>,
    },
    /// Drops audit rows older than `before_ms` and daily usage rows of
    /// days before `usage_before_ms`.
    ExpireAudit {
        before_ms: i64,
        usage_before_ms: i64,
    },
    /// Stores a thumbnail or preview of an object version (`jpeg: None`:
    /// it could not be made).
    PutThumbnail {
        rendition: super::thumbnails::Rendition,
        bucket: String,
        key: String,
        stamp: String,
        jpeg: Option<Vec<u8>>,
        made_ms: i64,
    },
    /// Records (or overwrites) what buckets hold on a day.
    RecordStored {
        rows: Vec<StoredRow>,
    },
    SetUserQuota {
        user_id: String,
        bytes: Option<i64>,
    },
    SetBucketQuota {
        bucket: String,
        bytes: Option<i64>,
    },
    /// A change to pools, their members, groups or contributions.
    Pool(Box<PoolMutation>),
    /// Shares a bucket with a user (`None` takes the grant back).
    SetGrant {
        bucket: String,
        user_id: String,
        level: Option<GrantLevel>,
    },
}

impl Mutation {
    /// Whether the change can make credentials that a node remembers
    /// wrong: a password, key or user gone, disabled or replaced.
    /// Every variant is named, so a new one must be decided on here.
    /// Lookups that found nothing are not remembered, so new users and
    /// keys change nothing remembered.
    pub fn changes_credentials(&self) -> bool {
        match self {
            Self::EnsureUser { .. }
            | Self::SetUserDisabled { .. }
            | Self::SetPassword { .. }
            | Self::DeleteUser { .. }
            | Self::DeleteKey { .. } => true,
            Self::CreateUser { .. }
            | Self::CreateKey { .. }
            | Self::CreateBucket { .. }
            | Self::DeleteBucket { .. }
            | Self::PutObject { .. }
            | Self::CopyObject { .. }
            | Self::DeleteObject { .. }
            | Self::CreateUpload { .. }
            | Self::PutPart { .. }
            | Self::CompleteUpload { .. }
            | Self::AbortUpload { .. }
            | Self::SetPublicRead { .. }
            | Self::SetGrant { .. }
            | Self::SetUserQuota { .. }
            | Self::SetBucketQuota { .. }
            | Self::Pool(_)
            | Self::AppendAudit { .. }
            | Self::ExpireAudit { .. }
            | Self::RecordStored { .. }
            | Self::PutThumbnail { .. }
            | Self::CreateSession { .. }
            | Self::RevokeSessions { .. } => false,
        }
    }
}

/// What a committed mutation reports back beyond success.
#[derive(Debug)]
pub enum MutationOutcome {
    Done,
    /// DeleteObject: whether an object was there.
    Deleted(bool),
    /// CompleteUpload: the object it created.
    Completed(Box<ObjectRecord>),
    Pool(PoolOutcome),
}
