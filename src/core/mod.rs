//! The service layer: every rule of Cistern, independent of any protocol.
//! Front-ends hand it validated names ([`names`]), the caller
//! ([`Principal`] or a pool member), byte streams and conditions; it decides
//! (access, quotas, object and multipart rules, pool windows, receipts and
//! leases), streams bytes into blobs, verifies digests, commits metadata,
//! and records audit and events. It never sees an HTTP type. Its storage,
//! `meta` (all SQL) and `blob` (all bytes), is private to this module, so
//! [`Store`]'s methods are the only way front-ends reach data.

pub mod accounts;
pub mod audit;
mod blob;
pub mod digest;
pub mod error;
pub mod events;
mod meta;
pub mod multipart;
pub mod names;
pub mod objects;
pub mod passwords;
pub mod pool_access;
pub mod pools;
pub mod presign;
pub mod recent_lookups;
pub mod sessions;
pub mod store;
pub mod sweeper;
pub mod thumbnails;
pub mod webhooks;

pub use self::error::{CoreError, CoreResult};
pub use self::meta::{NoticeMode, Rendition};
pub use self::store::{Store, StoreLocation, StoreSettings};
use crate::model::Role;

/// Who is making a request, once their key has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub name: String,
    pub role: Role,
    /// The key that signed the request (empty for password logins).
    pub access_key: String,
    /// The key may only read.
    pub read_only: bool,
    /// The key is limited to these buckets.
    pub key_buckets: Option<Vec<String>>,
    /// Hash of the session token the request came with, if any.
    pub session: Option<String>,
}

impl Principal {
    /// Admins manage users and see every bucket, pool and audit record.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
