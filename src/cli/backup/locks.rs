//! Locks on a repository, as restic has them: objects under `locks/` that
//! a running backup (shared) or prune (exclusive) writes first and
//! refreshes every minute. Each side writes its own lock and then looks
//! at the others, so of a backup and a prune that start together at least
//! one sees the other and stops. A lock whose object the store has not
//! seen rewritten for five minutes (by the store's clock, so clocks that
//! disagree do not matter), or one left by a process of this same boot
//! and process namespace that no longer exists (a backup killed with
//! `kill -9`), is stale and ignored. A holder that could not refresh its
//! own lock for three minutes stops before its next step that matters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::TryStreamExt;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use super::repo::Repository;
use super::store::is_missing;

const REFRESH: Duration = Duration::from_secs(60);
const STALE_AFTER_MS: i64 = 5 * 60 * 1000;
/// A holder that has not refreshed its lock for this long no longer
/// trusts it (others take it for stale at five minutes).
const HELD_FOR: Duration = Duration::from_secs(3 * 60);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockFile {
    host: String,
    pid: u32,
    exclusive: bool,
    created_ms: i64,
    refreshed_ms: i64,
    /// This boot and process namespace: a pid means the same process only
    /// where both match (containers share host names).
    #[serde(default)]
    boot: String,
}

pub struct Lock {
    store: Arc<dyn ObjectStore>,
    key: object_store::path::Path,
    refresher: tokio::task::JoinHandle<()>,
    refreshed: Arc<std::sync::Mutex<std::time::Instant>>,
}

impl Lock {
    /// Takes a shared lock (a backup) or an exclusive one (a prune); fails
    /// with who holds the repository when the two cannot go together.
    pub async fn take(repo: &Repository, exclusive: bool) -> anyhow::Result<Self> {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let key = repo.location.key(&format!("locks/{name}"));
        let now = crate::core::now_ms();
        let mine = LockFile {
            host: hostname(),
            pid: std::process::id(),
            exclusive,
            created_ms: now,
            refreshed_ms: now,
            boot: boot_and_namespace(),
        };
        write(repo.store.as_ref(), &key, &mine).await?;
        let refreshed = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
        let refresher = {
            let store = repo.store.clone();
            let key = key.clone();
            let mut mine = mine.clone();
            let refreshed = refreshed.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(REFRESH).await;
                    mine.refreshed_ms = crate::core::now_ms();
                    let attempt = Instant::now();
                    // A refresh that fails is tried again next minute; the
                    // lock is only stale after five.
                    let written = tokio::time::timeout(
                        Duration::from_secs(30),
                        write(store.as_ref(), &key, &mine),
                    )
                    .await;
                    if matches!(written, Ok(Ok(()))) {
                        *refreshed.lock().expect("not poisoned") = attempt;
                    }
                }
            })
        };
        let lock = Self {
            store: repo.store.clone(),
            key,
            refresher,
            refreshed,
        };
        let others = match live_locks(repo, &lock.key).await {
            Ok(locks) => locks,
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let conflict = others
            .iter()
            .find(|(name, other)| *name != lock.key.as_ref() && (exclusive || other.exclusive));
        if let Some((_, other)) = conflict {
            lock.release().await;
            let what = if other.exclusive {
                "a prune"
            } else {
                "a backup"
            };
            bail!(
                "{what} on {} (pid {}) holds the repository since {}; try again when it is done \
                 (a lock left by a run that died expires 5 minutes after its last refresh)",
                other.host,
                other.pid,
                chrono::DateTime::from_timestamp_millis(other.created_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            );
        }
        Ok(lock)
    }

    /// Fails when this lock may have gone stale in others' eyes (it could
    /// not be refreshed for three minutes): a backup then stores no
    /// snapshot, a prune deletes nothing more.
    pub fn still_held(&self) -> anyhow::Result<()> {
        let since = self.refreshed.lock().expect("not poisoned").elapsed();
        if since > HELD_FOR {
            bail!(
                "this run's lock on the repository could not be refreshed for {} s, so another \
                 run may have taken it for stale; stopping here (run again)",
                since.as_secs()
            );
        }
        Ok(())
    }

    pub async fn release(self) {
        self.refresher.abort();
        let _ = self.store.delete(&self.key).await;
    }
}

async fn write(
    store: &dyn ObjectStore,
    key: &object_store::path::Path,
    lock: &LockFile,
) -> anyhow::Result<()> {
    store
        .put(key, PutPayload::from(serde_json::to_vec(lock)?))
        .await
        .context("cannot write a lock into the repository")?;
    Ok(())
}

/// The locks that still count, by object name; stale ones of this host's
/// dead processes are removed on the way. `mine` is the caller's own lock,
/// whose time of writing is the store's "now".
async fn live_locks(
    repo: &Repository,
    mine: &object_store::path::Path,
) -> anyhow::Result<Vec<(String, LockFile)>> {
    let metas: Vec<_> = repo
        .store
        .list(Some(&repo.location.key("locks")))
        .try_collect()
        .await
        .context("cannot list the repository's locks")?;
    let store_now = metas
        .iter()
        .find(|m| &m.location == mine)
        .map_or(crate::core::now_ms(), |m| {
            m.last_modified.timestamp_millis()
        });
    let (host, boot) = (hostname(), boot_and_namespace());
    let mut live = Vec::new();
    for meta in metas {
        let found = match repo.store.get(&meta.location).await {
            Ok(found) => found.bytes().await,
            Err(e) if is_missing(&e) => continue, // released meanwhile
            Err(e) => Err(e),
        };
        let bytes = found.context("cannot read a lock of the repository")?;
        let Ok(lock) = serde_json::from_slice::<LockFile>(&bytes) else {
            bail!(
                "{} is not a lock this version reads; remove it if no backup or prune is running",
                meta.location
            );
        };
        let dead_here =
            lock.host == host && !boot.is_empty() && lock.boot == boot && !process_exists(lock.pid);
        if dead_here {
            let _ = repo.store.delete(&meta.location).await;
        } else if store_now - meta.last_modified.timestamp_millis() < STALE_AFTER_MS {
            live.push((meta.location.to_string(), lock));
        }
    }
    Ok(live)
}

/// This boot's id and this process namespace's inode, or empty where
/// they cannot be read (then no pid is taken for dead).
fn boot_and_namespace() -> String {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let namespace = std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino());
    match (boot.trim(), namespace) {
        ("", _) | (_, Err(_)) => String::new(),
        (boot, Ok(namespace)) => format!("{boot}/{namespace}"),
    }
}

fn process_exists(pid: u32) -> bool {
    // Signal 0 checks for the process without touching it; EPERM means it
    // exists under another user.
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only asks whether the process exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's name, as snapshots and locks record it.
pub fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    match ok {
        true => String::from_utf8_lossy(&buffer[..end]).into_owned(),
        false => "unknown".to_owned(),
    }
}
