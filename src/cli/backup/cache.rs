//! The local hash cache: for each file backed up, its size, mtime, device
//! and inode and the SHA-256 they stood for, so a rerun over an unchanged
//! tree reads no file contents. A file is found by its path, or, after a
//! rename, by its device and inode; either way its size and mtime must
//! still match. One JSON file per repository, replaced whole (write to a
//! temporary file, then rename) so a run killed half way leaves the old one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub dev: u64,
    pub ino: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    #[serde(flatten)]
    stamp: Stamp,
    sha256: String,
}

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    files: HashMap<PathBuf, Remembered>,
}

pub struct HashCache {
    path: Option<PathBuf>,
    old: CacheFile,
    by_inode: HashMap<(u64, u64), String>,
    new: CacheFile,
}

const VERSION: u32 = 1;

impl HashCache {
    /// The cache of one repository; empty when there is none (or it is
    /// unreadable: it only saves work).
    pub fn load(dir: Option<&Path>, repository_id: &str) -> Self {
        let path = dir
            .map(Path::to_path_buf)
            .or_else(default_dir)
            .map(|d| d.join(format!("{repository_id}.json")));
        let old: CacheFile = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .filter(|c: &CacheFile| c.version == VERSION)
            .unwrap_or_default();
        let by_inode = old
            .files
            .iter()
            .map(|(path, r)| {
                (
                    (r.stamp.dev, r.stamp.ino),
                    path.to_string_lossy().into_owned(),
                )
            })
            .collect();
        Self {
            path,
            old,
            by_inode,
            new: CacheFile {
                version: VERSION,
                files: HashMap::new(),
            },
        }
    }

    /// The hash a file had when it last looked like this.
    pub fn lookup(&self, path: &Path, stamp: &Stamp) -> Option<String> {
        let by_path = self.old.files.get(path);
        let remembered = match by_path {
            Some(r) if &r.stamp == stamp => Some(r),
            _ => self
                .by_inode
                .get(&(stamp.dev, stamp.ino))
                .and_then(|p| self.old.files.get(Path::new(p)))
                .filter(|r| &r.stamp == stamp),
        };
        remembered.map(|r| r.sha256.clone())
    }

    /// Remembers a file for the next run.
    pub fn remember(&mut self, path: PathBuf, stamp: Stamp, sha256: String) {
        self.new.files.insert(path, Remembered { stamp, sha256 });
    }

    /// Writes what this run saw, keeping what it did not look at (another
    /// source backed up into the same repository another time).
    pub fn save(mut self) -> std::io::Result<()> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        let mut merged = std::mem::take(&mut self.old.files);
        merged.extend(self.new.files);
        let file = CacheFile {
            version: VERSION,
            files: merged,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&temporary, serde_json::to_vec(&file)?)?;
        std::fs::rename(&temporary, &path)
    }

    /// Forgets paths under `roots` that this run did not see (deleted
    /// files), so the cache does not grow without end.
    pub fn drop_unseen_under(&mut self, roots: &[PathBuf]) {
        let seen = &self.new.files;
        self.old
            .files
            .retain(|p, _| seen.contains_key(p) || !roots.iter().any(|r| p.starts_with(r)));
    }
}

/// `$XDG_CACHE_HOME/cistern/backup`, else `~/.cache/cistern/backup`.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("cistern").join("backup"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ino: u64, mtime_ns: i64) -> Stamp {
        Stamp {
            size: 3,
            mtime_ns,
            dev: 1,
            ino,
        }
    }

    #[test]
    fn a_renamed_file_is_found_by_inode_and_a_changed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = HashCache::load(Some(dir.path()), "repo");
        cache.remember("/t/a".into(), stamp(7, 10), "h".into());
        cache.save().unwrap();
        let cache = HashCache::load(Some(dir.path()), "repo");
        assert_eq!(
            cache.lookup(Path::new("/t/a"), &stamp(7, 10)).as_deref(),
            Some("h")
        );
        assert_eq!(
            cache.lookup(Path::new("/u/a"), &stamp(7, 10)).as_deref(),
            Some("h")
        );
        assert_eq!(cache.lookup(Path::new("/t/a"), &stamp(7, 11)), None);
        assert_eq!(cache.lookup(Path::new("/t/b"), &stamp(8, 10)), None);
    }
}
