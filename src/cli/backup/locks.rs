//! Locks on a repository, as restic has them: objects under `locks/` that
//! a running backup (shared) or prune (exclusive) writes first and
//! refreshes every minute. Each side writes its own lock and then looks
//! at the others, so of a backup and a prune that start together at least
//! one sees the other and stops. A lock not refreshed for five minutes,
//! or left on this host by a process that no longer exists (a backup
//! killed with `kill -9`), is stale and ignored.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::TryStreamExt;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use super::repo::Repository;

const REFRESH: Duration = Duration::from_secs(60);
const STALE_AFTER_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockFile {
    host: String,
    pid: u32,
    exclusive: bool,
    created_ms: i64,
    refreshed_ms: i64,
}

pub struct Lock {
    store: Arc<dyn ObjectStore>,
    key: object_store::path::Path,
    refresher: tokio::task::JoinHandle<()>,
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
        };
        write(repo.store.as_ref(), &key, &mine).await?;
        let refresher = {
            let store = repo.store.clone();
            let key = key.clone();
            let mut mine = mine.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(REFRESH).await;
                    mine.refreshed_ms = crate::core::now_ms();
                    // A refresh that fails is tried again next minute; the
                    // lock is only stale after five.
                    let _ = write(store.as_ref(), &key, &mine).await;
                }
            })
        };
        let lock = Self {
            store: repo.store.clone(),
            key,
            refresher,
        };
        let others = match live_locks(repo).await {
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
/// dead processes are removed on the way.
async fn live_locks(repo: &Repository) -> anyhow::Result<Vec<(String, LockFile)>> {
    let metas: Vec<_> = repo
        .store
        .list(Some(&repo.location.key("locks")))
        .try_collect()
        .await
        .context("cannot list the repository's locks")?;
    let now = crate::core::now_ms();
    let host = hostname();
    let mut live = Vec::new();
    for meta in metas {
        let Ok(found) = repo.store.get(&meta.location).await else {
            continue; // released meanwhile
        };
        let Ok(bytes) = found.bytes().await else {
            continue;
        };
        let Ok(lock) = serde_json::from_slice::<LockFile>(&bytes) else {
            continue;
        };
        let dead_here = lock.host == host && !process_exists(lock.pid);
        if dead_here {
            let _ = repo.store.delete(&meta.location).await;
        } else if now - lock.refreshed_ms < STALE_AFTER_MS {
            live.push((meta.location.to_string(), lock));
        }
    }
    Ok(live)
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
