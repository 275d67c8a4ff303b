//! `cistern mirror`: a plain, browsable copy of a folder under a prefix,
//! as `rclone sync` makes one. A file is sent when the prefix has no
//! object of its path, or one of another size or older than the file;
//! symlinks are left out (S3 has none). With `--delete`, objects the folder
//! no longer has are deleted, but only after a run with no errors and
//! never more than `--max-delete`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, PutPayload};
use serde::Serialize;

use super::action_log::{ActionLog, Figures, failed};
use super::manifest::Kind;
use super::report::{Progress, size, speed};
use super::run::{PART_SIZE, send_in_parts};
use super::scan::{self, Found, Unreadable};
use super::store::Location;
use super::{EXIT_PARTIAL, MirrorArgs};

#[derive(Serialize, Default)]
struct Outcome {
    status: &'static str,
    files: u64,
    bytes: u64,
    sent_files: u64,
    sent_bytes: u64,
    unchanged_files: u64,
    deleted: Vec<String>,
    sent_paths: Vec<String>,
    unreadable: Vec<Unreadable>,
    symlinks_left_out: Vec<String>,
    seconds: f64,
}

pub async fn mirror(args: MirrorArgs) -> anyhow::Result<i32> {
    let location = Location::parse(&args.to)?;
    let resolved = args.target.resolve()?;
    let store = resolved.store(&location.bucket)?;
    let source = scan::absolute(&args.source)?;
    if !std::fs::metadata(&source)
        .with_context(|| format!("cannot mirror {}", source.display()))?
        .is_dir()
    {
        bail!(
            "{} is not a folder; mirror copies a folder's contents",
            source.display()
        );
    }
    let log = match args.dry_run {
        true => None,
        false => Some(
            ActionLog::begin(
                &args.running.log,
                &resolved,
                "mirror",
                source.display().to_string(),
                location.url(),
                None,
            )
            .await,
        ),
    };
    let outcome = run(&args, store.as_ref(), &location, source).await;
    match outcome {
        Ok(outcome) => {
            if let Some(log) = log {
                log.end(outcome.status, figures_of(&outcome)).await;
            }
            print_outcome(&args, &outcome)?;
            Ok(if outcome.unreadable.is_empty() {
                0
            } else {
                EXIT_PARTIAL
            })
        }
        Err(e) => Err(failed(log, e, Figures::default()).await),
    }
}

fn figures_of(o: &Outcome) -> Figures {
    Figures {
        files_scanned: o.files,
        bytes_scanned: o.bytes,
        files_sent: o.sent_files,
        bytes_sent: o.sent_bytes,
        files_skipped: o.unchanged_files,
        bytes_skipped: o.bytes - o.sent_bytes,
        files_deleted: o.deleted.len() as u64,
        errors: o
            .unreadable
            .iter()
            .map(|u| format!("{}: {}", u.path, u.error))
            .collect(),
        ..Figures::default()
    }
}

async fn run(
    args: &MirrorArgs,
    store: &dyn ObjectStore,
    location: &Location,
    source: PathBuf,
) -> anyhow::Result<Outcome> {
    let excludes = args.excludes.clone();
    let source_root = source.clone();
    let mut scan =
        tokio::task::spawn_blocking(move || scan::scan(&[source], &excludes, false)).await??;
    let remote = remote_objects(store, location).await?;
    let mut outcome = Outcome::default();
    let mut to_send: Vec<&Found> = Vec::new();
    for found in &scan.found {
        match found.kind {
            Kind::Dir => {}
            Kind::Symlink => outcome.symlinks_left_out.push(found.name.clone()),
            Kind::File => {
                outcome.files += 1;
                outcome.bytes += found.stamp.size;
                match remote.get(&found.name) {
                    Some(meta) if unchanged(meta, found) => outcome.unchanged_files += 1,
                    _ => to_send.push(found),
                }
            }
        }
    }
    let progress = Progress::start(
        &args.running.output,
        "mirror",
        to_send.len() as u64,
        to_send.iter().map(|f| f.stamp.size).sum(),
    );
    // In order, and stopping at the first failure of the store.
    let sent: Vec<Result<u64, String>> = match args.dry_run {
        true => to_send.iter().map(|f| Ok(f.stamp.size)).collect(),
        false => {
            futures::stream::iter(to_send.iter())
                .map(|found| async {
                    let key = location.raw_key(&found.name)?;
                    let sent = send(store, found, &key, &progress).await;
                    progress.file_done();
                    sent
                })
                .buffered(usize::from(args.running.parallel))
                .try_collect()
                .await?
        }
    };
    let took = progress.elapsed();
    progress.finish();
    for (found, result) in to_send.iter().zip(sent) {
        match result {
            Ok(bytes) => {
                outcome.sent_files += 1;
                outcome.sent_bytes += bytes;
                outcome.sent_paths.push(found.name.clone());
            }
            Err(why) => scan.unreadable.push(Unreadable {
                path: found.local.display().to_string(),
                error: why,
            }),
        }
    }
    outcome.unreadable = std::mem::take(&mut scan.unreadable);
    if args.delete && !outcome.unreadable.is_empty() {
        eprintln!(
            "note: nothing was deleted: --delete waits for a run in which every file could be read"
        );
    }
    if args.delete && outcome.unreadable.is_empty() {
        let local: std::collections::HashSet<&str> =
            scan.found.iter().map(|f| f.name.as_str()).collect();
        let excluded = scan::excluded_matcher(&source_root, &args.excludes, &scan.found)?;
        let mut extra: Vec<&String> = remote
            .keys()
            .filter(|k| !local.contains(k.as_str()) && !excluded(k))
            .collect();
        extra.sort();
        if let Some(max) = args.max_delete
            && extra.len() > max
        {
            bail!(
                "{} objects would be deleted, more than --max-delete {max}; nothing was deleted",
                extra.len()
            );
        }
        if !args.dry_run {
            let keys = extra
                .iter()
                .map(|name| location.raw_key(name))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let _: Vec<_> = store
                .delete_stream(futures::stream::iter(keys.into_iter().map(Ok)).boxed())
                .try_collect()
                .await
                .context("cannot delete objects the folder no longer has")?;
        }
        outcome.deleted = extra.into_iter().cloned().collect();
    }
    outcome.status = if outcome.unreadable.is_empty() {
        "complete"
    } else {
        "partial"
    };
    outcome.seconds = took.as_secs_f64();
    Ok(outcome)
}

