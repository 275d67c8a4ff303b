//! `cistern backup`: walk the sources, hash each file (or take its hash
//! from the cache when its size, mtime and inode are unchanged), send the
//! content the repository lacks under `data/<hash>` (in parts above 16
//! MiB, checked against the hash as it is read a second time), then store
//! the manifest. Content goes up before the manifest that names it, and
//! nothing is ever overwritten or deleted, so a run that dies leaves every
//! earlier snapshot whole and its sent content for the next run to reuse.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use serde::Serialize;
use sha2::Digest;

use super::action_log::{ActionLog, Figures, failed};
use super::cache::HashCache;
use super::locks::Lock;
use super::manifest::{Entry, Kind, SNAPSHOT_FORMAT, Snapshot, Summary, content_name};
use super::repo::{Repository, short};
use super::report::{Progress, size, speed};
use super::scan::{self, Found, Unreadable};
use super::store::Location;
use super::{BackupRun, EXIT_PARTIAL};

/// Files above this go up in parts of this size; files up to it are read
/// into memory once and sent from there.
pub const PART_SIZE: usize = 16 * 1024 * 1024;
/// Parts of one file in flight at once.
pub const PARTS_AT_ONCE: usize = 4;

/// A file as read: its hash, its length, and its bytes when kept.
struct FileRead {
    sha256: String,
    len: u64,
    contents: Option<Bytes>,
}

/// What became of one file.
enum Stored {
    Kept {
        sha256: String,
        size: u64,
        sent: bool,
    },
    Unreadable(String),
}

struct Sender {
    store: Arc<dyn ObjectStore>,
    location: Location,
    present: HashMap<String, u64>,
    /// Content sent (or being sent) by this run.
    claimed: Mutex<HashSet<String>>,
    /// Content this run finished sending.
    sent: Mutex<HashSet<String>>,
    progress: Progress,
    dry_run: bool,
    bytes_read: std::sync::atomic::AtomicU64,
}

#[derive(Serialize)]
struct Outcome {
    snapshot: Option<String>,
    status: &'static str,
    #[serde(flatten)]
    summary: Summary,
    skipped_files: u64,
    skipped_bytes: u64,
    /// File contents read to hash or send them (0 when the cache knew
    /// every file).
    read_bytes: u64,
    sent_paths: Vec<String>,
    unreadable: Vec<Unreadable>,
    seconds: f64,
}

pub async fn backup(args: BackupRun) -> anyhow::Result<i32> {
    let sources = args
        .sources
        .iter()
        .map(|s| scan::absolute(s))
        .collect::<anyhow::Result<Vec<PathBuf>>>()?;
    let shown_sources = sources
        .iter()
        .map(|s| s.display().to_string())
        .collect::<Vec<_>>();
    let repo = match args.dry_run {
        true => Repository::probe(&args.target).await?,
        false => Some(Repository::open_or_create(&args.target).await?),
    };
    let location = args.target.location()?;
    let log = match &repo {
        Some(repo) if !args.dry_run => Some(
            ActionLog::begin(
                &args.running.log,
                &repo.resolved,
                "backup",
                shown_sources.join(" "),
                location.url(),
                args.cache_dir.as_deref(),
            )
            .await,
        ),
        _ => None,
    };
    let lock = match &repo {
        Some(repo) if !args.dry_run => match Lock::take(repo, false).await {
            Ok(lock) => Some(lock),
            Err(e) => return Err(failed(log, e, Figures::default()).await),
        },
        _ => None,
    };
    let outcome = run(&args, &sources, repo.as_ref(), lock.as_ref()).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    match outcome {
        Err((e, figures)) => Err(failed(log, e, figures).await),
        Ok(outcome) => {
            let partial = !outcome.unreadable.is_empty();
            if let Some(log) = log {
                log.end(outcome.status, figures_of(&outcome)).await;
            }
            print_outcome(&args, &outcome)?;
            Ok(if partial { EXIT_PARTIAL } else { 0 })
        }
    }
}

fn figures_of(o: &Outcome) -> Figures {
    Figures {
        files_scanned: o.summary.files,
        bytes_scanned: o.summary.bytes,
        files_sent: o.summary.new_files,
        bytes_sent: o.summary.new_bytes,
        files_skipped: o.skipped_files,
        bytes_skipped: o.skipped_bytes,
        errors: o
            .unreadable
            .iter()
            .map(|u| format!("{}: {}", u.path, u.error))
            .collect(),
        snapshot: o.snapshot.clone(),
        ..Figures::default()
    }
}

