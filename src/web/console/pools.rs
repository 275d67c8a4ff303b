//! The pools dashboard: an owner's pools (`/ui/pools`) with their window,
//! members, groups by state and latest result; and one pool
//! (`/ui/pools/{pool}`): its groups on a time line coloured by state, each
//! with files, bytes, lease and result, sealing one early and reopening a
//! failed one; its members (role, enabled, last contribution, whether they
//! fetched the latest result) with adding, disabling, enabling, re-keying
//! and removing; and its webhook's recent attempts. The pool page follows
//! the pool's event stream (a small script) and refreshes itself as
//! things happen. Every action is the service layer's, as in the JSON API.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::browser::in_query;
use super::pages::{Chrome, render};
use super::session::{ConsoleError, CsrfForm, Visitor, done, failed, refused};
use super::words;
use crate::core::pools::rfc3339;
use crate::model::{GroupRecord, GroupState, MemberRecord, MemberRole, PoolRecord};
use crate::web::WebState;

pub struct PoolRow {
    name: String,
    window: String,
    members: i64,
    states: String,
    latest: String,
}

#[derive(Template)]
#[template(path = "console/pools.html")]
struct PoolsPage {
    chrome: Chrome,
    pools: Vec<PoolRow>,
}

pub struct GroupRow {
    start: String,
    id: String,
    state: &'static str,
    files: i64,
    bytes: String,
    lease: String,
    result: String,
    can_seal: bool,
    can_reopen: bool,
}

pub struct MemberRow {
    name: String,
    role: String,
    enabled: bool,
    contributions: i64,
    last: String,
    fetched: String,
}

pub struct AttemptRow {
    time: String,
    event: i64,
    attempt: i64,
    outcome: String,
    /// When the event is tried again, on the newest attempt only.
    next: String,
}

#[derive(Template)]
#[template(path = "console/pool.html")]
struct PoolPage {
    chrome: Chrome,
    name: String,
    window: String,
    bucket: String,
    groups: Vec<GroupRow>,
    members: Vec<MemberRow>,
    webhook: Option<String>,
    attempts: Vec<AttemptRow>,
    latest: String,
    tokens: Vec<(String, String)>,
    /// The page's notifications stream starts after this event (the
    /// newest of any pool when the page was made).
    latest_event: i64,
    /// This page's own address, which its script fetches again.
    page_url: String,
    member_count: i64,
    /// The part of a name the members listed contain.
    member_filter: String,
    /// Whether this is a later page of members.
    paged: bool,
    /// The link to the next page of members.
    next_members: Option<String>,
}

/// Members listed on one page of the pool page.
const MEMBERS_PER_PAGE: usize = 100;

fn window_words(pool: &PoolRecord) -> String {
    let secs = pool.window_secs;
    match secs {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s if s % 60 == 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} seconds"),
    }
}