/// Objects under the prefix, by their path below it.
async fn remote_objects(
    store: &dyn ObjectStore,
    location: &Location,
) -> anyhow::Result<HashMap<String, ObjectMeta>> {
    let prefix = (!location.prefix.is_empty())
        .then(|| location.raw_key(""))
        .transpose()?;
    let metas: Vec<ObjectMeta> = store
        .list(prefix.as_ref())
        .try_collect()
        .await
        .with_context(|| format!("cannot list {}", location.url()))?;
    let strip = match location.prefix.is_empty() {
        true => String::new(),
        false => format!("{}/", location.prefix),
    };
    Ok(metas
        .into_iter()
        .filter_map(|m| {
            let name = m.location.as_ref().strip_prefix(&strip)?.to_owned();
            Some((name, m))
        })
        .collect())
}

/// The object already holds this file: same size, and not older.
fn unchanged(meta: &ObjectMeta, found: &Found) -> bool {
    let object_ns = meta.last_modified.timestamp_nanos_opt().unwrap_or(i64::MAX);
    // S3 keeps modification times to the second.
    meta.size == found.stamp.size
        && object_ns >= found.mtime_ns - found.mtime_ns.rem_euclid(1_000_000_000)
}

/// Sends one file; the bytes sent, or why the file could not be read.
async fn send(
    store: &dyn ObjectStore,
    found: &Found,
    key: &object_store::path::Path,
    progress: &Progress,
) -> anyhow::Result<Result<u64, String>> {
    if found.stamp.size > PART_SIZE as u64 {
        let sent = send_in_parts(store, &found.local, key, None, progress).await?;
        if sent.is_ok() && changed_since_scan(found) {
            // Half old, half new, and newer than the file: the next run
            // would keep it. Gone, it is sent again then.
            let _ = store.delete(key).await;
            return Ok(Err(CHANGED.to_owned()));
        }
        return Ok(sent.map(|(_, total)| total));
    }
    let path = found.local.clone();
    let contents = match tokio::task::spawn_blocking(move || std::fs::read(path)).await? {
        Ok(contents) => contents,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if changed_since_scan(found) {
        return Ok(Err(CHANGED.to_owned()));
    }
    let len = contents.len() as u64;
    store
        .put(key, PutPayload::from(contents))
        .await
        .with_context(|| format!("cannot send {}", found.local.display()))?;
    progress.add_bytes(len);
    Ok(Ok(len))
}

const CHANGED: &str = "it changed while being read; mirror again when it is still";

/// The file's size or mtime moved since the walk saw it.
fn changed_since_scan(found: &Found) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(&found.local).map_or(true, |m| {
        m.len() != found.stamp.size || m.mtime() * 1_000_000_000 + m.mtime_nsec() != found.mtime_ns
    })
}

fn print_outcome(args: &MirrorArgs, o: &Outcome) -> anyhow::Result<()> {
    if args.running.output.json {
        println!("{}", serde_json::to_string_pretty(o)?);
        return Ok(());
    }
    let (send_verb, delete_verb) = match args.dry_run {
        true => ("would send", "would delete"),
        false => ("sent", "deleted"),
    };
    if args.dry_run || !args.running.output.quiet {
        for path in &o.sent_paths {
            println!("{send_verb} {path}");
        }
        for path in &o.deleted {
            println!("{delete_verb} {path}");
        }
    }
    let took = std::time::Duration::from_secs_f64(o.seconds);
    println!(
        "mirror: {} files ({}); {send_verb} {} ({}) at {}, {} unchanged, {delete_verb} {}",
        o.files,
        size(o.bytes),
        o.sent_files,
        size(o.sent_bytes),
        speed(o.sent_bytes, took),
        o.unchanged_files,
        o.deleted.len()
    );
    if !o.symlinks_left_out.is_empty() && !args.running.output.quiet {
        eprintln!(
            "{} symlinks left out (S3 has none)",
            o.symlinks_left_out.len()
        );
    }
    scan::tell_unreadable(&o.unreadable);
    Ok(())
}
