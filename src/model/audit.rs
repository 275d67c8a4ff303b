//! Audit records and daily usage rows as the service layer hands them out.

use serde::{Deserialize, Serialize};

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
    /// What a client reported about its own work, as JSON (the figures of
    /// a backup run); `None` for plain requests.
    pub detail: Option<String>,
}

/// Filters of an audit query; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only actions starting with this (`backup.`).
    pub action_prefix: Option<String>,
    pub bucket: Option<String>,
    pub status: Option<u16>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only records with a smaller id (the cursor of the previous page).
    pub before_id: Option<i64>,
}

/// What one bucket of one user held on one day.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRow {
    pub day: String,
    pub user_id: String,
    pub bucket: String,
    pub bytes: i64,
    pub objects: i64,
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

/// What a backup, restore, forget or mirror run reports about itself to
/// the action log, at its start (`phase: started`, no outcome yet) and at
/// its end; the audit record keeps it whole as its `detail`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupRunReport {
    /// The run's id, the same in its start and end reports.
    pub run: String,
    /// `backup`, `restore`, `forget` or `mirror`.
    pub kind: String,
    /// `started` or `finished`.
    pub phase: String,
    pub host: String,
    pub source: String,
    pub destination: String,
    /// RFC 3339.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// `complete`, `partial` (some files unreadable) or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default)]
    pub files_scanned: u64,
    #[serde(default)]
    pub bytes_scanned: u64,
    #[serde(default)]
    pub files_sent: u64,
    #[serde(default)]
    pub bytes_sent: u64,
    #[serde(default)]
    pub files_skipped: u64,
    #[serde(default)]
    pub bytes_skipped: u64,
    /// Objects deleted by a prune or `mirror --delete`, and their bytes.
    #[serde(default)]
    pub files_deleted: u64,
    #[serde(default)]
    pub bytes_deleted: u64,
    /// Snapshots a forget removed.
    #[serde(default)]
    pub snapshots_removed: u64,
    #[serde(default)]
    pub errors: u64,
    /// The first errors (at most 20 lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_lines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}
