//! The repository's formats, as `docs/BACKUP.md` documents them for other
//! tools: the `config` object that marks a prefix as a repository, and
//! the snapshot manifest (one JSON object per snapshot, named by the
//! SHA-256 of its own bytes) listing every path with its kind, mode,
//! mtime, size, symlink target and content hash.

use serde::{Deserialize, Serialize};

/// The `format` of a snapshot manifest this version writes and reads.
pub const SNAPSHOT_FORMAT: &str = "cistern-snapshot/1";
/// The `format` of the repository's `config` object.
pub const REPOSITORY_FORMAT: &str = "cistern-backup/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepositoryConfig {
    pub format: String,
    /// Random, fixed at creation: names the local hash cache.
    pub id: String,
    pub created: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One path of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `/`-separated, starting with the source's own name.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Files only: hex SHA-256 of the contents, which are stored at
    /// `data/<first two hex digits>/<sha256>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlinks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// What a backup run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Files whose content was not in the repository yet, and their bytes.
    pub new_files: u64,
    pub new_bytes: u64,
    /// Source paths left out because they could not be read.
    pub unreadable_paths: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: String,
    /// RFC 3339, UTC, when the backup started.
    pub time: String,
    pub host: String,
    /// The sources as given, made absolute.
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub summary: Summary,
    /// Sorted by path, parents before their children.
    pub entries: Vec<Entry>,
}

impl Snapshot {
    pub fn time(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(&self.time)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }
}

/// The key of content with this hash, under the repository's prefix.
pub fn content_name(sha256: &str) -> String {
    format!("data/{}/{sha256}", sha256.get(..2).unwrap_or("__"))
}

/// 64 lowercase hex digits, as content names and manifests write a SHA-256.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_only_their_kinds_fields() {
        let link = Entry {
            path: "src/link".into(),
            kind: Kind::Symlink,
            mode: 0o777,
            mtime_ns: 5,
            size: None,
            sha256: None,
            target: Some("a b".into()),
        };
        let text = serde_json::to_string(&link).unwrap();
        assert_eq!(
            text,
            r#"{"path":"src/link","type":"symlink","mode":511,"mtime_ns":5,"target":"a b"}"#
        );
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), link);
        assert_eq!(content_name("abcdef"), "data/ab/abcdef");
    }
}
