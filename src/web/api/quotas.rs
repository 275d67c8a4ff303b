//! `/api/v1/admin/users/{name}/quota` and `/api/v1/admin/buckets/{bucket}/quota`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::{Caller, JsonBody, require_admin};
use crate::web::WebState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Bytes stored allowed; `null` removes the quota.
    pub bytes: Option<i64>,
}

fn checked(quota: &Quota) -> ApiResult<Option<i64>> {
    match quota.bytes {
        Some(n) if n < 0 => Err(ApiError::bad_field(
            "bytes",
            "must be zero or more (or null for none)",
        )),
        other => Ok(other),
    }
}

#[utoipa::path(put, path = "/api/v1/admin/users/{name}/quota", tag = "quotas", params(("name" = String, Path, description = "User name", example = "alice")), request_body = Quota, responses((status = 204, description = "Set (admins only)")))]
pub async fn user(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    JsonBody(quota): JsonBody<Quota>,
) -> ApiResult<StatusCode> {
    require_admin(&who)?;
    state.store.set_user_quota(&name, checked(&quota)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/admin/buckets/{bucket}/quota", tag = "quotas", params(("bucket" = String, Path, description = "Bucket name", example = "photos")), request_body = Quota, responses((status = 204, description = "Set (admins only)")))]
pub async fn bucket(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(bucket): Path<String>,
    JsonBody(quota): JsonBody<Quota>,
) -> ApiResult<StatusCode> {
    require_admin(&who)?;
    state
        .store
        .set_bucket_quota(&bucket, checked(&quota)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
