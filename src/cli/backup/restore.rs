//! `cistern restore`: a snapshot back onto disk. Folders first, then each
//! file is fetched into a temporary name beside its place, its SHA-256
//! checked against the manifest, its mode and mtime set, and only then
//! renamed into place; symlinks are made as symlinks; folders get their
//! modes and mtimes last, deepest first, once nothing more is written
//! into them. A manifest path that would leave the destination is refused.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sha2::Digest;

use super::RestoreArgs;
use super::action_log::{ActionLog, Figures, failed};
use super::manifest::{Entry, Kind, content_name};
use super::repo::{Repository, short};
use super::report::{Progress, size, speed};

pub async fn restore(args: RestoreArgs) -> anyhow::Result<i32> {
    let repo = Repository::open(&args.target).await?;
    let (id, snapshot) = repo.find(&args.snapshot).await?;
    let dest = super::scan::absolute(&args.dest)?;
    let log = ActionLog::begin(
        &args.running.log,
        &repo.resolved,
        "restore",
        format!("{} snapshot {}", repo.location.url(), short(&id)),
        dest.display().to_string(),
        None,
    )
    .await;
    let selected = match select(&snapshot.entries, &args.includes) {
        Ok(selected) => selected,
        Err(e) => return Err(failed(Some(log), e, Figures::default()).await),
    };
    let files: Vec<&Entry> = selected
        .iter()
        .filter(|e| e.kind == Kind::File)
        .copied()
        .collect();
    let total: u64 = files.iter().filter_map(|e| e.size).sum();
    let progress = Progress::start(&args.running.output, "restore", files.len() as u64, total);
    let mut errors: Vec<String> = Vec::new();
    if let Err(e) = std::fs::create_dir_all(&dest) {
        let e = anyhow::Error::new(e).context(format!("cannot create {}", dest.display()));
        return Err(failed(Some(log), e, Figures::default()).await);
    }
    for entry in selected.iter().filter(|e| e.kind == Kind::Dir) {
        let path = dest.join(&entry.path);
        let made =
            no_symlink_on_the_way(&dest, &path, true).and_then(|()| std::fs::create_dir_all(&path));
        if let Err(e) = made {
            errors.push(format!("{}: {e}", path.display()));
        }
    }
    // A file that does not check out is told and the rest go on; the
    // store failing stops the restore.
    let fetched: anyhow::Result<Vec<Result<u64, String>>> = futures::stream::iter(files.iter())
        .map(|entry| {
            let dest = &dest;
            let repo = &repo;
            let progress = &progress;
            async move {
                let path = dest.join(&entry.path);
                let outcome = fetch(repo, dest, entry, &path, progress).await;
                progress.file_done();
                anyhow::Ok(outcome?.map_err(|e| format!("{}: {e:#}", path.display())))
            }
        })
        .buffer_unordered(usize::from(args.running.parallel))
        .try_collect()
        .await;
    let fetched = match fetched {
        Ok(fetched) => fetched,
        Err(e) => return Err(failed(Some(log), e, Figures::default()).await),
    };
    let mut restored_bytes = 0;
    let mut restored_files = 0;
    for outcome in fetched {
        match outcome {
            Ok(bytes) => {
                restored_files += 1;
                restored_bytes += bytes;
            }
            Err(e) => errors.push(e),
        }
    }
    for entry in selected.iter().filter(|e| e.kind == Kind::Symlink) {
        let path = dest.join(&entry.path);
        let made =
            no_symlink_on_the_way(&dest, &path, false).and_then(|()| make_symlink(entry, &path));
        if let Err(e) = made {
            errors.push(format!("{}: {e}", path.display()));
        }
    }
    for entry in selected.iter().rev().filter(|e| e.kind == Kind::Dir) {
        let path = dest.join(&entry.path);
        let set = no_symlink_on_the_way(&dest, &path, true)
            .and_then(|()| {
                std::fs::set_permissions(
                    &path,
                    std::fs::Permissions::from_mode(safe_mode(entry.mode)),
                )
            })
            .and_then(|()| set_mtime(&path, entry.mtime_ns, true));
        if let Err(e) = set {
            errors.push(format!("{}: {e}", path.display()));
        }
    }
    let took = progress.elapsed();
    progress.finish();
    let status = if errors.is_empty() {
        "complete"
    } else {
        "failed"
    };
    log.end(
        status,
        Figures {
            files_scanned: files.len() as u64,
            bytes_scanned: total,
            files_sent: restored_files,
            bytes_sent: restored_bytes,
            errors: errors.clone(),
            snapshot: Some(id.clone()),
            ..Figures::default()
        },
    )
    .await;
    if args.running.output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "snapshot": id,
                "status": status,
                "files": restored_files,
                "bytes": restored_bytes,
                "errors": errors,
                "seconds": took.as_secs_f64(),
            }))?
        );
    } else {
        println!(
            "restored {} of {} files ({}) from snapshot {} into {} at {}",
            restored_files,
            files.len(),
            size(restored_bytes),
            short(&id),
            dest.display(),
            speed(restored_bytes, took)
        );
        for e in &errors {
            eprintln!("  {e}");
        }
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

/// The entries to restore: all, or those matching an include glob or lying
/// under one that does, with the folders above them. Every path must stay
/// inside the destination.
fn select<'a>(entries: &'a [Entry], includes: &[String]) -> anyhow::Result<Vec<&'a Entry>> {
    for entry in entries {
        let path = Path::new(&entry.path);
        let inside =
            !entry.path.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            bail!(
                "the snapshot holds the path {:?}, which would leave the destination; refusing to restore it",
                entry.path
            );
        }
    }
    if includes.is_empty() {
        return Ok(entries.iter().collect());
    }
    let globs = build_globs(includes)?;
    let wanted = |path: &str| {
        let mut at = path;
        loop {
            if globs.is_match(at) {
                return true;
            }
            match at.rsplit_once('/') {
                Some((parent, _)) => at = parent,
                None => return false,
            }
        }
    };
    let chosen: Vec<&Entry> = entries.iter().filter(|e| wanted(&e.path)).collect();
    let parents: std::collections::HashSet<&str> = chosen
        .iter()
        .flat_map(|e| {
            let mut ancestors = Vec::new();
            let mut at = e.path.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                ancestors.push(parent);
                at = parent;
            }
            ancestors
        })
        .collect();
    Ok(entries
        .iter()
        .filter(|e| wanted(&e.path) || parents.contains(e.path.as_str()))
        .collect())
}