async fn run(
    args: &BackupRun,
    sources: &[PathBuf],
    repo: Option<&Repository>,
    lock: Option<&Lock>,
) -> Result<Outcome, (anyhow::Error, Figures)> {
    let bare = |e: anyhow::Error| (e, Figures::default());
    let (scan_sources, excludes) = (sources.to_vec(), args.excludes.clone());
    let mut scan = tokio::task::spawn_blocking(move || scan::scan(&scan_sources, &excludes, true))
        .await
        .map_err(|e| bare(e.into()))?
        .map_err(bare)?;
    let present = match repo {
        Some(repo) => repo.contents().await.map_err(bare)?,
        None => HashMap::new(),
    };
    let mut cache = HashCache::load(
        args.cache_dir.as_deref(),
        repo.map_or("none", |r| r.config.id.as_str()),
    );
    let files: Vec<&Found> = scan.found.iter().filter(|f| f.kind == Kind::File).collect();
    let total_bytes = files.iter().map(|f| f.stamp.size).sum();
    let progress = Progress::start(
        &args.running.output,
        "backup",
        files.len() as u64,
        total_bytes,
    );
    for special in &scan.special {
        progress.say(&format!(
            "left out (not a file, folder or symlink): {special}"
        ));
    }
    let location = args.target.location().map_err(bare)?;
    let store = match repo {
        Some(repo) => repo.store.clone(),
        None => args
            .target
            .endpoint
            .resolve()
            .and_then(|r| r.store(&location.bucket))
            .map_err(bare)?,
    };
    let sender = Sender {
        store,
        location,
        present,
        claimed: Mutex::new(HashSet::new()),
        sent: Mutex::new(HashSet::new()),
        progress,
        dry_run: args.dry_run,
        bytes_read: Default::default(),
    };
    let known: Vec<Option<String>> = files
        .iter()
        .map(|f| cache.lookup(&f.local, &f.stamp))
        .collect();
    // In walk order, stopping at the first failure of the store: the
    // files after it would only fail the same way, each after its retries.
    let mut outcomes = futures::stream::iter(files.iter().zip(known))
        .map(|(file, known)| sender.store_file(file, known))
        .buffered(usize::from(args.running.parallel));
    let mut results = Vec::with_capacity(files.len());
    let mut first_error = None;
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(stored) => results.push(stored),
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    drop(outcomes);
    let mut by_path: HashMap<&str, Stored> = HashMap::new();
    let mut figures = Figures::default();
    for (file, stored) in files.iter().zip(results) {
        if let Stored::Kept { sha256, sent, size } = &stored {
            figures.files_scanned += 1;
            figures.bytes_scanned += size;
            if *sent {
                figures.files_sent += 1;
                figures.bytes_sent += size;
            }
            cache.remember(file.local.clone(), file.stamp.clone(), sha256.clone());
        }
        by_path.insert(&file.name, stored);
    }
    let bytes_read = sender.bytes_read.load(std::sync::atomic::Ordering::Relaxed);
    let elapsed = sender.progress.elapsed();
    let available: HashSet<String> = sender
        .present
        .keys()
        .cloned()
        .chain(sender.sent.lock().expect("not poisoned").iter().cloned())
        .collect();
    let sender_has = |sha256: &str| args.dry_run || available.contains(sha256);
    sender.progress.finish();
    if let Some(e) = first_error {
        // What was sent stays for the next run; the cache remembers it.
        let _ = cache.save();
        return Err((e, figures));
    }
    let mut summary = Summary::default();
    let mut entries = Vec::with_capacity(scan.found.len());
    let mut sent_paths = Vec::new();
    let (mut skipped_files, mut skipped_bytes) = (0, 0);
    for found in &scan.found {
        let mut entry = Entry {
            path: found.name.clone(),
            kind: found.kind,
            mode: found.mode,
            mtime_ns: found.mtime_ns,
            size: None,
            sha256: None,
            target: found.target.clone(),
        };
        match found.kind {
            Kind::Dir => summary.dirs += 1,
            Kind::Symlink => summary.symlinks += 1,
            Kind::File => match by_path.remove(found.name.as_str()) {
                Some(Stored::Kept { sha256, .. }) if !sender_has(&sha256) => {
                    scan.unreadable.push(Unreadable {
                        path: found.local.display().to_string(),
                        error: "another file with the same content could not be sent".to_owned(),
                    });
                    continue;
                }
                Some(Stored::Kept { sha256, size, sent }) => {
                    summary.files += 1;
                    summary.bytes += size;
                    if sent {
                        summary.new_files += 1;
                        summary.new_bytes += size;
                        sent_paths.push(found.name.clone());
                    } else {
                        skipped_files += 1;
                        skipped_bytes += size;
                    }
                    entry.size = Some(size);
                    entry.sha256 = Some(sha256);
                }
                Some(Stored::Unreadable(error)) => {
                    scan.unreadable.push(Unreadable {
                        path: found.local.display().to_string(),
                        error,
                    });
                    continue;
                }
                None => continue,
            },
        }
        entries.push(entry);
    }
    summary.unreadable_paths = scan.unreadable.len() as u64;
    let snapshot = Snapshot {
        format: SNAPSHOT_FORMAT.to_owned(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        host: super::locks::hostname(),
        paths: sources.iter().map(|s| s.display().to_string()).collect(),
        tags: args.tags.clone(),
        summary: summary.clone(),
        entries,
    };
    if let Some(lock) = lock
        && let Err(e) = lock.still_held()
    {
        return Err((e, figures));
    }
    let id = match repo {
        Some(repo) if !args.dry_run => Some(repo.save(&snapshot).await.map_err(|e| (e, figures))?),
        _ => None,
    };
    if !args.dry_run {
        cache.drop_unseen_under(sources);
        if let Err(e) = cache.save() {
            eprintln!(
                "note: the hash cache could not be saved ({e}); the next run reads every file"
            );
        }
    }
    Ok(Outcome {
        snapshot: id,
        status: if scan.unreadable.is_empty() {
            "complete"
        } else {
            "partial"
        },
        summary,
        skipped_files,
        skipped_bytes,
        read_bytes: bytes_read,
        sent_paths,
        unreadable: scan.unreadable,
        seconds: elapsed.as_secs_f64(),
    })
}

fn print_outcome(args: &BackupRun, o: &Outcome) -> anyhow::Result<()> {
    if args.running.output.json {
        println!("{}", serde_json::to_string_pretty(o)?);
        return Ok(());
    }
    let took = std::time::Duration::from_secs_f64(o.seconds);
    if args.dry_run {
        for path in &o.sent_paths {
            println!("would send {path}");
        }
        println!(
            "dry run: {} of {} files ({}) would be sent; nothing was changed",
            o.summary.new_files,
            o.summary.files,
            size(o.summary.new_bytes)
        );
    } else {
        println!(
            "snapshot {} saved: {} files, {} folders, {}; sent {} files ({}) at {}, {} files already there",
            o.snapshot.as_deref().map(short).unwrap_or("?"),
            o.summary.files,
            o.summary.dirs,
            size(o.summary.bytes),
            o.summary.new_files,
            size(o.summary.new_bytes),
            speed(o.summary.new_bytes, took),
            o.skipped_files,
        );
    }
    scan::tell_unreadable(&o.unreadable);
    Ok(())
}

impl Sender {
    async fn store_file(&self, file: &Found, known: Option<String>) -> anyhow::Result<Stored> {
        let size = file.stamp.size;
        let small = size <= PART_SIZE as u64;
        // Small files are read once, for their hash and to send them.
        let (sha256, size, contents) = match known {
            Some(sha256) => (sha256, size, None),
            None => match self.read(file, small).await? {
                Ok(read) => (read.sha256, read.len, read.contents),
                Err(why) => return Ok(Stored::Unreadable(why)),
            },
        };
        // Content already there under another size is damaged: sent again.
        let first = self.present.get(&sha256) != Some(&size)
            && self
                .claimed
                .lock()
                .expect("not poisoned")
                .insert(sha256.clone());
        if !first || self.dry_run {
            self.progress.add_bytes(size);
            self.progress.file_done();
            return Ok(Stored::Kept {
                sha256,
                size,
                sent: first,
            });
        }
        let key = self.location.key(&content_name(&sha256));
        let sent = if small {
            let contents = match contents {
                Some(contents) => contents,
                None => match self.read(file, true).await? {
                    Ok(FileRead {
                        sha256: again,
                        contents: Some(contents),
                        ..
                    }) if again == sha256 => contents,
                    Ok(_) => return Ok(Stored::Unreadable(changed())),
                    Err(why) => return Ok(Stored::Unreadable(why)),
                },
            };
            self.store
                .put(&key, PutPayload::from(contents))
                .await
                .with_context(|| format!("cannot send {}", file.local.display()))?;
            self.progress.add_bytes(size);
            Ok(())
        } else {
            self.send_in_parts(file, &sha256, &key).await?
        };
        self.progress.file_done();
        Ok(match sent {
            Ok(()) => {
                self.sent
                    .lock()
                    .expect("not poisoned")
                    .insert(sha256.clone());
                Stored::Kept {
                    sha256,
                    size,
                    sent: true,
                }
            }
            Err(why) => Stored::Unreadable(why),
        })
    }

    /// Reads a file for its hash (and its contents when `keep`); the inner
    /// error is why the file cannot be read.
    async fn read(&self, file: &Found, keep: bool) -> anyhow::Result<Result<FileRead, String>> {
        let path = file.local.clone();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<FileRead> {
            let mut f = std::fs::File::open(&path)?;
            if keep {
                let mut contents = Vec::new();
                f.read_to_end(&mut contents)?;
                return Ok(FileRead {
                    sha256: hex::encode(sha2::Sha256::digest(&contents)),
                    len: contents.len() as u64,
                    contents: Some(contents.into()),
                });
            }
            let mut hasher = sha2::Sha256::new();
            let mut buffer = vec![0u8; 1 << 20];
            let mut len = 0u64;
            loop {
                let n = f.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                len += n as u64;
            }
            Ok(FileRead {
                sha256: hex::encode(hasher.finalize()),
                len,
                contents: None,
            })
        })
        .await?;
        Ok(match read {
            Ok(read) => {
                self.bytes_read
                    .fetch_add(read.len, std::sync::atomic::Ordering::Relaxed);
                Ok(read)
            }
            Err(e) => Err(e.to_string()),
        })
    }

    /// Sends a big file in parts; a file that changed since it was hashed
    /// is not completed under the old hash.
    async fn send_in_parts(
        &self,
        file: &Found,
        sha256: &str,
        key: &object_store::path::Path,
    ) -> anyhow::Result<Result<(), String>> {
        let sent = send_in_parts(
            self.store.as_ref(),
            &file.local,
            key,
            Some(sha256),
            &self.progress,
        )
        .await?;
        Ok(match sent {
            Ok((_, total)) => {
                self.bytes_read
                    .fetch_add(total, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(problem) => {
                self.claimed.lock().expect("not poisoned").remove(sha256);
                Err(problem)
            }
        })
    }
}

/// Sends a file in parts of [`PART_SIZE`], [`PARTS_AT_ONCE`] at a time,
/// hashing it as it is read; with `expected`, an upload whose bytes do not
/// hash to it is aborted (nothing appears). The hash and length sent, or
/// why the file could not be read.
pub async fn send_in_parts(
    store: &dyn ObjectStore,
    local: &std::path::Path,
    key: &object_store::path::Path,
    expected: Option<&str>,
    progress: &Progress,
) -> anyhow::Result<Result<(String, u64), String>> {
    let upload = store
        .put_multipart(key)
        .await
        .with_context(|| format!("cannot start sending {}", local.display()))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let (chunks, mut arriving) = tokio::sync::mpsc::channel::<Bytes>(2);
    let path = local.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
        let mut f = std::fs::File::open(&path)?;
        let mut hasher = sha2::Sha256::new();
        let mut total = 0u64;
        loop {
            let mut chunk = Vec::with_capacity(PART_SIZE);
            let n = (&mut f).take(PART_SIZE as u64).read_to_end(&mut chunk)?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk);
            total += n as u64;
            if chunks.blocking_send(Bytes::from(chunk)).is_err() {
                break;
            }
        }
        Ok((hex::encode(hasher.finalize()), total))
    });
    while let Some(chunk) = arriving.recv().await {
        let len = chunk.len() as u64;
        if let Err(e) = writer.wait_for_capacity(PARTS_AT_ONCE).await {
            return Err(e).with_context(|| format!("cannot send {}", local.display()));
        }
        writer.put(chunk);
        progress.add_bytes(len);
    }
    let read = match reader.await? {
        Ok((sha256, total)) if expected.is_none_or(|e| e == sha256) => Ok((sha256, total)),
        Ok(_) => Err(changed()),
        Err(e) => Err(e.to_string()),
    };
    if read.is_err() {
        let _ = writer.abort().await;
        return Ok(read);
    }
    writer
        .finish()
        .await
        .with_context(|| format!("cannot send {}", local.display()))?;
    Ok(read)
}

fn changed() -> String {
    "it changed while being read; back it up again when it is still".to_owned()
}
