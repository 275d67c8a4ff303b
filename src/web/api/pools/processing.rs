//! The processor's side of a group: claims with a lease, lease renewal,
//! publishing the result, reporting a failure; and the group changes an
//! owner makes (sealing early, which processors may do too, and reopening a
//! failed group).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::downloads::{Manifest, manifest_of};
use super::{GroupView, PoolCaller, group_time, parse_time, rfc3339};
use crate::core::pool_access::PoolIntent;
use crate::model::ByteStream;
use crate::web::WebState;
use crate::web::api::error::{ApiError, ApiResult};
use crate::web::api::{JsonBody, QueryArgs};

#[utoipa::path(post, path = "/api/v1/pools/{pool}/groups/{group}/seal", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), responses((status = 204, description = "Sealed before its time (owner or processor)")))]
pub async fn seal(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let pool = caller.pool(&state, &pool, PoolIntent::Seal).await?;
    let start_ms = parse_time("group", &group)?;
    state.store.seal_group(&pool, start_ms).await?;
    Ok(StatusCode::NO_CONTENT)
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
    let (pool, member) = caller.member(&state, &pool, PoolIntent::Process).await?;
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
    let (pool, member) = caller.member(&state, &pool, PoolIntent::Process).await?;
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
    let (pool, member) = caller.member(&state, &pool, PoolIntent::Process).await?;
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
    let (pool, member) = caller.member(&state, &pool, PoolIntent::Process).await?;
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
    let pool = caller.pool(&state, &pool, PoolIntent::Manage).await?;
    state.store.reopen_group(&pool, group_time(&group)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
