//! `/api/v1/pools` and `/api/v1/events`: the pool routes, one file per
//! resource. This module registers them, identifies the caller of a pool
//! route (a member by its token, or a user), and serves pools themselves
//! (create, list, show) and their groups. Who may do what is decided by
//! [`crate::core::pool_access`]; the handlers turn its answers into JSON.

mod contributions;
mod downloads;
pub(crate) use downloads::result_response;
pub mod events;
mod members;
mod processing;
mod webhooks;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::{ApiActor, Caller, JsonBody, QueryArgs};
use crate::core::pool_access::{MemberSession, PoolAccess, PoolActor, PoolIntent};
use crate::core::pools::{MEMBER_TOKEN_PREFIX, PoolSpec};
use crate::model::{GroupRecord, MemberRecord, PoolRecord};
use crate::web::WebState;

/// Adds the pool routes (documented by their handlers' annotations) to the
/// API's router.
pub fn routes(router: OpenApiRouter<WebState>) -> OpenApiRouter<WebState> {
    router
        .routes(routes!(list, create))
        .routes(routes!(show))
        .routes(routes!(members::members, members::add_members))
        .routes(routes!(members::member_action))
        .routes(routes!(members::remove_member))
        .routes(routes!(
            contributions::contribute,
            contributions::contributions
        ))
        .routes(routes!(groups))
        .routes(routes!(processing::seal))
        .routes(routes!(events::events))
        .routes(routes!(processing::claim))
        .routes(routes!(processing::renew))
        .routes(routes!(processing::put_result, downloads::result))
        .routes(routes!(processing::fail))
        .routes(routes!(processing::reopen))
        .routes(routes!(downloads::manifest))
        .routes(routes!(downloads::file))
        .routes(routes!(downloads::archive))
        .routes(routes!(downloads::latest_result))
        .routes(routes!(downloads::deliveries))
        .routes(routes!(webhooks::webhook_attempts))
}

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
    /// A member already signed in by its token (the console's member
    /// page).
    pub(crate) fn signed_in_member(session: MemberSession) -> Self {
        Self(PoolActor::Member(Box::new(session)))
    }

    /// The pool named in the path, if the caller may act on it this way.
    async fn access(
        self,
        state: &WebState,
        pool: &str,
        intent: PoolIntent,
    ) -> ApiResult<PoolAccess> {
        Ok(state.store.pool_access(self.0, pool, intent).await?)
    }

    /// The pool and the calling member, for what only members do.
    async fn member(
        self,
        state: &WebState,
        pool: &str,
        intent: PoolIntent,
    ) -> ApiResult<(PoolRecord, MemberRecord)> {
        Ok(self.access(state, pool, intent).await?.into_member()?)
    }

    /// Just the pool, when the handler has no use for the member.
    async fn pool(self, state: &WebState, pool: &str, intent: PoolIntent) -> ApiResult<PoolRecord> {
        Ok(self.access(state, pool, intent).await?.pool)
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

fn group_time(group: &str) -> ApiResult<i64> {
    parse_time("group", group)
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
    let pool = caller.pool(&state, &pool, PoolIntent::View).await?;
    let groups = state
        .store
        .pool_groups(&pool, query.state.as_deref())
        .await?;
    Ok(Json(groups.into_iter().map(GroupView::from).collect()))
}
