//! `/api/v1/buckets/{bucket}/uploads`: large uploads in parts, as the
//! console's upload script sends them (and any script may): create an
//! upload, send each part as a streamed body, list the parts stored so far
//! (to resume after a reload or a dropped connection), complete or abort.
//! They map onto the same multipart machinery as S3's. The key travels in
//! the query or the body, as keys may hold any character.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::objects::ObjectView;
use super::{Caller, JsonBody, QueryArgs};
use crate::core::accounts::Access;
use crate::core::names::ObjectKey;
use crate::core::objects::IncomingBody;
use crate::model::{ByteStream, ObjectAttrs, PutCondition};
use crate::web::WebState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    pub key: String,
    pub content_type: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UploadView {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// The object key the upload is for.
    pub key: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PartView {
    pub number: i32,
    pub size: i64,
    pub etag: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PartList {
    pub parts: Vec<PartView>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    pub key: String,
    /// Every part, in ascending order, with the ETag its upload returned.
    pub parts: Vec<PartRef>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartRef {
    pub number: i32,
    pub etag: String,
}

async fn writable(state: &WebState, who: &crate::core::Principal, bucket: &str) -> ApiResult<()> {
    state
        .store
        .authorize(Some(who), bucket, Access::Write)
        .await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/buckets/{bucket}/uploads", tag = "uploads", params(("bucket" = String, Path, description = "Bucket name", example = "photos")), request_body = NewUpload, responses((status = 201, description = "Started", body = UploadView)))]
pub async fn create(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(bucket): Path<String>,
    JsonBody(body): JsonBody<NewUpload>,
) -> ApiResult<(StatusCode, Json<UploadView>)> {
    let key = ObjectKey::parse(&body.key).map_err(|e| ApiError::bad_field("key", e))?;
    writable(&state, &who, &bucket).await?;
    let attrs = ObjectAttrs {
        content_type: body.content_type.filter(|t| !t.is_empty()),
        ..ObjectAttrs::default()
    };
    let upload = state.store.create_upload(&bucket, &key, attrs).await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadView {
            upload_id: upload.upload_id,
            key: upload.key,
            initiated_ms: upload.initiated_ms,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/buckets/{bucket}/uploads/{upload}/parts", tag = "uploads", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("upload" = String, Path, description = "Upload id"), KeyQuery), responses((status = 200, description = "The parts stored so far", body = PartList)))]
pub async fn parts(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path((bucket, upload_id)): Path<(String, String)>,
    QueryArgs(query): QueryArgs<KeyQuery>,
) -> ApiResult<Json<PartList>> {
    writable(&state, &who, &bucket).await?;
    state.store.upload(&bucket, &query.key, &upload_id).await?;
    let mut parts = Vec::new();
    let mut after = 0;
    loop {
        let (page, more) = state.store.list_parts(&upload_id, after, 1000).await?;
        after = page.last().map_or(after, |p| p.part_number);
        parts.extend(page.into_iter().map(|p| PartView {
            number: p.part_number,
            size: p.size,
            etag: p.etag,
        }));
        if !more {
            break;
        }
    }
    Ok(Json(PartList { parts }))
}

#[utoipa::path(put, path = "/api/v1/buckets/{bucket}/uploads/{upload}/parts/{number}", tag = "uploads", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("upload" = String, Path, description = "Upload id"), ("number" = i32, Path, description = "Part number, 1 to 10000"), KeyQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The part's bytes"), responses((status = 200, description = "Stored", body = PartView)))]
pub async fn put_part(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path((bucket, upload_id, number)): Path<(String, String, String)>,
    QueryArgs(query): QueryArgs<KeyQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<PartView>> {
    let number: i32 = number
        .parse()
        .map_err(|_| ApiError::bad_field("number", "a part number from 1 to 10000"))?;
    writable(&state, &who, &bucket).await?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let stream: ByteStream = Box::pin(
        body.into_data_stream()
            .map(|r| r.map_err(std::io::Error::other)),
    );
    let part = state
        .store
        .upload_part(
            &bucket,
            &query.key,
            &upload_id,
            number,
            IncomingBody {
                stream,
                declared_len: declared,
                md5: true,
                checksums: Vec::new(),
                verify: Box::new(|_| Ok(())),
            },
        )
        .await?;
    Ok(Json(PartView {
        number: part.part_number,
        size: part.size,
        etag: part.etag,
    }))
}

#[utoipa::path(post, path = "/api/v1/buckets/{bucket}/uploads/{upload}/complete", tag = "uploads", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("upload" = String, Path, description = "Upload id")), request_body = Completion, responses((status = 201, description = "The object", body = ObjectView)))]
pub async fn complete(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path((bucket, upload_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Completion>,
) -> ApiResult<(StatusCode, Json<ObjectView>)> {
    writable(&state, &who, &bucket).await?;
    let parts = body
        .parts
        .into_iter()
        .map(|p| (p.number, p.etag.trim_matches('"').to_owned()))
        .collect();
    let object = state
        .store
        .complete_upload(&bucket, &body.key, &upload_id, parts, PutCondition::Always)
        .await?;
    Ok((StatusCode::CREATED, Json((&object).into())))
}

#[utoipa::path(delete, path = "/api/v1/buckets/{bucket}/uploads/{upload}", tag = "uploads", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("upload" = String, Path, description = "Upload id"), KeyQuery), responses((status = 204, description = "Aborted; its parts are removed")))]
pub async fn abort(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path((bucket, upload_id)): Path<(String, String)>,
    QueryArgs(query): QueryArgs<KeyQuery>,
) -> ApiResult<StatusCode> {
    writable(&state, &who, &bucket).await?;
    state
        .store
        .abort_upload(&bucket, &query.key, &upload_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
