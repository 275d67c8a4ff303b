//! `cistern pool process --exec`: the processor loop. It claims sealed
//! groups, downloads each one's files, runs the command on them while
//! renewing the lease, and uploads the command's output as the result; a
//! failed command is reported so that the group returns to the pool (or
//! fails for good with `--final-exit-code`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::model::GroupState;

use super::client::{Backoff, Client, failure, save_body, transient, word};

/// Quotes a path for `sh -c`.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// What `process` does with each group it claims.
pub(super) struct Work {
    /// The command, with `{input}` and `{output}`.
    pub(super) exec: String,
    pub(super) lease_secs: u64,
    /// The command's exit status that makes a failure final.
    pub(super) final_exit_code: Option<i32>,
}

/// Claims groups and works on them until `count` are done; answers how
/// many were not published.
pub(super) async fn process(
    client: &Client,
    work: &Work,
    poll: Duration,
    count: Option<usize>,
) -> anyhow::Result<usize> {
    let mut done = 0;
    let mut failed = 0;
    let mut backoff = Backoff::new(None);
    while count.is_none_or(|c| done < c) {
        let claim = client
            .request(reqwest::Method::POST, &client.url("/claims"))
            .json(&serde_json::json!({"lease_secs": work.lease_secs}))
            .send()
            .await;
        let claim = match claim {
            Ok(r) if r.status() == reqwest::StatusCode::NO_CONTENT => {
                tokio::time::sleep(poll).await;
                continue;
            }
            Ok(r) if r.status().is_success() => r.json::<Value>().await?,
            Ok(r) if !transient(r.status()) => return Err(failure(r, "claiming refused").await),
            Ok(r) => {
                backoff
                    .wait(&format!("claiming failed: {}", r.status()))
                    .await;
                continue;
            }
            Err(e) => {
                backoff.wait(&format!("claiming failed: {e}")).await;
                continue;
            }
        };
        backoff.reset();
        let group = claim["group"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let lease = claim["lease_id"].as_str().unwrap_or_default().to_owned();
        eprintln!("claimed {group}");
        match process_group(client, work, &group, &lease).await {
            Ok(()) => println!("published {group}"),
            Err(e) => {
                failed += 1;
                eprintln!("group {group} failed: {e:#}");
                report_failure(client, work, &group, &lease, &e).await;
            }
        }
        done += 1;
    }
    Ok(failed)
}

/// The command ended badly.
#[derive(Debug, thiserror::Error)]
#[error("the command exited with {status}; stderr ends with:\n{tail}")]
struct CommandFailed {
    status: std::process::ExitStatus,
    /// The end of its stderr.
    tail: String,
}

/// Tells the server why the work failed, so the group goes back to the
/// pool now rather than when the lease lapses; final when the command
/// exited with `--final-exit-code`. Unreported, the lease lapses and counts
/// the same attempt.
async fn report_failure(
    client: &Client,
    work: &Work,
    group: &str,
    lease: &str,
    error: &anyhow::Error,
) {
    let last = work.final_exit_code.is_some_and(|code| {
        error
            .downcast_ref::<CommandFailed>()
            .and_then(|failed| failed.status.code())
            == Some(code)
    });
    let reported = client
        .request(
            reqwest::Method::POST,
            &client.url(&format!("/groups/{group}/fail")),
        )
        .json(
            &serde_json::json!({"lease_id": lease, "reason": format!("{error:#}"), "final": last}),
        )
        .send()
        .await;
    let problem = match reported {
        Ok(r) if r.status().is_success() => {
            let now: Value = r.json().await.unwrap_or(Value::Null);
            let attempts = now["attempts"].as_i64().unwrap_or_default();
            match word(&now["state"]) {
                Some(GroupState::Sealed) => eprintln!(
                    "group {group} is back in the pool for another attempt ({attempts} made)"
                ),
                _ => eprintln!("group {group} has failed for good after {attempts} attempt(s)"),
            }
            return;
        }
        Ok(r) => failure(r, "the server refused the report").await,
        Err(e) => e.into(),
    };
    eprintln!(
        "reporting the failure failed ({problem:#}); its lease lapses instead, the same attempt"
    );
}

/// Downloads, runs the command, uploads; the lease is renewed all along,
/// so a slow download or upload cannot let it lapse either.
async fn process_group(
    client: &Client,
    work: &Work,
    group: &str,
    lease: &str,
) -> anyhow::Result<()> {
    let uploading = std::sync::atomic::AtomicBool::new(false);
    tokio::select! {
        done = work_on_group(client, &work.exec, group, lease, &uploading) => done,
        lapsed = keep_lease(client, group, lease, work.lease_secs, &uploading) => Err(lapsed),
    }
}

/// The command's process group (the shell and everything it started),
/// killed when the work is dropped before the command ended: a lapsed
/// lease must not leave a pipeline running.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(id) = self.0.and_then(|id| libc::pid_t::try_from(id).ok()) {
            // SAFETY: kill(2) takes plain integers; a negative pid names the
            // group that `process_group(0)` made with the shell as leader.
            unsafe {
                libc::kill(-id, libc::SIGKILL);
            }
        }
    }
}

