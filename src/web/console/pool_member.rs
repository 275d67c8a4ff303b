//! A pool member's own page. A member has no account: it signs in at
//! `/ui/member` with its member token, which an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/ui/member` then carries (checked
//! on every request, so disabling, removing or re-keying the member ends
//! it at once). The page shows the member's files with their receipts
//! (id, SHA-256, size, detected type, group), its refused files with the
//! reasons, and the latest result, downloaded through the same call as
//! the JSON API's, which notes the fetch. The pool's owner sees the same
//! page for any member at `/ui/pools/{pool}/members/{member}`.

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::browser::{in_query, raw_url};
use super::pages::{Chrome, render};
use super::session::{ConsoleError, Flash, Visitor, read_form, redirect};
use super::words;
use crate::core::CoreError;
use crate::core::pool_access::{MemberOverview, MemberSession};
use crate::core::pools::rfc3339;
use crate::model::{MemberRecord, PoolRecord};
use crate::web::api::ApiActor;
use crate::web::api::pools::{PoolCaller, result_response};
use crate::web::{WebState, cookie};

/// The cookie that carries a member's token, only to its own pages.
const MEMBER_COOKIE: &str = "cistern_member";
const MEMBER_PATH: &str = "/ui/member";
/// How long the cookie lasts; the token itself does not expire.
const MEMBER_COOKIE_SECS: u64 = 7 * 24 * 3600;
/// Files on one page.
const FILES_PER_PAGE: i64 = 100;

#[derive(Template)]
#[template(path = "console/member_sign_in.html")]
struct MemberSignInPage {
    chrome: Chrome,
}

pub struct ReceiptRow {
    id: String,
    name: String,
    size: String,
    content_type: String,
    taken: String,
    received: String,
    /// The group's id (for links) and its start in words.
    group: String,
    group_words: String,
    sha256: String,
}

pub struct RefusalRow {
    time: String,
    name: String,
    reason: String,
}

pub struct LatestResult {
    group: String,
    size: String,
    download: String,
}

#[derive(Template)]
#[template(path = "console/member.html")]
struct MemberPage {
    chrome: Chrome,
    pool: String,
    member: String,
    role: String,
    enabled: bool,
    /// The owner looking as the member, not the member itself.
    owner_view: bool,
    latest: Option<LatestResult>,
    fetched_latest: bool,
    receipts: Vec<ReceiptRow>,
    /// The link to the next older page of files.
    older: Option<String>,
    refusals: Vec<RefusalRow>,
}

fn chrome(title: String, csrf: String, flash: Option<Flash>) -> Chrome {
    Chrome {
        title,
        user: None,
        is_admin: false,
        csrf,
        flash,
        section: "",
    }
}

fn member_cookie(token: &str, max_age: u64, secure: bool) -> header::HeaderValue {
    cookie::set_cookie_at(MEMBER_COOKIE, token, MEMBER_PATH, max_age, secure)
}

