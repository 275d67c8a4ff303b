//! One group of a pool (`/ui/pools/{pool}/groups/{group}`), for its owner:
//! its window and state, its files with who sent them, the processor that
//! holds (or last held) its lease and until when, its result, and which
//! members have fetched that result and when. Sealing early and reopening
//! post to the pool's group action, as on the pool page.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::browser::{object_url, raw_url};
use super::pages::{Chrome, render};
use super::pools::group_start;
use super::session::{ConsoleError, Visitor};
use super::words;
use crate::core::CoreError;
use crate::core::pools::rfc3339;
use crate::model::{GroupState, PoolError};
use crate::web::WebState;

/// Files listed on the page; the rest are counted.
const FILES_SHOWN: i64 = 500;

pub struct FileRow {
    member: String,
    name: String,
    size: String,
    content_type: String,
    sent: String,
    sha256: String,
    page: String,
    download: String,
}

#[derive(Template)]
#[template(path = "console/pool_group.html")]
struct GroupPage {
    chrome: Chrome,
    pool: String,
    id: String,
    window: String,
    state: &'static str,
    files: i64,
    bytes: String,
    attempts: i64,
    /// Who holds the lease and until when, or who held the last one.
    processor: String,
    rows: Vec<FileRow>,
    more: i64,
    /// Links to the result's page and bytes.
    result: Option<(String, String, String)>,
    fetched: Vec<(String, String)>,
    missing: Vec<String>,
    can_seal: bool,
    can_reopen: bool,
}

/// `GET /ui/pools/{pool}/groups/{group}`, the group named by its window's
/// start in RFC 3339 (as on the pool page).
pub async fn show(
    State(state): State<WebState>,
    visitor: Visitor,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let pool = state.store.owned_pool(&visitor.principal, &name).await?;
    let start_ms = group_start(&id).ok_or(CoreError::from(PoolError::NoSuchGroup))?;
    let group = state.store.pool_group(&pool, start_ms).await?;
    let scope = state.store.owner_contribution_scope(&pool).await?;
    let files = state
        .store
        .contribution_page(&scope, Some(start_ms), None, FILES_SHOWN)
        .await?;
    let rows: Vec<FileRow> = files
        .into_iter()
        .map(|(c, member)| FileRow {
            member,
            size: words::size(c.size),
            content_type: c.content_type,
            sent: words::time(c.client_time_ms),
            sha256: c.sha256,
            page: object_url(&pool.bucket, &c.object_key),
            download: raw_url(&pool.bucket, &c.object_key),
            name: c.name,
        })
        .collect();
    let now = crate::core::now_ms();
    let processor = match (&group.lease_member, group.lease_expires_ms) {
        (Some(who), Some(until)) if group.state == GroupState::Processing && until > now => {
            format!("{who}, lease until {}", words::time(until))
        }
        (Some(who), Some(_)) if group.state == GroupState::Processing => {
            format!("{who}, lease lapsed; the group is handed on at the next check")
        }
        (Some(who), _) if group.state == GroupState::Published => format!("{who} (published)"),
        (Some(who), _) => format!("{who} (the last attempt)"),
        (None, _) => "none yet".to_owned(),
    };
    let result = match (&group.result_key, group.result_size) {
        (Some(key), Some(size)) if group.state == GroupState::Published => Some((
            words::size(size),
            object_url(&pool.bucket, key),
            raw_url(&pool.bucket, key),
        )),
        _ => None,
    };
    let deliveries = state.store.group_deliveries(&pool, start_ms).await?;
    Ok(render(GroupPage {
        chrome: Chrome::for_visitor(
            &visitor,
            format!("Group {} of pool {}", words::time(start_ms), pool.name),
            "pools",
        ),
        id: rfc3339(start_ms),
        window: format!(
            "{} to {}",
            words::time(group.start_ms),
            words::time(group.end_ms)
        ),
        state: group.state.as_str(),
        more: (group.files - rows.len() as i64).max(0),
        files: group.files,
        bytes: words::size(group.bytes),
        attempts: group.attempts,
        processor,
        rows,
        fetched: if result.is_some() {
            deliveries
                .fetched
                .into_iter()
                .map(|(who, when)| (who, words::time(when)))
                .collect()
        } else {
            Vec::new()
        },
        missing: if result.is_some() {
            deliveries.missing
        } else {
            Vec::new()
        },
        result,
        can_seal: group.state == GroupState::Open,
        can_reopen: group.state == GroupState::Failed,
        pool: pool.name,
    }))
}
