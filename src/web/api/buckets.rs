//! `/api/v1/buckets`: list, create, delete, public-read and grants.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::{Caller, JsonBody, MaybeCaller, refusal_for};
use crate::core::accounts::Access;
use crate::core::names::BucketName;
use crate::model::{BucketRecord, GrantLevel};
use crate::web::WebState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct BucketView {
    pub name: String,
    pub owner_id: String,
    pub created_ms: i64,
    pub objects: i64,
    pub bytes: i64,
    /// Anyone may read its objects and list it, without credentials.
    pub public_read: bool,
}

impl From<BucketRecord> for BucketView {
    fn from(b: BucketRecord) -> Self {
        Self {
            name: b.name,
            owner_id: b.owner_id,
            created_ms: b.created_ms,
            objects: b.object_count,
            bytes: b.bytes_stored,
            public_read: b.public_read,
        }
    }
}

/// One bucket, with whom it is shared.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BucketDetail {
    #[serde(flatten)]
    pub bucket: BucketView,
    /// Users the bucket is shared with; only its owner and admins see them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<GrantView>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub user: String,
    /// `read` or `read-write`.
    pub level: String,
}

#[utoipa::path(get, path = "/api/v1/buckets/{bucket}", tag = "buckets", params(("bucket" = String, Path, description = "Bucket name", example = "photos")), responses((status = 200, description = "The bucket: figures, public-read flag and grants", body = BucketDetail)))]
/// Anyone who may read the bucket sees it (anonymous callers too, when it
/// is public-read); grants are shown to those who may manage it.
pub async fn show(
    State(state): State<WebState>,
    MaybeCaller(who): MaybeCaller,
    Path(bucket): Path<String>,
) -> ApiResult<Json<BucketDetail>> {
    let (record, grants) = state
        .store
        .bucket_details(who.as_ref(), &bucket)
        .await
        .map_err(refusal_for(&who))?;
    Ok(Json(BucketDetail {
        bucket: record.into(),
        grants: grants.map(|grants| {
            grants
                .into_iter()
                .map(|(user, level)| GrantView {
                    user,
                    level: level.as_str().to_owned(),
                })
                .collect()
        }),
    }))
}

#[utoipa::path(get, path = "/api/v1/buckets", tag = "buckets", responses((status = 200, description = "Own and granted buckets (admins: all)", body = Vec<BucketView>)))]
pub async fn list(
    State(state): State<WebState>,
    Caller(who): Caller,
) -> ApiResult<Json<Vec<BucketView>>> {
    let buckets = state.store.visible_buckets(&who).await?;
    Ok(Json(buckets.into_iter().map(BucketView::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBucket {
    pub name: String,
}

#[utoipa::path(post, path = "/api/v1/buckets", tag = "buckets", request_body = NewBucket, responses((status = 201, description = "Created", body = BucketView)))]
pub async fn create(
    State(state): State<WebState>,
    Caller(who): Caller,
    actor: Option<axum::Extension<super::ApiActor>>,
    JsonBody(body): JsonBody<NewBucket>,
) -> ApiResult<(StatusCode, Json<BucketView>)> {
    // The name came in the body, so the route cannot tell the audit log.
    if let Some(axum::Extension(actor)) = actor {
        actor.name_object(&body.name, None);
    }
    let name = BucketName::parse(&body.name).map_err(|e| ApiError::bad_field("name", e))?;
    state.store.create_bucket(&who, &name).await?;
    let record = state.store.bucket(name.as_str()).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[utoipa::path(delete, path = "/api/v1/buckets/{bucket}", tag = "buckets", params(("bucket" = String, Path, description = "Bucket name", example = "photos")), responses((status = 204, description = "Deleted (it must be empty)")))]
pub async fn remove(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(bucket): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .authorize(Some(&who), &bucket, Access::Manage)
        .await?;
    state.store.delete_bucket(&bucket).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicRead {
    pub public_read: bool,
}

#[utoipa::path(put, path = "/api/v1/buckets/{bucket}/public", tag = "buckets", params(("bucket" = String, Path, description = "Bucket name", example = "photos")), request_body = PublicRead, responses((status = 204, description = "Set")))]
pub async fn set_public(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(bucket): Path<String>,
    JsonBody(body): JsonBody<PublicRead>,
) -> ApiResult<StatusCode> {
    state
        .store
        .set_public_read(&who, &bucket, body.public_read)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// `read` or `read-write`.
    pub level: String,
}

#[utoipa::path(put, path = "/api/v1/buckets/{bucket}/grants/{user}", tag = "buckets", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("user" = String, Path, description = "User name", example = "alice")), request_body = Grant, responses((status = 204, description = "Granted")))]
pub async fn grant(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path((bucket, user)): Path<(String, String)>,
    JsonBody(body): JsonBody<Grant>,
) -> ApiResult<StatusCode> {
    let level = GrantLevel::parse(&body.level)
        .ok_or_else(|| ApiError::bad_field("level", "'read' or 'read-write'"))?;
    state
        .store
        .set_grant(&who, &bucket, &user, Some(level))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/buckets/{bucket}/grants/{user}", tag = "buckets", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("user" = String, Path, description = "User name", example = "alice")), responses((status = 204, description = "Revoked")))]
pub async fn revoke_grant(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path((bucket, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.set_grant(&who, &bucket, &user, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
