//! Audit records and daily usage rows as the service layer hands them out.

use serde::Serialize;

/// One request, as the audit log keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// Assigned by the database; 0 before the append.
    pub id: i64,
    pub time_ms: i64,
    pub request_id: String,
    pub actor_id: Option<String>,
    /// A user name, or `anonymous`.
    pub actor: String,
    pub access_key: Option<String>,
    pub source: Option<String>,
    pub action: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// What else the action was done to (`user:alice`, `pool:sky/member:cam`).
    pub target: Option<String>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub user_agent: Option<String>,
}

/// Filters of an audit query; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub bucket: Option<String>,
    pub status: Option<u16>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only records with a smaller id (the cursor of the previous page).
    pub before_id: Option<i64>,
}

/// Traffic of one user on one bucket on one day.
#[derive(Debug, Clone, Serialize)]
pub struct UsageRow {
    pub day: String,
    pub user_id: String,
    pub bucket: String,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub requests: i64,
}