/// The member signed in on this browser, if its token still works (a
/// database that cannot answer is an error, not a sign-out).
async fn signed_in_member(
    state: &WebState,
    headers: &HeaderMap,
) -> Result<Option<(MemberSession, String)>, ConsoleError> {
    let Some(token) = cookie::cookie(headers, MEMBER_COOKIE) else {
        return Ok(None);
    };
    match state.store.member_session(token).await {
        Ok(session) => Ok(Some((session, token.to_owned()))),
        Err(e) if token_refused(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The token names no member, or a disabled one.
fn token_refused(error: &CoreError) -> bool {
    matches!(error, CoreError::BadSession | CoreError::AccountDisabled(_))
}

/// Names the member in the request's audit record, billed to the pool's
/// owner as the JSON API does.
fn audit_as(parts: &Parts, session: &MemberSession) {
    ApiActor::set_member(
        parts,
        format!("{}/{}", session.pool.name, session.member.name),
        &session.pool.owner_id,
        &session.pool.bucket,
    );
}

#[derive(Deserialize)]
pub struct PageQuery {
    before: Option<String>,
}

fn member_page(
    pool: &PoolRecord,
    member: &MemberRecord,
    overview: MemberOverview,
    owner_view: bool,
    chrome: Chrome,
    base: &str,
) -> Response {
    let receipts = overview
        .contributions
        .into_iter()
        .map(|c| ReceiptRow {
            size: words::size(c.size),
            taken: words::time(c.client_time_ms),
            received: words::time(c.created_ms),
            group: rfc3339(c.group_start_ms),
            group_words: words::time(c.group_start_ms),
            id: c.id,
            name: c.name,
            content_type: c.content_type,
            sha256: c.sha256,
        })
        .collect();
    let refusals = overview
        .refusals
        .into_iter()
        .map(|event| {
            let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
            let text = |field: &str| data[field].as_str().unwrap_or_default().to_owned();
            RefusalRow {
                time: words::time(event.time_ms),
                name: text("name"),
                reason: text("message"),
            }
        })
        .collect();
    let latest = overview.latest.map(|group| LatestResult {
        group: words::time(group.start_ms),
        size: group.result_size.map(words::size).unwrap_or_default(),
        download: if owner_view {
            raw_url(
                &pool.bucket,
                group.result_key.as_deref().unwrap_or_default(),
            )
        } else {
            format!("{MEMBER_PATH}/result")
        },
    });
    render(MemberPage {
        chrome,
        pool: pool.name.clone(),
        member: member.name.clone(),
        role: member.role.to_string(),
        enabled: member.disabled_ms.is_none(),
        owner_view,
        latest,
        fetched_latest: overview.fetched_latest,
        receipts,
        older: overview
            .older
            .map(|id| format!("{base}?before={}", in_query(&id))),
        refusals,
    })
}

/// `GET /ui/member`: the signed-in member's page, or the form to sign in
/// with a member token.
pub async fn home(
    State(state): State<WebState>,
    parts: Parts,
    Query(query): Query<PageQuery>,
) -> Result<Response, ConsoleError> {
    let flash = Flash::from_headers(&parts.headers);
    let Some((session, token)) = signed_in_member(&state, &parts.headers).await? else {
        let mut response = render(MemberSignInPage {
            chrome: chrome("Sign in as a pool member".into(), String::new(), flash),
        });
        if cookie::cookie(&parts.headers, MEMBER_COOKIE).is_some() {
            // A token that stopped working: forget it.
            let secure = cookie::wants_secure(&parts.headers, state.api.public_url.as_deref());
            response
                .headers_mut()
                .append(header::SET_COOKIE, member_cookie("", 0, secure));
        }
        return Ok(response);
    };
    audit_as(&parts, &session);
    let MemberSession { pool, member, .. } = &session;
    let overview = state
        .store
        .member_overview(pool, member, query.before.as_deref(), FILES_PER_PAGE)
        .await?;
    let title = format!("{} in pool {}", member.name, pool.name);
    Ok(member_page(
        pool,
        member,
        overview,
        false,
        chrome(title, cookie::csrf_token(&token), flash),
        MEMBER_PATH,
    ))
}

/// `POST /ui/member/sign-in`: the member token in `token`.
pub async fn sign_in(State(state): State<WebState>, parts: Parts, request: Request) -> Response {
    let fields = match read_form(request).await {
        Ok(fields) => fields,
        Err(e) => return e.into_response(),
    };
    let token = fields.text("token").trim().to_owned();
    match state.store.member_session(&token).await {
        Ok(session) => {
            audit_as(&parts, &session);
            let secure = cookie::wants_secure(&parts.headers, state.api.public_url.as_deref());
            let mut response = redirect(MEMBER_PATH, None);
            response.headers_mut().append(
                header::SET_COOKIE,
                member_cookie(&token, MEMBER_COOKIE_SECS, secure),
            );
            response
        }
        Err(e) if !token_refused(&e) => ConsoleError::from(e).into_response(),
        Err(_) => {
            let mut response = render(MemberSignInPage {
                chrome: chrome(
                    "Sign in as a pool member".into(),
                    String::new(),
                    Some(Flash {
                        ok: false,
                        message: "That member token does not work: it may be mistyped, \
                                  or the member was disabled, removed or given a new token."
                            .into(),
                    }),
                ),
            });
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

/// `POST /ui/member/sign-out`: forgets the token on this browser.
pub async fn sign_out(State(state): State<WebState>, parts: Parts, request: Request) -> Response {
    let fields = match read_form(request).await {
        Ok(fields) => fields,
        Err(e) => return e.into_response(),
    };
    let token = cookie::cookie(&parts.headers, MEMBER_COOKIE).unwrap_or_default();
    if token.is_empty() || !cookie::csrf_matches(token, fields.raw("csrf")) {
        return ConsoleError::csrf().into_response();
    }
    if let Ok(session) = state.store.member_session(token).await {
        audit_as(&parts, &session);
    }
    let secure = cookie::wants_secure(&parts.headers, state.api.public_url.as_deref());
    let mut response = redirect(
        MEMBER_PATH,
        Some(Flash {
            ok: true,
            message: "Signed out.".into(),
        }),
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, member_cookie("", 0, secure));
    response
}

/// `GET /ui/member/result`: the latest result, noted as fetched.
pub async fn latest_result(
    State(state): State<WebState>,
    parts: Parts,
) -> Result<Response, ConsoleError> {
    let Some((session, _)) = signed_in_member(&state, &parts.headers).await? else {
        return Ok(redirect(MEMBER_PATH, None));
    };
    audit_as(&parts, &session);
    let pool = session.pool.name.clone();

    let mut response = result_response(
        &state,
        PoolCaller::signed_in_member(session),
        &pool,
        None,
        &parts.headers,
    )
    .await
    .map_err(|e| ConsoleError::status(e.status, e.message))?;
    if let Ok(value) =
        header::HeaderValue::from_str(&format!("attachment; filename=\"{pool}-latest-result\""))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `GET /ui/pools/{pool}/members/{member}`: the owner looking as a
/// member.
pub async fn as_owner(
    State(state): State<WebState>,
    visitor: Visitor,
    Path((name, member)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ConsoleError> {
    let pool = state.store.owned_pool(&visitor.principal, &name).await?;
    let member = state.store.pool_member_named(&pool, &member).await?;
    let overview = state
        .store
        .member_overview(&pool, &member, query.before.as_deref(), FILES_PER_PAGE)
        .await?;
    let base = format!("/ui/pools/{}/members/{}", pool.name, member.name);
    let chrome = Chrome::for_visitor(
        &visitor,
        format!("{} in pool {}", member.name, pool.name),
        "pools",
    );
    Ok(member_page(&pool, &member, overview, true, chrome, &base))
}
