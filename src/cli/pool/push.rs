//! `cistern pool push`: sends files with their timestamps in batches, and
//! prints each file's receipt. With `--spool`, files are first copied into
//! a local spool (the offline batch cache) and leave it only once the
//! server has answered for them, so nothing is lost while the server is
//! away.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::RefusalReason;

use super::client::{Backoff, Client, Refused, refusal, transient, word};

/// A file waiting to be sent.
#[derive(Serialize, Deserialize, Clone)]
struct Pending {
    name: String,
    timestamp: String,
    /// The bytes, in the spool or in place.
    path: PathBuf,
}

fn timestamp_of(path: &Path, fixed: Option<&str>) -> anyhow::Result<String> {
    if let Some(fixed) = fixed {
        chrono::DateTime::parse_from_rfc3339(fixed).context("--timestamp is not RFC 3339")?;
        return Ok(fixed.to_owned());
    }
    let modified: SystemTime = std::fs::metadata(path)?.modified()?;
    Ok(chrono::DateTime::<chrono::Utc>::from(modified)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn pending_for(path: &Path, fixed: Option<&str>) -> anyhow::Result<Pending> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name", path.display()))?
        .to_owned();
    Ok(Pending {
        name,
        timestamp: timestamp_of(path, fixed)?,
        path: path.to_owned(),
    })
}

/// Sends one batch; answers each file's receipt, or an error when the
/// server did not answer with receipts (nothing is known to be stored).
async fn send_batch(client: &Client, files: &[Pending]) -> anyhow::Result<Vec<Value>> {
    let mut form = reqwest::multipart::Form::new();
    for file in files {
        let handle = tokio::fs::File::open(&file.path)
            .await
            .with_context(|| format!("opening {}", file.path.display()))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(handle));
        form = form.text("timestamp", file.timestamp.clone()).part(
            "file",
            reqwest::multipart::Part::stream(body).file_name(file.name.clone()),
        );
    }
    let response = client
        .request(reqwest::Method::POST, &client.url("/contributions"))
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        if let Some(refused) = refusal(status, &body) {
            return Err(refused.into());
        }
        let message = body["error"]["message"].as_str().unwrap_or("no details");
        if transient(status) {
            bail!("server answered {status}: {message}");
        }
        return Err(Permanent(format!("server refused the batch ({status}): {message}")).into());
    }
    let receipts = body["receipts"].as_array().cloned().unwrap_or_default();
    if receipts.len() != files.len() {
        bail!("expected {} receipts, got {}", files.len(), receipts.len());
    }
    Ok(receipts)
}

/// An answer that retrying will not change (a malformed request, say).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Permanent(String);

/// Prints a receipt; true when the file is in the pool.
fn report(file: &Pending, receipt: &Value) -> bool {
    match receipt["status"].as_str() {
        Some(status @ ("accepted" | "duplicate")) => {
            println!(
                "{status} {} group={} id={}",
                file.name,
                receipt["contribution"]["group"].as_str().unwrap_or("?"),
                receipt["contribution"]["id"].as_str().unwrap_or("?"),
            );
            true
        }
        _ => {
            println!(
                "refused {} {}: {}",
                file.name,
                receipt["reason"].as_str().unwrap_or("?"),
                receipt["message"].as_str().unwrap_or("")
            );
            false
        }
    }
}

/// Sends a batch until the server answers it (or it is time to give up).
async fn send_with_retries(
    client: &Client,
    batch: &[Pending],
    backoff: &mut Backoff,
) -> anyhow::Result<Option<Vec<Value>>> {
    loop {
        match send_batch(client, batch).await {
            Ok(receipts) => {
                backoff.reset();
                return Ok(Some(receipts));
            }
            Err(e) if e.is::<Permanent>() || e.is::<Refused>() => return Err(e),
            Err(e) => {
                if !backoff.wait(&format!("sending failed: {e:#}")).await {
                    return Ok(None);
                }
            }
        }
    }
}

pub(super) async fn push_direct(
    client: &Client,
    files: &[PathBuf],
    fixed: Option<&str>,
    batch: usize,
    give_up: Option<Duration>,
) -> anyhow::Result<i32> {
    let pending: Vec<Pending> = files
        .iter()
        .map(|p| pending_for(p, fixed))
        .collect::<anyhow::Result<_>>()?;
    let mut backoff = Backoff::new(give_up);
    let mut refused = 0;
    for chunk in pending.chunks(batch.max(1)) {
        let Some(receipts) = send_with_retries(client, chunk, &mut backoff).await? else {
            bail!("gave up: the server did not answer");
        };
        for (file, receipt) in chunk.iter().zip(&receipts) {
            refused += usize::from(!report(file, receipt));
        }
    }
    Ok(if refused > 0 { 1 } else { 0 })
}

/// Copies a file into the spool durably: data, then its entry, each
/// written to a temporary name, synced and renamed.
fn spool_file(spool: &Path, file: &Pending) -> anyhow::Result<()> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let data = spool.join(format!("{id}.data"));
    let tmp = spool.join(format!("{id}.data.tmp"));
    std::fs::copy(&file.path, &tmp)
        .with_context(|| format!("copying {} into the spool", file.path.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &data)?;
    let entry = Pending {
        path: data,
        ..file.clone()
    };
    let tmp = spool.join(format!("{id}.json.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(&entry)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, spool.join(format!("{id}.json")))?;
    std::fs::File::open(spool)?.sync_all()?;
    Ok(())
}

/// Spool entries, oldest first.
fn spooled(spool: &Path) -> anyhow::Result<Vec<(PathBuf, Pending)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(spool)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let pending: Pending = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("reading spool entry {}", path.display()))?;
            entries.push((path, pending));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

pub(super) async fn push_spooled(
    client: &Client,
    spool: &Path,
    files: &[PathBuf],
    fixed: Option<&str>,
    batch: usize,
    give_up: Option<Duration>,
) -> anyhow::Result<i32> {
    std::fs::create_dir_all(spool)?;
    for path in files {
        spool_file(spool, &pending_for(path, fixed)?)?;
    }
    let mut backoff = Backoff::new(give_up);
    let mut refused = 0;
    loop {
        let entries = spooled(spool)?;
        if entries.is_empty() {
            return Ok(if refused > 0 { 1 } else { 0 });
        }
        let chunk: Vec<_> = entries.into_iter().take(batch.max(1)).collect();
        let pending: Vec<Pending> = chunk.iter().map(|(_, p)| p.clone()).collect();
        let Some(receipts) = send_with_retries(client, &pending, &mut backoff).await? else {
            eprintln!(
                "gave up for now: {} file(s) stay in {}",
                spooled(spool)?.len(),
                spool.display()
            );
            return Ok(75);
        };
        let mut kept = 0;
        for ((entry, file), receipt) in chunk.iter().zip(&receipts) {
            if word(&receipt["reason"]) == Some(RefusalReason::QuotaExceeded) {
                // Room may be made: keep it for a later run.
                report(file, receipt);
                kept += 1;
                continue;
            }
            refused += usize::from(!report(file, receipt));
            // Any other receipt, even a refusal, is final: the file leaves
            // the spool.
            std::fs::remove_file(entry)?;
            std::fs::remove_file(&file.path)?;
        }
        if kept == chunk.len() {
            eprintln!(
                "the pool's quota is full: {kept} file(s) stay in {}",
                spool.display()
            );
            return Ok(75);
        }
    }
}
