//! `cistern diff A B`: what changed between two snapshots, path by path:
//! `+` added, `-` removed, `M` contents changed, `T` kind changed, `U`
//! only mode or mtime changed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::DiffArgs;
use super::manifest::Entry;
use super::repo::{Repository, short};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    /// `+`, `-`, `M`, `T` or `U`.
    pub change: &'static str,
    pub path: String,
}

pub async fn diff(args: DiffArgs) -> anyhow::Result<i32> {
    let repo = Repository::open(&args.target).await?;
    let (from_id, from) = repo.find(&args.from).await?;
    let (to_id, to) = repo.find(&args.to_snapshot).await?;
    let changes = compare(&from.entries, &to.entries);
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(0);
    }
    for c in &changes {
        println!("{} {}", c.change, c.path);
    }
    if !args.output.quiet {
        let count = |kind| changes.iter().filter(|c| c.change == kind).count();
        println!(
            "{} -> {}: {} added, {} removed, {} changed, {} with new metadata",
            short(&from_id),
            short(&to_id),
            count("+"),
            count("-"),
            count("M") + count("T"),
            count("U")
        );
    }
    Ok(0)
}

pub fn compare(from: &[Entry], to: &[Entry]) -> Vec<Change> {
    let before: BTreeMap<&str, &Entry> = from.iter().map(|e| (e.path.as_str(), e)).collect();
    let after: BTreeMap<&str, &Entry> = to.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut paths: Vec<&str> = before.keys().chain(after.keys()).copied().collect();
    paths.sort_unstable();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|path| {
            let change = match (before.get(path), after.get(path)) {
                (None, Some(_)) => "+",
                (Some(_), None) => "-",
                (Some(a), Some(b)) if a.kind != b.kind => "T",
                (Some(a), Some(b)) if a.sha256 != b.sha256 || a.target != b.target => "M",
                (Some(a), Some(b)) if a.mode != b.mode || a.mtime_ns != b.mtime_ns => "U",
                _ => return None,
            };
            Some(Change {
                change,
                path: path.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::backup::manifest::Kind;

    fn file(path: &str, sha: &str, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::File,
            mode,
            mtime_ns: 1,
            size: Some(1),
            sha256: Some(sha.into()),
            target: None,
        }
    }

    #[test]
    fn changes_are_told_by_kind() {
        let a = [
            file("a", "1", 0o644),
            file("b", "2", 0o644),
            file("c", "3", 0o644),
        ];
        let b = [
            file("b", "9", 0o644),
            file("c", "3", 0o600),
            file("d", "4", 0o644),
        ];
        let changes: Vec<String> = compare(&a, &b)
            .iter()
            .map(|c| format!("{} {}", c.change, c.path))
            .collect();
        assert_eq!(changes, ["- a", "M b", "U c", "+ d"]);
    }
}