fn build_globs(includes: &[String]) -> anyhow::Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for glob in includes {
        set.add(
            GlobBuilder::new(glob.trim_end_matches('/'))
                .literal_separator(true)
                .build()
                .with_context(|| format!("--include {glob:?} is not a glob"))?,
        );
    }
    Ok(set.build()?)
}

/// Fetches one file into place; the bytes written. The outer error is the
/// store failing, the inner one this file not checking out or not
/// fitting on disk.
async fn fetch(
    repo: &Repository,
    dest: &Path,
    entry: &Entry,
    path: &Path,
    progress: &Progress,
) -> anyhow::Result<anyhow::Result<u64>> {
    let Some(expected) = entry.sha256.as_deref() else {
        return Ok(Err(anyhow::anyhow!("the manifest gives this file no hash")));
    };
    let outcome = fetch_checked(repo, dest, entry, expected, path, progress).await;
    match outcome {
        Err(Fetch::Store(e)) => Err(e),
        Err(Fetch::File(e)) => Ok(Err(e)),
        Ok(written) => Ok(Ok(written)),
    }
}

enum Fetch {
    Store(anyhow::Error),
    File(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Fetch {
    fn from(e: E) -> Self {
        Fetch::File(e.into())
    }
}

async fn fetch_checked(
    repo: &Repository,
    dest: &Path,
    entry: &Entry,
    expected: &str,
    path: &Path,
    progress: &Progress,
) -> Result<u64, Fetch> {
    no_symlink_on_the_way(dest, path, false)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = Temporary::create_beside(path)?;
    let mut file = &temporary.file;
    let written = async {
        let mut hasher = sha2::Sha256::new();
        let mut written = 0u64;
        if entry.size != Some(0) {
            let found = repo
                .store
                .get(&repo.location.key(&content_name(expected)))
                .await;
            let found = match found {
                Ok(found) => found,
                Err(e) if super::store::is_missing(&e) => {
                    return Err(Fetch::File(anyhow::anyhow!(
                        "its content {expected} is missing from the repository"
                    )));
                }
                Err(e) => {
                    return Err(Fetch::Store(
                        anyhow::Error::new(e).context("cannot fetch content from the repository"),
                    ));
                }
            };
            let mut body = found.into_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    Fetch::Store(anyhow::Error::new(e).context("the content stopped arriving"))
                })?;
                hasher.update(&chunk);
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
                progress.add_bytes(chunk.len() as u64);
            }
        }
        let got = hex::encode(hasher.finalize());
        if got != expected {
            return Err(Fetch::File(anyhow::anyhow!(
                "its content does not match the snapshot (SHA-256 {got}, expected {expected})"
            )));
        }
        file.set_permissions(std::fs::Permissions::from_mode(safe_mode(entry.mode)))?;
        file.set_modified(to_system_time(entry.mtime_ns))?;
        // On disk before it takes the name: a power cut leaves the old
        // file or the whole new one.
        file.sync_all()?;
        Ok(written)
    }
    .await?;
    temporary.rename_to(path)?;
    Ok(written)
}

