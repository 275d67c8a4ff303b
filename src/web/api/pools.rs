//! `/api/v1/pools` and `/api/v1/events`: pools and their members (for the
//! owner), contributions (from members, with a receipt per file), groups,
//! and the event stream as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Multipart, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::{ApiActor, Caller, JsonBody, QueryArgs};
use crate::core::CoreError;
use crate::core::pool_access::{PoolAccess, PoolActor, PoolIntent, PublishedResult};
use crate::core::pools::{MEMBER_TOKEN_PREFIX, PoolSpec, Receipt};
use crate::model::ByteStream;
use crate::model::{ContributionRecord, GroupRecord, PoolEvent, PoolRecord, RefusalReason};
use crate::web::WebState;

/// Who is calling a pool route: a member (by its token) or a user.
pub struct PoolCaller(PoolActor);

impl FromRequestParts<WebState> for PoolCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(MEMBER_TOKEN_PREFIX));
        match token {
            Some(token) => {
                let session = state.store.member_session(token).await?;
                let name = format!("{}/{}", session.pool.name, session.member.name);
                ApiActor::set_member(parts, name, &session.pool.owner_id, &session.pool.bucket);
                Ok(Self(PoolActor::Member(Box::new(session))))
            }
            None => Ok(Self(PoolActor::User(
                Caller::from_request_parts(parts, state).await?.0,
            ))),
        }
    }
}

