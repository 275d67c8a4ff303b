//! `cistern pool watch`: follows the pool's events and downloads each new
//! result into a directory (`<group>.result`, the newest also as `latest`),
//! remembering the last event and result there so that a restart of either
//! side neither misses nor repeats one.

use std::path::Path;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::PoolEventKind;

use super::client::{Backoff, Client, Refused, failure, save_body, transient, word};

/// What `watch` remembers between runs.
#[derive(Serialize, Deserialize, Default)]
struct WatchState {
    last_event_id: i64,
    latest_etag: Option<String>,
}

const WATCH_STATE: &str = ".cistern-watch.json";

fn save_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(value)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Downloads a result into `out` (through a temporary file); answers its
/// ETag, or `None` when the server says nothing is newer.
async fn download_result(
    client: &Client,
    path: &str,
    if_none_match: Option<&str>,
    out: &Path,
) -> anyhow::Result<Option<(String, String)>> {
    let mut request = client.request(reqwest::Method::GET, &client.url(path));
    if let Some(etag) = if_none_match {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await?;
    match response.status() {
        reqwest::StatusCode::NOT_MODIFIED | reqwest::StatusCode::NOT_FOUND => return Ok(None),
        status if !status.is_success() => {
            return Err(failure(response, &format!("downloading {path}")).await);
        }
        _ => {}
    }
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let group = response
        .headers()
        .get("x-cistern-group")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let file_name = format!("{}.result", group.replace(':', "-"));
    let tmp = out.join(format!(".{file_name}.part"));
    let file = save_body(response, &tmp).await?;
    file.sync_all().await?;
    drop(file);
    std::fs::rename(&tmp, out.join(&file_name))?;
    std::fs::copy(out.join(&file_name), out.join("latest.tmp"))?;
    std::fs::rename(out.join("latest.tmp"), out.join("latest"))?;
    println!("result {group} -> {}", out.join(&file_name).display());
    Ok(Some((etag, group)))
}

/// Words for a `member.*` event after which the server may no longer
/// serve this member; `None` for the others.
fn member_change(kind: PoolEventKind) -> Option<&'static str> {
    match kind {
        PoolEventKind::MemberDisabled => Some("this member was disabled by the pool owner"),
        PoolEventKind::MemberRemoved => Some("this member was removed from the pool by its owner"),
        PoolEventKind::MemberRekeyed => Some("the pool owner gave this member a new token"),
        _ => None,
    }
}

pub(super) async fn watch(client: &Client, out: &Path, count: Option<usize>) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let state_path = out.join(WATCH_STATE);
    let mut state: WatchState = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut received = 0;
    let mut backoff = Backoff::new(None);
    // After a `member.*` event the next request tells whether the member
    // may go on (the event alone does not: it may be replayed from before
    // a new token, or be about another member when an owner watches); a
    // refusal then is told in the event's words.
    let mut changed: Option<&str> = None;
    let refused = |e: anyhow::Error, changed: Option<&str>| match changed {
        Some(why) if e.is::<Refused>() => Refused(why.to_owned()).into(),
        _ => e,
    };
    loop {
        // After any gap, first catch up on the newest result...
        match download_result(client, "/results/latest", state.latest_etag.as_deref(), out).await {
            Ok(Some((etag, _))) => {
                state.latest_etag = Some(etag);
                save_json(&state_path, &state)?;
                received += 1;
            }
            Ok(None) => {}
            Err(e) if e.is::<Refused>() => return Err(refused(e, changed)),
            Err(e) => {
                backoff
                    .wait(&format!("fetching the latest result failed: {e:#}"))
                    .await;
                continue;
            }
        }
        changed = None;
        if count.is_some_and(|c| received >= c) {
            return Ok(());
        }
        // ...then follow events from where we stopped.
        let response = client
            .request(reqwest::Method::GET, &client.events_url())
            .header("last-event-id", state.last_event_id.to_string())
            .send()
            .await;
        let response = match response {
            Ok(r) if r.status().is_success() => r,
            Ok(r) if !transient(r.status()) => return Err(failure(r, "following events").await),
            Ok(r) => {
                backoff
                    .wait(&format!("the server answered {}", r.status()))
                    .await;
                continue;
            }
            Err(e) => {
                backoff.wait(&format!("connecting failed: {e}")).await;
                continue;
            }
        };
        backoff.reset();
        let mut stream = response.bytes_stream();
        // Raw bytes until a whole event is in: a chunk may end inside a
        // multi-byte character.
        let mut raw: Vec<u8> = Vec::new();
        'stream: while let Some(Ok(chunk)) = stream.next().await {
            raw.extend_from_slice(&chunk);
            while let Some(end) = raw.windows(2).position(|w| w == b"\n\n") {
                let block_bytes: Vec<u8> = raw.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block_bytes);
                let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                let event: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                let kind: Option<PoolEventKind> = word(&event["kind"]);
                changed = kind.and_then(member_change);
                if kind == Some(PoolEventKind::GroupPublished)
                    && let Some(group) = event["group"].as_str()
                {
                    let path = format!("/groups/{group}/result");
                    match download_result(client, &path, None, out).await {
                        Ok(Some((etag, _))) => {
                            state.latest_etag = Some(etag);
                            received += 1;
                        }
                        Ok(None) => {}
                        Err(e) if e.is::<Refused>() => return Err(e),
                        Err(e) => {
                            // Without moving past this event: reconnect and
                            // catch up through the latest result.
                            eprintln!("downloading {group} failed: {e:#}");
                            break 'stream;
                        }
                    }
                }
                if let Some(id) = event["id"].as_i64() {
                    state.last_event_id = id;
                }
                save_json(&state_path, &state)?;
                if count.is_some_and(|c| received >= c) {
                    return Ok(());
                }
                if changed.is_some() {
                    // The server ends a refused member's stream; ask at once.
                    break 'stream;
                }
            }
        }
        if changed.is_none() {
            backoff.wait("the event stream ended").await;
        }
    }
}
