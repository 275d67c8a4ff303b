//! What leaves a pool: a group's manifest, one of its files or all of them
//! as one streamed tar (for the owner and processors), a published result
//! (for everyone in the pool, noting each member's fetch), and who has
//! fetched the latest one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;

use super::{PoolCaller, group_time, rfc3339};
use crate::core::CoreError;
use crate::core::pool_access::{PoolAccess, PoolIntent, PublishedResult};
use crate::model::{ByteStream, PoolRecord};
use crate::web::WebState;
use crate::web::api::error::ApiResult;

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

pub(super) async fn manifest_of(
    state: &WebState,
    pool: &PoolRecord,
    start_ms: i64,
) -> ApiResult<Manifest> {
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

#[utoipa::path(get, path = "/api/v1/pools/{pool}/groups/{group}/manifest", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z")), responses((status = 200, description = "Every file of the group (owner, processors)", body = Manifest)))]
pub async fn manifest(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group)): Path<(String, String)>,
) -> ApiResult<Json<Manifest>> {
    let pool = caller.pool(&state, &pool, PoolIntent::ReadFiles).await?;
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
    crate::web::api::objects::object_headers(&read.object, response.headers_mut());
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/groups/{group}/files/{id}", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("group" = String, Path, description = "RFC 3339 start of the group's window", example = "2026-11-23T12:00:00.000Z"), ("id" = String, Path, description = "Contribution id")), responses((status = 200, description = "One file of the group (owner, processors)", content_type = "*/*", body = Vec<u8>)))]
pub async fn file(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, group, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let pool = caller.pool(&state, &pool, PoolIntent::ReadFiles).await?;
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
    let pool = caller.pool(&state, &pool, PoolIntent::ReadFiles).await?;
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
pub(crate) async fn result_response(
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
    let pool = caller.pool(&state, &pool, PoolIntent::Manage).await?;
    let Some(report) = state.store.latest_deliveries(&pool).await? else {
        return Ok(Json(Deliveries {
            group: None,
            fetched: vec![],
            missing: vec![],
        }));
    };
    Ok(Json(Deliveries {
        group: Some(rfc3339(report.group_start_ms)),
        fetched: report.fetched.into_iter().map(|(name, _)| name).collect(),
        missing: report.missing,
    }))
}