impl PoolCaller {
    /// The pool named in the path, if the caller may act on it this way.
    async fn access(
        self,
        state: &WebState,
        pool: &str,
        intent: PoolIntent,
    ) -> ApiResult<PoolAccess> {
        Ok(state.store.pool_access(self.0, pool, intent).await?)
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn parse_time(field: &str, text: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| ApiError::bad_field(field, format!("not an RFC 3339 time ({e})")))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PoolView {
    pub name: String,
    /// The bucket holding the pool's files, readable with any S3 tool.
    pub bucket: String,
    pub window_secs: i64,
    pub grace_secs: i64,
    pub max_file_size: i64,
    pub allowed_types: Vec<String>,
    pub forbidden_types: Vec<String>,
    pub allow_empty: bool,
    pub retention_days: i64,
    pub webhook_url: Option<String>,
    pub created_ms: i64,
}

impl From<PoolRecord> for PoolView {
    fn from(p: PoolRecord) -> Self {
        Self {
            name: p.name,
            bucket: p.bucket,
            window_secs: p.window_secs,
            grace_secs: p.grace_secs,
            max_file_size: p.max_file_size,
            allowed_types: p.allowed_types,
            forbidden_types: p.forbidden_types,
            allow_empty: p.allow_empty,
            retention_days: p.retention_days,
            webhook_url: p.webhook_url,
            created_ms: p.created_ms,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPool {
    /// 1 to 56 of a-z, 0-9 and '-'.
    pub name: String,
    /// 60 (1 minute) to 2592000 (30 days).
    pub window_secs: i64,
    /// Late files are accepted this long after a window ends; default a
    /// quarter of the window, at most 3600.
    pub grace_secs: Option<i64>,
    /// Default 64 MiB.
    pub max_file_size: Option<i64>,
    /// Detected types accepted (`image/*` for a family); default any.
    #[serde(default)]
    pub allowed_types: Vec<String>,
    /// Detected types refused; default executables and scripts.
    pub forbidden_types: Option<Vec<String>>,
    #[serde(default)]
    pub allow_empty: bool,
    /// Default 30.
    pub retention_days: Option<i64>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/pools", tag = "pools", request_body = NewPool, responses((status = 201, description = "Created, with a bucket of its own", body = PoolView)))]
pub async fn create(
    State(state): State<WebState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewPool>,
) -> ApiResult<(StatusCode, Json<PoolView>)> {
    let pool = state
        .store
        .create_pool(
            &who,
            PoolSpec {
                name: body.name,
                window_secs: body.window_secs,
                grace_secs: body.grace_secs,
                max_file_size: body.max_file_size,
                allowed_types: body.allowed_types,
                forbidden_types: body.forbidden_types,
                allow_empty: body.allow_empty,
                retention_days: body.retention_days,
                webhook_url: body.webhook_url,
                webhook_secret: body.webhook_secret,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(pool.into())))
}

#[utoipa::path(get, path = "/api/v1/pools", tag = "pools", responses((status = 200, description = "The caller's pools (admins: all)", body = Vec<PoolView>)))]
pub async fn list(
    State(state): State<WebState>,
    Caller(who): Caller,
) -> ApiResult<Json<Vec<PoolView>>> {
    let pools = state.store.visible_pools(&who).await?;
    Ok(Json(pools.into_iter().map(PoolView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky")), responses((status = 200, description = "The pool (owner, admins and its members)", body = PoolView)))]
pub async fn show(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
) -> ApiResult<Json<PoolView>> {
    let access = caller.access(&state, &pool, PoolIntent::View).await?;
    let mut view = PoolView::from(access.pool);
    if access.member.is_some() {
        // The URL may carry a secret; members have no use for it.
        view.webhook_url = None;
    }
    Ok(Json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMembers {
    /// One member by name; or give `count` and `prefix` instead.
    pub name: Option<String>,
    /// `contributor`, `listener` or `processor`.
    pub role: String,
    /// Members `<prefix>1` to `<prefix><count>` (at most 10000).
    pub count: Option<usize>,
    pub prefix: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberToken {
    pub name: String,
    pub role: String,
    /// Shown only in this answer; send as `Authorization: Bearer <token>`.
    pub token: String,
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenFormat {
    /// `json` (default) or `csv` (name,role,token).
    pub format: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/pools/{pool}/members", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), TokenFormat), request_body = NewMembers, responses((status = 201, description = "The new members with their tokens", body = Vec<MemberToken>)))]
pub async fn add_members(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
    QueryArgs(format): QueryArgs<TokenFormat>,
    JsonBody(body): JsonBody<NewMembers>,
) -> ApiResult<Response> {
    let pool = caller.access(&state, &pool, PoolIntent::Manage).await?.pool;
    let names: Vec<String> = match (body.name, body.count, body.prefix) {
        (Some(name), None, None) => vec![name],
        (None, Some(count), Some(prefix)) => {
            if !(1..=10_000).contains(&count) {
                return Err(ApiError::bad_field("count", "1 to 10000"));
            }
            let width = count.to_string().len();
            (1..=count)
                .map(|i| format!("{prefix}{i:0width$}"))
                .collect()
        }
        _ => {
            return Err(ApiError::bad_field(
                "name",
                "give either a name, or a count and a prefix",
            ));
        }
    };
    let created = state
        .store
        .add_members(
            &pool,
            names.into_iter().map(|n| (n, body.role.clone())).collect(),
        )
        .await?;
    let tokens: Vec<MemberToken> = created
        .into_iter()
        .map(|(m, token)| MemberToken {
            name: m.name,
            role: m.role.to_string(),
            token,
        })
        .collect();
    match format.format.as_deref() {
        None | Some("json") => Ok((StatusCode::CREATED, Json(tokens)).into_response()),
        Some("csv") => {
            let mut csv = String::from("name,role,token\n");
            for t in &tokens {
                csv.push_str(&format!("{},{},{}\n", t.name, t.role, t.token));
            }
            Ok((
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                csv,
            )
                .into_response())
        }
        Some(other) => Err(ApiError::bad_field(
            "format",
            format!("'json' or 'csv', not {other:?}"),
        )),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub name: String,
    pub role: String,
    pub created_ms: i64,
    pub disabled: bool,
    pub contributions: i64,
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/members", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky")), responses((status = 200, description = "Members with their contribution counts (owner)", body = Vec<MemberView>)))]
pub async fn members(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
) -> ApiResult<Json<Vec<MemberView>>> {
    let pool = caller.access(&state, &pool, PoolIntent::Manage).await?.pool;
    let members = state.store.members_with_counts(&pool).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|(m, contributions)| MemberView {
                contributions,
                name: m.name,
                role: m.role.to_string(),
                created_ms: m.created_ms,
                disabled: m.disabled_ms.is_some(),
            })
            .collect(),
    ))
}

/// `disable`, `enable`, `rekey` on one member.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/members/{member}/{action}", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("member" = String, Path, description = "Member name", example = "cam-1"), ("action" = String, Path, description = "disable, enable or rekey")), responses((status = 200, description = "rekey: the new token (the old one stops working)", body = MemberToken), (status = 204, description = "disable, enable: done")))]
pub async fn member_action(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, member, action)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let pool = caller.access(&state, &pool, PoolIntent::Manage).await?.pool;
    match action.as_str() {
        "disable" | "enable" => {
            state
                .store
                .set_member_disabled(&pool, &member, action == "disable")
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        "rekey" => {
            let token = state.store.rekey_member(&pool, &member).await?;
            let role = state
                .store
                .pool_member(&token)
                .await
                .map(|(m, _)| m.role.to_string())
                .unwrap_or_default();
            Ok(Json(MemberToken {
                name: member,
                role,
                token,
            })
            .into_response())
        }
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no member action {other:?} (disable, enable, rekey)"),
        )),
    }
}

#[utoipa::path(delete, path = "/api/v1/pools/{pool}/members/{member}", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("member" = String, Path, description = "Member name", example = "cam-1")), responses((status = 204, description = "Removed; its contributions stay")))]
pub async fn remove_member(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let pool = caller.access(&state, &pool, PoolIntent::Manage).await?.pool;
    state.store.remove_member(&pool, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What happened to one file.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReceiptView {
    /// The file name the client gave.
    pub name: String,
    /// `accepted`, `duplicate` or `refused`.
    pub status: String,
    pub contribution: Option<ContributionView>,
    /// When refused: `sealed`, `in_future`, `too_large`, `empty`,
    /// `forbidden_type`, `bad_name`, `bad_timestamp`, `quota_exceeded`.
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContributionView {
    pub id: String,
    pub member: String,
    pub name: String,
    /// The client's timestamp.
    pub timestamp: String,
    /// The group (its window's start).
    pub group: String,
    pub size: i64,
    pub sha256: String,
    /// Detected from the bytes.
    pub content_type: String,
    /// The object in the pool's bucket.
    pub key: String,
}

fn contribution_view(c: ContributionRecord, member: &str) -> ContributionView {
    ContributionView {
        id: c.id,
        member: member.to_owned(),
        name: c.name,
        timestamp: rfc3339(c.client_time_ms),
        group: rfc3339(c.group_start_ms),
        size: c.size,
        sha256: c.sha256,
        content_type: c.content_type,
        key: c.object_key,
    }
}

fn receipt_view(name: String, receipt: Receipt, member: &str) -> ReceiptView {
    let (status, contribution, reason, message) = match receipt {
        Receipt::Accepted(c) => ("accepted", Some(contribution_view(c, member)), None, None),
        Receipt::Duplicate(c) => ("duplicate", Some(contribution_view(c, member)), None, None),
        Receipt::Refused { code, message } => {
            ("refused", None, Some(code.to_string()), Some(message))
        }
    };
    ReceiptView {
        name,
        status: status.to_owned(),
        contribution,
        reason,
        message,
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Receipts {
    pub receipts: Vec<ReceiptView>,
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RawContribution {
    /// The file name, for a raw-body upload.
    pub name: Option<String>,
    /// RFC 3339, for a raw-body upload.
    pub timestamp: Option<String>,
}

/// The form `POST .../contributions` takes (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ContributionForm {
    /// RFC 3339; applies to the `file` fields after it.
    timestamp: String,
    /// A file; repeat `timestamp` and `file` for a batch.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[utoipa::path(post, path = "/api/v1/pools/{pool}/contributions", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), RawContribution), request_body(content = ContributionForm, content_type = "multipart/form-data", description = "Or a raw body with ?name=&timestamp="), responses((status = 200, description = "A receipt per file, in order", body = Receipts)))]
pub async fn contribute(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
    QueryArgs(raw): QueryArgs<RawContribution>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> ApiResult<Json<Receipts>> {
    let (pool, member) = caller
        .access(&state, &pool, PoolIntent::Contribute)
        .await?
        .into_member()?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut receipts = Vec::new();
    if !is_form {
        let name = raw
            .name
            .ok_or_else(|| ApiError::bad_field("name", "required for a raw-body upload"))?;
        let timestamp = raw
            .timestamp
            .ok_or_else(|| ApiError::bad_field("timestamp", "required for a raw-body upload"))?;
        let time_ms = parse_time("timestamp", &timestamp)?;
        let stream: ByteStream = Box::pin(
            request
                .into_body()
                .into_data_stream()
                .map(|r| r.map_err(std::io::Error::other)),
        );
        let receipt = state
            .store
            .contribute(&pool, &member, &name, time_ms, stream)
            .await?;
        receipts.push(receipt_view(name, receipt, &member.name));
        return Ok(Json(Receipts { receipts }));
    }
    use axum::extract::FromRequest;
    let form: Result<Multipart, MultipartRejection> =
        Multipart::from_request(request, &state).await;
    let mut form = form.map_err(|e| ApiError::bad_field("form", e.body_text()))?;
    let bad_form =
        |e: axum::extract::multipart::MultipartError| ApiError::bad_field("form", e.body_text());
    let mut timestamp: Option<String> = None;
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        match field.name().unwrap_or_default() {
            "timestamp" => timestamp = Some(field.text().await.map_err(bad_form)?),
            "file" => {
                let name = field.file_name().unwrap_or_default().to_owned();
                let time_ms = match timestamp.as_deref().map(|t| parse_time("timestamp", t)) {
                    Some(Ok(ms)) => ms,
                    other => {
                        // Drain the field so the next one can be read.
                        while let Ok(Some(_)) = field.chunk().await {}
                        let message = match other {
                            Some(Err(e)) => e.message,
                            _ => "no timestamp field before this file".into(),
                        };
                        state
                            .store
                            .record_refusal(
                                &pool,
                                &member,
                                &name,
                                None,
                                RefusalReason::BadTimestamp,
                                &message,
                            )
                            .await?;
                        receipts.push(receipt_view(
                            name,
                            Receipt::Refused {
                                code: RefusalReason::BadTimestamp,
                                message,
                            },
                            &member.name,
                        ));
                        continue;
                    }
                };
                // The field borrows the form: feed the store through a
                // channel while both run side by side.
                let (feed, mut chunks) =
                    tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
                let stream: ByteStream =
                    Box::pin(futures::stream::poll_fn(move |cx| chunks.poll_recv(cx)));
                let stored = state
                    .store
                    .contribute(&pool, &member, &name, time_ms, stream);
                let pump = async {
                    loop {
                        match field.chunk().await {
                            Ok(Some(chunk)) => {
                                if feed.send(Ok(chunk)).await.is_err() {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                let _ = feed.send(Err(std::io::Error::other(e.body_text()))).await;
                                return Err(e);
                            }
                        }
                    }
                    drop(feed);
                    // A refused file may stop reading early; skip the rest.
                    while let Ok(Some(_)) = field.chunk().await {}
                    Ok(())
                };
                let (receipt, pumped) = tokio::join!(stored, pump);
                pumped.map_err(bad_form)?;
                receipts.push(receipt_view(name, receipt?, &member.name));
            }
            other => {
                return Err(ApiError::bad_field(
                    other,
                    "unknown form field (use timestamp, file)",
                ));
            }
        }
    }
    if receipts.is_empty() {
        return Err(ApiError::bad_field("file", "the form has no file field"));
    }
    Ok(Json(Receipts { receipts }))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContributionQuery {
    /// A group (RFC 3339 start of its window).
    pub group: Option<String>,
    /// Owner only: one member's.
    pub member: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContributionPage {
    pub contributions: Vec<ContributionView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/contributions", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ContributionQuery), responses((status = 200, description = "Members see their own; the owner everyone's", body = ContributionPage)))]
pub async fn contributions(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
    QueryArgs(query): QueryArgs<ContributionQuery>,
) -> ApiResult<Json<ContributionPage>> {
    let access = caller.access(&state, &pool, PoolIntent::View).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_field("limit", "1 to 1000"));
    }
    let scope = state
        .store
        .contribution_scope(&access, query.member.as_deref())
        .await?;
    let group_start_ms = query
        .group
        .as_deref()
        .map(|g| parse_time("group", g))
        .transpose()?;
    let page = state
        .store
        .contribution_page(&scope, group_start_ms, query.cursor, limit)
        .await?;
    let next_cursor = (page.len() as i64 == limit)
        .then(|| page.last().map(|(c, _)| c.id.clone()))
        .flatten();
    Ok(Json(ContributionPage {
        next_cursor,
        contributions: page
            .into_iter()
            .map(|(c, member)| contribution_view(c, &member))
            .collect(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupView {
    /// The start of the window, which names the group.
    pub group: String,
    pub end: String,
    /// When it seals (or sealed) on its own: the end plus the grace period.
    pub seals_at: String,
    /// `open`, `sealed`, `processing`, `published` or `failed`.
    pub state: String,
    pub files: i64,
    pub bytes: i64,
    pub attempts: i64,
}

impl From<GroupRecord> for GroupView {
    fn from(g: GroupRecord) -> Self {
        Self {
            group: rfc3339(g.start_ms),
            end: rfc3339(g.end_ms),
            seals_at: rfc3339(g.seal_at_ms),
            state: g.state.to_string(),
            files: g.files,
            bytes: g.bytes,
            attempts: g.attempts,
        }
    }
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GroupQuery {
    /// Only groups in this state.
    pub state: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/groups", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), GroupQuery), responses((status = 200, description = "Groups, newest window first (at most 1000)", body = Vec<GroupView>)))]
pub async fn groups(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
    QueryArgs(query): QueryArgs<GroupQuery>,
) -> ApiResult<Json<Vec<GroupView>>> {
    let pool = caller.access(&state, &pool, PoolIntent::View).await?.pool;
    let groups = state
        .store
        .pool_groups(&pool, query.state.as_deref())
        .await?;
    Ok(Json(groups.into_iter().map(GroupView::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/pools/{pool}/groups/{group}/seal", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), responses((status = 204, description = "Sealed before its time (owner or processor)")))]
pub async fn seal(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let pool = caller.access(&state, &pool, PoolIntent::Seal).await?.pool;
    let start_ms = parse_time("group", &group)?;
    state.store.seal_group(&pool, start_ms).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// The pool; members may leave it out (theirs).
    pub pool: Option<String>,
    /// Resume after this event id (or send `Last-Event-ID`).
    pub after: Option<i64>,
}

/// One event as the stream carries it (the SSE `data`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    pub kind: String,
    pub pool: String,
    pub group: Option<String>,
    pub time: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

fn event_view(event: &PoolEvent, pool: &str) -> EventView {
    EventView {
        id: event.id,
        kind: event.kind.to_string(),
        pool: pool.to_owned(),
        group: event.group_start_ms.map(rfc3339),
        time: rfc3339(event.time_ms),
        data: serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null),
    }
}

#[utoipa::path(get, path = "/api/v1/events", tag = "pools", params(EventQuery, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")), responses((status = 200, description = "Server-Sent Events: `id` is the event id, `event` its kind, `data` an EventView. With a WebSocket upgrade, each event is a text message holding an EventView.", content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<WebState>,
    caller: PoolCaller,
    QueryArgs(query): QueryArgs<EventQuery>,
    headers: HeaderMap,
    websocket: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let name = match (&query.pool, caller.0.member_pool_name()) {
        (Some(name), _) => name.clone(),
        (None, Some(own)) => own.to_owned(),
        (None, None) => {
            return Err(ApiError::bad_field("pool", "name the pool to follow"));
        }
    };
    let access = caller.access(&state, &name, PoolIntent::View).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::bad_field("Last-Event-ID", "not an event id"))
        })
        .transpose()?;
    let after = resume.or(query.after).unwrap_or(0);
    let pool_name = access.pool.name.clone();
    let events = state
        .store
        .pool_event_feed(&access, after)
        .map(move |event| (event.id, event.kind, event_view(&event, &pool_name)))
        .take_until(state.stopping.clone().cancelled_owned());
    let Ok(upgrade) = websocket else {
        let sse = events.map(|(id, kind, view)| {
            Ok::<_, Infallible>(
                Event::default()
                    .id(id.to_string())
                    .event(kind.as_str())
                    .json_data(view)
                    .unwrap_or_default(),
            )
        });
        return Ok(Sse::new(sse)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response());
    };
    Ok(upgrade.on_upgrade(move |mut socket| async move {
        let mut events = std::pin::pin!(events);
        while let Some((_, _, view)) = events.next().await {
            let text = serde_json::to_string(&view).unwrap_or_default();
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        let _ = socket.send(Message::Close(None)).await;
    }))
}

fn group_time(group: &str) -> ApiResult<i64> {
    parse_time("group", group)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ManifestEntry {
    pub id: String,
    pub member: String,
    pub name: String,
    pub timestamp: String,
    pub size: i64,
    pub sha256: String,
    pub content_type: String,
    /// Download with the same token (GET).
    pub url: String,
    /// The object in the pool's bucket, for S3 tools.
    pub key: String,
    /// The entry's path in the group's tar archive.
    pub archive_path: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Manifest {
    pub pool: String,
    pub group: String,
    pub files: Vec<ManifestEntry>,
}

async fn manifest_of(state: &WebState, pool: &PoolRecord, start_ms: i64) -> ApiResult<Manifest> {
    let files = state.store.group_manifest(pool, start_ms).await?;
    let group = rfc3339(start_ms);
    Ok(Manifest {
        files: files
            .into_iter()
            .map(|(c, member)| ManifestEntry {
                url: format!("/api/v1/pools/{}/groups/{group}/files/{}", pool.name, c.id),
                archive_path: format!("files/{}", c.id),
                member,
                timestamp: rfc3339(c.client_time_ms),
                id: c.id,
                name: c.name,
                size: c.size,
                sha256: c.sha256,
                content_type: c.content_type,
                key: c.object_key,
            })
            .collect(),
        pool: pool.name.clone(),
        group,
    })
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// A sealed group to claim; default the oldest sealed one.
    pub group: Option<String>,
    /// 1 to 3600; default 300.
    pub lease_secs: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Claim {
    pub group: GroupView,
    /// Send with renewals, the result, or a failure report.
    pub lease_id: String,
    pub lease_expires: String,
    pub manifest: Manifest,
}

fn lease_secs(asked: Option<i64>) -> ApiResult<i64> {
    let secs = asked.unwrap_or(crate::core::pools::DEFAULT_LEASE_SECS);
    if (1..=3600).contains(&secs) {
        Ok(secs)
    } else {
        Err(ApiError::bad_field("lease_secs", "1 to 3600"))
    }
}

#[utoipa::path(post, path = "/api/v1/pools/{pool}/claims", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky")), request_body = ClaimRequest, responses((status = 200, description = "The claimed group, its lease and its manifest (processors)", body = Claim), (status = 204, description = "No sealed group is waiting")))]
pub async fn claim(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
    JsonBody(body): JsonBody<ClaimRequest>,
) -> ApiResult<Response> {
    let (pool, member) = caller
        .access(&state, &pool, PoolIntent::Process)
        .await?
        .into_member()?;
    let start_ms = body.group.as_deref().map(group_time).transpose()?;
    let secs = lease_secs(body.lease_secs)?;
    let Some(group) = state
        .store
        .claim_group(&pool, &member, start_ms, secs)
        .await?
    else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let manifest = manifest_of(&state, &pool, group.start_ms).await?;
    Ok(Json(Claim {
        lease_id: group.lease_id.clone().unwrap_or_default(),
        lease_expires: rfc3339(group.lease_expires_ms.unwrap_or_default()),
        group: group.into(),
        manifest,
    })
    .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRenewal {
    pub lease_id: String,
    /// 1 to 3600; default 300.
    pub lease_secs: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LeaseView {
    pub lease_id: String,
    pub lease_expires: String,
}

#[utoipa::path(post, path = "/api/v1/pools/{pool}/groups/{group}/lease", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), request_body = LeaseRenewal, responses((status = 200, description = "Renewed (409 when the lease lapsed or is not yours)", body = LeaseView)))]
pub async fn renew(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
    JsonBody(body): JsonBody<LeaseRenewal>,
) -> ApiResult<Json<LeaseView>> {
    let (pool, member) = caller
        .access(&state, &pool, PoolIntent::Process)
        .await?
        .into_member()?;
    let secs = lease_secs(body.lease_secs)?;
    let expires = state
        .store
        .renew_lease(&pool, &member, group_time(&group)?, &body.lease_id, secs)
        .await?;
    Ok(Json(LeaseView {
        lease_id: body.lease_id,
        lease_expires: rfc3339(expires),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeaseParam {
    /// The lease the claim gave.
    pub lease: String,
}

#[utoipa::path(put, path = "/api/v1/pools/{pool}/groups/{group}/result", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z"), LeaseParam), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The result, streamed"), responses((status = 201, description = "Published to every member", body = GroupView)))]
pub async fn put_result(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
    QueryArgs(lease): QueryArgs<LeaseParam>,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let (pool, member) = caller
        .access(&state, &pool, PoolIntent::Process)
        .await?
        .into_member()?;
    let stream: ByteStream = Box::pin(
        body.into_data_stream()
            .map(|r| r.map_err(std::io::Error::other)),
    );
    let group = state
        .store
        .publish_result(&pool, &member, group_time(&group)?, &lease.lease, stream)
        .await?;
    Ok((StatusCode::CREATED, Json(group.into())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureReport {
    pub lease_id: String,
    /// What went wrong (exit status, the tail of stderr).
    pub reason: String,
    /// Retrying cannot help (the input itself is bad): the group fails at
    /// once instead of returning to `sealed` for another attempt. Default
    /// false.
    #[serde(rename = "final", default)]
    pub last: bool,
}

#[utoipa::path(post, path = "/api/v1/pools/{pool}/groups/{group}/fail", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), request_body = FailureReport, responses((status = 200, description = "The attempt is over and the lease released. The group is `sealed` again for another attempt (a `group.sealed` event with `failure_reported` and the reason), or `failed` (`group.failed`) when the report is final or this was its third attempt, lapses and reports counting alike. 409 when the lease lapsed or is not yours.", body = GroupView)))]
pub async fn fail(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
    JsonBody(body): JsonBody<FailureReport>,
) -> ApiResult<Json<GroupView>> {
    let (pool, member) = caller
        .access(&state, &pool, PoolIntent::Process)
        .await?
        .into_member()?;
    let group = state
        .store
        .fail_group(
            &pool,
            &member,
            group_time(&group)?,
            &body.lease_id,
            &body.reason,
            body.last,
        )
        .await?;
    Ok(Json(group.into()))
}

#[utoipa::path(post, path = "/api/v1/pools/{pool}/groups/{group}/reopen", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), responses((status = 204, description = "A failed group is sealed again with fresh attempts (owner)")))]
pub async fn reopen(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let pool = caller.access(&state, &pool, PoolIntent::Manage).await?.pool;
    state.store.reopen_group(&pool, group_time(&group)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/groups/{group}/manifest", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), responses((status = 200, description = "Every file of the group (owner, processors)", body = Manifest)))]
pub async fn manifest(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
) -> ApiResult<Json<Manifest>> {
    let pool = caller
        .access(&state, &pool, PoolIntent::ReadFiles)
        .await?
        .pool;
    Ok(Json(manifest_of(&state, &pool, group_time(&group)?).await?))
}

/// Serves a stored object of the pool's bucket.
async fn serve_object(
    state: &WebState,
    pool: &PoolRecord,
    key: &str,
    if_none_match: Option<&str>,
) -> ApiResult<Response> {
    let read = state
        .store
        .get_object(
            &pool.bucket,
            key,
            &crate::core::objects::ReadConditions::default(),
            None,
        )
        .await?;
    let etag = format!("\"{}\"", read.object.etag);
    let mut response = if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(axum::body::Body::from_stream(read.body));
        r.headers_mut().insert(
            header::CONTENT_LENGTH,
            header::HeaderValue::from(read.object.size as u64),
        );
        r
    };
    super::objects::object_headers(&read.object, response.headers_mut());
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/groups/{group}/files/{id}", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z"), ("id" = String, Path, description = "Contribution id")), responses((status = 200, description = "One file of the group (owner, processors)", content_type = "*/*", body = Vec<u8>)))]
pub async fn file(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let pool = caller
        .access(&state, &pool, PoolIntent::ReadFiles)
        .await?
        .pool;
    let start_ms = group_time(&group)?;
    let found = state.store.group_file(&pool, start_ms, &id).await?;
    serve_object(&state, &pool, &found.object_key, None).await
}

/// A 512-byte tar header for a regular file.
fn tar_header(path: &str, size: u64, mtime_ms: i64) -> ApiResult<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(path)
        .map_err(|e| CoreError::Internal(format!("tar path {path:?}: {e}")))?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime((mtime_ms / 1000).max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header.as_bytes().to_vec())
}

fn tar_padding(size: u64) -> bytes::Bytes {
    bytes::Bytes::from(vec![0u8; ((512 - size % 512) % 512) as usize])
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/groups/{group}/archive", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), responses((status = 200, description = "The whole group as one streamed tar: manifest.json, then files/<id> (owner, processors)", content_type = "application/x-tar", body = Vec<u8>)))]
pub async fn archive(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
) -> ApiResult<Response> {
    let pool = caller
        .access(&state, &pool, PoolIntent::ReadFiles)
        .await?
        .pool;
    let start_ms = group_time(&group)?;
    let manifest = manifest_of(&state, &pool, start_ms).await?;
    let manifest_json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CoreError::Internal(e.to_string()))?;
    let now = crate::core::now_ms();
    let mut head = tar_header("manifest.json", manifest_json.len() as u64, now)?;
    head.extend_from_slice(&manifest_json);
    head.extend_from_slice(&tar_padding(manifest_json.len() as u64));
    let mut entries = Vec::with_capacity(manifest.files.len());
    for f in &manifest.files {
        entries.push((
            tar_header(&f.archive_path, f.size as u64, now)?,
            f.key.clone(),
            f.size as u64,
        ));
    }
    let bucket = pool.bucket.clone();
    let store = state.store.clone();
    let files = futures::stream::iter(entries).then(move |(header, key, size)| {
        let store = store.clone();
        let bucket = bucket.clone();
        async move {
            let read = store
                .get_object(
                    &bucket,
                    &key,
                    &crate::core::objects::ReadConditions::default(),
                    None,
                )
                .await
                .map_err(|e| std::io::Error::other(e.to_string()));
            let parts: ByteStream = match read {
                Ok(read) => Box::pin(
                    futures::stream::once(async move { Ok(bytes::Bytes::from(header)) })
                        .chain(read.body)
                        .chain(futures::stream::once(async move { Ok(tar_padding(size)) })),
                ),
                Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
            };
            parts
        }
    });
    let body = futures::stream::once(async move { Ok(bytes::Bytes::from(head)) })
        .chain(files.flatten())
        .chain(futures::stream::once(async {
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 1024]))
        }));
    let file_name = format!("{}-{}.tar", pool.name, group.replace(':', ""));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// A member's (or the owner's) download of a published result.
async fn result_response(
    state: &WebState,
    caller: PoolCaller,
    pool: &str,
    start_ms: Option<i64>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let PoolAccess { pool, member, .. } = caller.access(state, pool, PoolIntent::View).await?;
    let PublishedResult { group, key } = state.store.published_result(&pool, start_ms).await?;
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let mut response = serve_object(state, &pool, &key, if_none_match).await?;
    if let Ok(value) = header::HeaderValue::from_str(&rfc3339(group.start_ms)) {
        response.headers_mut().insert("x-cistern-group", value);
    }
    if let Some(member) = member
        && response.status() == StatusCode::OK
    {
        state
            .store
            .record_delivery(&pool, &member, group.start_ms)
            .await?;
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/groups/{group}/result", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), responses((status = 200, description = "The group's result", content_type = "*/*", body = Vec<u8>)))]
pub async fn result(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let start_ms = group_time(&group)?;
    result_response(&state, caller, &pool, Some(start_ms), &headers).await
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/results/latest", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("If-None-Match" = Option<String>, Header, description = "The ETag you have; 304 when nothing is newer")), responses((status = 200, description = "The newest result; `x-cistern-group` names its group", content_type = "*/*", body = Vec<u8>), (status = 304, description = "Nothing newer than the ETag you sent")))]
pub async fn latest_result(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    result_response(&state, caller, &pool, None, &headers).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Deliveries {
    /// The newest published group, if any.
    pub group: Option<String>,
    /// Members (contributors and listeners) who fetched its result.
    pub fetched: Vec<String>,
    /// Members who have not.
    pub missing: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/deliveries", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky")), responses((status = 200, description = "Who has fetched the latest result (owner)", body = Deliveries)))]
pub async fn deliveries(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
) -> ApiResult<Json<Deliveries>> {
    let pool = caller.access(&state, &pool, PoolIntent::Manage).await?.pool;
    let Some(report) = state.store.latest_deliveries(&pool).await? else {
        return Ok(Json(Deliveries {
            group: None,
            fetched: vec![],
            missing: vec![],
        }));
    };
    Ok(Json(Deliveries {
        group: Some(rfc3339(report.group_start_ms)),
        fetched: report.fetched,
        missing: report.missing,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookAttemptView {
    pub event_id: i64,
    /// 1 for the first try.
    pub attempt: i64,
    pub time: String,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<i64>,
    pub error: Option<String>,
    pub delivered: bool,
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/webhook/attempts", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky")), responses((status = 200, description = "The newest 1000 webhook delivery attempts, newest first (owner)", body = Vec<WebhookAttemptView>)))]
pub async fn webhook_attempts(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
) -> ApiResult<Json<Vec<WebhookAttemptView>>> {
    let pool = caller.access(&state, &pool, PoolIntent::Manage).await?.pool;
    let attempts = state.store.webhook_attempts(&pool).await?;
    Ok(Json(
        attempts
            .into_iter()
            .map(|a| WebhookAttemptView {
                event_id: a.event_id,
                attempt: a.attempt,
                time: rfc3339(a.time_ms),
                status: a.status,
                error: a.error,
                delivered: a.delivered,
            })
            .collect(),
    ))
}