/// Permission bits to restore: without set-user-id and set-group-id, as
/// owners are not kept (a restore by root must not make a setuid-root
/// program of someone's file).
fn safe_mode(mode: u32) -> u32 {
    mode & 0o1777
}

/// Refuses a path whose folders below `dest` (and, with `itself`, the
/// path too) include a symlink or something that is not a folder: a
/// restore into a tree that already has content must not write through a
/// link to somewhere outside it.
fn no_symlink_on_the_way(dest: &Path, path: &Path, itself: bool) -> std::io::Result<()> {
    let Ok(below) = path.strip_prefix(dest) else {
        return Err(std::io::Error::other("outside the destination"));
    };
    let mut at = dest.to_path_buf();
    let components: Vec<_> = below.components().collect();
    let checked = if itself {
        components.len()
    } else {
        components.len().saturating_sub(1)
    };
    for component in &components[..checked] {
        at.push(component);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "{} is in the way: it is not a folder (a symlink is not followed)",
                        at.display()
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A file being restored, under a fresh name beside its place; removed
/// unless it is renamed into place.
struct Temporary {
    file: std::fs::File,
    path: Option<PathBuf>,
}

impl Temporary {
    fn create_beside(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = format!(
            ".cistern-restore-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let temporary = path.with_file_name(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temporary)?;
        Ok(Self {
            file,
            path: Some(temporary),
        })
    }

    fn rename_to(mut self, path: &Path) -> std::io::Result<()> {
        let temporary = self.path.take().expect("not renamed yet");
        std::fs::rename(&temporary, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn make_symlink(entry: &Entry, path: &Path) -> std::io::Result<()> {
    let target = entry.target.as_deref().unwrap_or_default();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a folder is in the way of this symlink",
            ));
        }
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, path)?;
    set_mtime(path, entry.mtime_ns, false)
}

fn to_system_time(ns: i64) -> std::time::SystemTime {
    let since = std::time::Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        std::time::UNIX_EPOCH + since
    } else {
        std::time::UNIX_EPOCH - since
    }
}

/// Sets a path's mtime (and atime) without following a symlink at it.
fn set_mtime(path: &Path, ns: i64, follow: bool) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let time = libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000),
    };
    let times = [time, time];
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: the path is a valid C string and `times` holds two timespecs.
    let done = unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), flags) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0o755,
            mtime_ns: 0,
            size: None,
            sha256: None,
            target: None,
        }
    }

    #[test]
    fn includes_take_what_is_under_them_and_the_folders_above() {
        let entries = [
            entry("t", Kind::Dir),
            entry("t/a", Kind::Dir),
            entry("t/a/x.jpg", Kind::File),
            entry("t/b", Kind::Dir),
            entry("t/b/y.txt", Kind::File),
        ];
        let paths = |includes: &[&str]| -> Vec<String> {
            let includes: Vec<String> = includes.iter().map(|s| s.to_string()).collect();
            select(&entries, &includes)
                .unwrap()
                .iter()
                .map(|e| e.path.clone())
                .collect()
        };
        assert_eq!(paths(&["t/a"]), ["t", "t/a", "t/a/x.jpg"]);
        assert_eq!(paths(&["**/*.txt"]), ["t", "t/b", "t/b/y.txt"]);
        assert_eq!(paths(&[]).len(), 5);
    }

    #[test]
    fn paths_that_leave_the_destination_are_refused() {
        for bad in ["../x", "t/../../x", "/etc/passwd", ""] {
            assert!(select(&[entry(bad, Kind::File)], &[]).is_err(), "{bad}");
        }
    }
}
