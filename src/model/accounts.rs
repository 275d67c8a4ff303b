//! Users, roles, access keys and bucket grants as every layer sees them.

use super::Secret;

/// A user as the metadata store knows it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// A user with the fields access decisions need.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_ms: i64,
    pub disabled_ms: Option<i64>,
    pub password_hash: Option<Secret>,
}

/// An access key as its owner may see it (never the secret).
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub access_key: String,
    pub user_id: String,
    pub created_ms: i64,
    pub read_only: bool,
    /// Buckets the key is limited to; `None` means all the user may reach.
    pub buckets: Option<Vec<String>>,
    /// Made by the server to sign share links (read-only, one bucket).
    pub for_share_links: bool,
}

/// How far a grant on a bucket reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantLevel {
    Read,
    ReadWrite,
}

impl GrantLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::ReadWrite => "read-write",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "read-write" => Some(Self::ReadWrite),
            _ => None,
        }
    }
}

wire_words! {
    /// What a user may do beyond their own data.
    pub enum Role {
        /// Owns buckets and pools of their own.
        User = "user",
        /// Manages users, and sees every bucket, pool and audit record.
        Admin = "admin",
    }
}