/// The start of the group a form or address names by its RFC 3339 id.
pub(super) fn group_start(id: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(id)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn state_counts(groups: &[GroupRecord]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for g in groups {
        *counts.entry(g.state.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn latest_published(groups: &[GroupRecord]) -> Option<&GroupRecord> {
    groups
        .iter()
        .filter(|g| g.state == GroupState::Published)
        .max_by_key(|g| g.start_ms)
}

/// `GET /ui/pools`.
pub async fn list(
    State(state): State<WebState>,
    visitor: Visitor,
) -> Result<Response, ConsoleError> {
    let mut pools = Vec::new();
    for pool in state.store.visible_pools(&visitor.principal).await? {
        let groups = state.store.pool_groups(&pool, None).await?;
        let members = state.store.member_count(&pool).await?;
        pools.push(PoolRow {
            window: window_words(&pool),
            members,
            states: state_counts(&groups),
            latest: latest_published(&groups)
                .map(|g| words::time(g.start_ms))
                .unwrap_or_else(|| "none yet".to_owned()),
            name: pool.name,
        });
    }
    Ok(render(PoolsPage {
        chrome: Chrome::for_visitor(&visitor, "Pools", "pools"),
        pools,
    }))
}

/// Which members the pool page lists: names containing `member`, a page
/// of them after the name `after`.
#[derive(Deserialize, Default)]
pub struct MemberQuery {
    #[serde(default)]
    member: String,
    #[serde(default)]
    after: String,
}

/// The pool page listing the members whose names contain `member`, after
/// the name `after`.
fn page_url(pool: &PoolRecord, member: &str, after: &str) -> String {
    if member.is_empty() && after.is_empty() {
        return format!("/ui/pools/{}", pool.name);
    }
    format!(
        "/ui/pools/{}?member={}&after={}",
        pool.name,
        in_query(member),
        in_query(after)
    )
}

/// `GET /ui/pools/{pool}`.
pub async fn show(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(name): Path<String>,
    Query(query): Query<MemberQuery>,
) -> Result<Response, ConsoleError> {
    pool_page(&state, &visitor, &name, Vec::new(), query).await
}

async fn pool_page(
    state: &WebState,
    visitor: &Visitor,
    name: &str,
    tokens: Vec<(String, String)>,
    query: MemberQuery,
) -> Result<Response, ConsoleError> {
    let pool = state.store.owned_pool(&visitor.principal, name).await?;
    // Read first: an event written while the page is made is then sent on
    // the page's stream, not lost between the two.
    let latest_event = state.store.last_pool_event_id().await?;
    let mut groups = state.store.pool_groups(&pool, None).await?;
    groups.sort_by_key(|g| std::cmp::Reverse(g.start_ms));
    let listing = state
        .store
        .member_listing(&pool, &query.member, &query.after, MEMBERS_PER_PAGE)
        .await?;
    let member_count = state.store.member_count(&pool).await?;
    let listed: Vec<String> = listing
        .members
        .iter()
        .map(|a| a.member.id.clone())
        .collect();
    let fetchers = state.store.latest_fetchers(&pool, &listed).await?;
    let attempts = state.store.webhook_attempts(&pool, 20).await?;
    let now = crate::core::now_ms();
    let group_rows = groups
        .iter()
        .take(100)
        .map(|g| GroupRow {
            start: words::time(g.start_ms),
            id: rfc3339(g.start_ms),
            state: g.state.as_str(),
            files: g.files,
            bytes: words::size(g.bytes),
            lease: match g.lease_expires_ms {
                Some(until) if g.state == GroupState::Processing && until > now => {
                    format!("held until {}", words::time(until))
                }
                _ => String::new(),
            },
            result: g.result_size.map(words::size).unwrap_or_default(),
            can_seal: g.state == GroupState::Open,
            can_reopen: g.state == GroupState::Failed,
        })
        .collect();
    // Processors make results; they are not among those who fetch them.
    let fetched = |m: &MemberRecord| match &fetchers {
        _ if m.role == MemberRole::Processor => String::new(),
        Some((_, ids)) if ids.contains(&m.id) => "fetched".to_owned(),
        Some(_) => "not yet".to_owned(),
        None => String::new(),
    };
    let next_members = listing
        .more
        .then(|| listing.members.last())
        .flatten()
        .map(|last| page_url(&pool, &query.member, &last.member.name));
    let member_rows = listing
        .members
        .iter()
        .map(|a| MemberRow {
            name: a.member.name.clone(),
            role: a.member.role.to_string(),
            enabled: a.member.disabled_ms.is_none(),
            contributions: a.files,
            last: a.last_ms.map(words::time).unwrap_or_default(),
            fetched: fetched(&a.member),
        })
        .collect();
    // Newest first, as the store gives them; only the newest attempt's
    // next try is still to come.
    let attempt_rows = attempts
        .iter()
        .take(20)
        .enumerate()
        .map(|(i, a)| AttemptRow {
            next: match a.next_try_ms {
                Some(when) if i == 0 => words::time(when),
                _ => String::new(),
            },
            time: words::time(a.time_ms),
            event: a.event_id,
            attempt: a.attempt,
            outcome: match (a.delivered, a.status, &a.error) {
                (true, Some(status), _) => format!("delivered ({status})"),
                (_, Some(status), _) => format!("refused ({status})"),
                (_, None, Some(error)) => format!("failed: {error}"),
                _ => "failed".to_owned(),
            },
        })
        .collect();
    Ok(render(PoolPage {
        chrome: Chrome::for_visitor(visitor, format!("Pool {}", pool.name), "pools"),
        window: window_words(&pool),
        bucket: pool.bucket.clone(),
        groups: group_rows,
        members: member_rows,
        webhook: pool.webhook_url.clone(),
        attempts: attempt_rows,
        latest: latest_published(&groups)
            .map(|g| words::time(g.start_ms))
            .unwrap_or_else(|| "none yet".to_owned()),
        tokens,
        latest_event,
        page_url: page_url(&pool, &query.member, &query.after),
        member_count,
        member_filter: query.member,
        paged: !query.after.is_empty(),
        next_members,
        name: pool.name,
    }))
}

/// `POST /ui/pools/{pool}/groups`: `action` = `seal` or `reopen` the
/// group starting at `group` (RFC 3339).
pub async fn group_action(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(name): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let back = format!("/ui/pools/{name}");
    let pool = state.store.owned_pool(&visitor.principal, &name).await?;
    let Some(start_ms) = group_start(fields.text("group")) else {
        return Ok(failed(&back, "That group does not exist."));
    };
    let outcome = match fields.text("action") {
        "seal" => state.store.seal_group(&pool, start_ms).await,
        "reopen" => state.store.reopen_group(&pool, start_ms).await,
        _ => return Ok(failed(&back, "Choose to seal or to reopen a group.")),
    };
    Ok(match outcome {
        Ok(()) => done(
            &back,
            format!(
                "The group of {} is {}ed.",
                words::time(start_ms),
                fields.text("action")
            ),
        ),
        Err(e) => refused(&back, e),
    })
}

/// `POST /ui/pools/{pool}/members`: add members, one name per line, with
/// a role; their tokens are shown this once (and as CSV with `csv`).
pub async fn add_members(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(name): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let back = format!("/ui/pools/{name}");
    let pool = state.store.owned_pool(&visitor.principal, &name).await?;
    let role = fields.text("role").to_owned();
    let wanted: Vec<(String, String)> = fields
        .text("names")
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| (n.to_owned(), role.clone()))
        .collect();
    if wanted.is_empty() {
        return Ok(failed(
            &back,
            "Give at least one member name, one per line.",
        ));
    }
    let added = match state.store.add_members(&pool, wanted).await {
        Ok(added) => added,
        Err(e) => return Ok(refused(&back, e)),
    };
    let tokens: Vec<(String, String)> = added.into_iter().map(|(m, t)| (m.name, t)).collect();
    if !fields.text("csv").is_empty() {
        let mut csv = String::from("name,token\n");
        for (member, token) in &tokens {
            csv.push_str(&format!("{member},{token}\n"));
        }
        let disposition = format!("attachment; filename=\"{name}-members.csv\"");
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&disposition)
                        .unwrap_or(HeaderValue::from_static("attachment")),
                ),
            ],
            csv,
        )
            .into_response());
    }
    pool_page(&state, &visitor, &name, tokens, MemberQuery::default()).await
}

/// `POST /ui/pools/{pool}/members/{member}`: `action` = `disable`,
/// `enable`, `rekey` (the new token is shown once) or `remove`.
pub async fn member_action(
    State(state): State<WebState>,
    visitor: Visitor,
    Path((name, member)): Path<(String, String)>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let back = format!("/ui/pools/{name}");
    let pool = state.store.owned_pool(&visitor.principal, &name).await?;
    let outcome = match fields.text("action") {
        "disable" => state.store.set_member_disabled(&pool, &member, true).await,
        "enable" => state.store.set_member_disabled(&pool, &member, false).await,
        "remove" => state.store.remove_member(&pool, &member).await,
        "rekey" => match state.store.rekey_member(&pool, &member).await {
            Ok(token) => {
                let tokens = vec![(member, token)];
                return pool_page(&state, &visitor, &name, tokens, MemberQuery::default()).await;
            }
            Err(e) => Err(e),
        },
        _ => return Ok(failed(&back, "Choose what to do with the member.")),
    };
    Ok(match outcome {
        Ok(()) => done(&back, format!("{member}: {}d.", fields.text("action"))),
        Err(e) => refused(&back, e),
    })
}