/// Renews the lease at a third of its length; answers only once it has
/// lapsed (the caller then drops the work, which kills the command). Once
/// the result is on its way, the upload's own answer decides: a refused
/// renewal then may only mean that the result was just published.
async fn keep_lease(
    client: &Client,
    group: &str,
    lease: &str,
    lease_secs: u64,
    uploading: &std::sync::atomic::AtomicBool,
) -> anyhow::Error {
    let renew_every = Duration::from_secs((lease_secs / 3).max(1));
    loop {
        tokio::time::sleep(renew_every).await;
        let renewed = client
            .request(
                reqwest::Method::POST,
                &client.url(&format!("/groups/{group}/lease")),
            )
            .json(&serde_json::json!({"lease_id": lease, "lease_secs": lease_secs}))
            .send()
            .await;
        match renewed {
            Ok(r) if r.status().is_success() => {}
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                if uploading.load(std::sync::atomic::Ordering::Acquire) {
                    return std::future::pending().await;
                }
                return anyhow::anyhow!("the lease lapsed; another processor may have the group");
            }
            other => eprintln!("renewing the lease failed ({other:?}); trying again"),
        }
    }
}

async fn work_on_group(
    client: &Client,
    exec: &str,
    group: &str,
    lease: &str,
    uploading: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let input = work.path().join("input");
    std::fs::create_dir_all(&input)?;
    let output = work.path().join("output");
    let archive = client
        .request(
            reqwest::Method::GET,
            &client.url(&format!("/groups/{group}/archive")),
        )
        .send()
        .await?
        .error_for_status()?;
    let tar_path = work.path().join("group.tar");
    drop(save_body(archive, &tar_path).await?);
    let unpack_into = input.clone();
    tokio::task::spawn_blocking(move || {
        tar::Archive::new(std::fs::File::open(&tar_path)?).unpack(&unpack_into)
    })
    .await??;

    let command = exec
        .replace("{input}", &shell_quote(&input))
        .replace("{output}", &shell_quote(&output));
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .context("starting the command")?;
    let mut running = ProcessGroup(child.id());
    let mut stderr = child.stderr.take().context("no stderr")?;
    let stderr_tail = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut all).await;
        let start = all.len().saturating_sub(2000);
        String::from_utf8_lossy(&all[start..]).into_owned()
    });
    let status = child.wait().await?;
    running.0 = None;
    let tail = stderr_tail.await.unwrap_or_default();
    if !status.success() {
        return Err(CommandFailed { status, tail }.into());
    }
    let file = tokio::fs::File::open(&output)
        .await
        .context("the command did not write {output}")?;
    uploading.store(true, std::sync::atomic::Ordering::Release);
    let uploaded = client
        .request(
            reqwest::Method::PUT,
            &format!(
                "{}?lease={lease}",
                client.url(&format!("/groups/{group}/result"))
            ),
        )
        .body(reqwest::Body::wrap_stream(
            tokio_util::io::ReaderStream::new(file),
        ))
        .send()
        .await?;
    if !uploaded.status().is_success() {
        let status = uploaded.status();
        let body: Value = uploaded.json().await.unwrap_or(Value::Null);
        bail!(
            "uploading the result failed ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
