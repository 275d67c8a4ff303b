//! Objects through the JSON API: upload a raw body (`PUT`) or a form
//! (`curl -F file=@...`), download with ranges, `HEAD`, `DELETE`, list with
//! prefix, delimiter and a cursor, and share links (presigned URLs).

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::{Caller, JsonBody, MaybeCaller, QueryArgs, refusal_for};
use crate::core::accounts::Access;
use crate::core::names::ObjectKey;
use crate::core::objects::{ByteRange, IncomingBody, ReadConditions};
use crate::model::ByteStream;
use crate::model::{ObjectAttrs, ObjectRecord, PutCondition};
use crate::web::WebState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ObjectView {
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub last_modified_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl From<&ObjectRecord> for ObjectView {
    fn from(o: &ObjectRecord) -> Self {
        Self {
            key: o.key.clone(),
            size: o.size,
            etag: o.etag.clone(),
            last_modified_ms: o.last_modified_ms,
            content_type: o.attrs.content_type.clone(),
        }
    }
}

/// The form `POST .../objects` takes (documentation only: the handler
/// reads the fields in order as they stream).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The key of the next `file` field.
    key: Option<String>,
    /// Prefix for keys taken from file names.
    prefix: Option<String>,
    /// A file; repeat the field for several.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

fn plain_body(stream: ByteStream, declared_len: Option<u64>) -> IncomingBody {
    IncomingBody {
        stream,
        declared_len,
        md5: true,
        checksums: Vec::new(),
        verify: Box::new(|_| Ok(())),
    }
}

fn object_key(key: &str) -> ApiResult<ObjectKey> {
    ObjectKey::parse(key).map_err(|e| ApiError::bad_field("key", e))
}

#[utoipa::path(put, path = "/api/v1/buckets/{bucket}/objects/{key}", tag = "objects", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("key" = String, Path, description = "Object key (may contain slashes)", example = "2026/cat.txt")), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The object's bytes; Content-Type is kept"), responses((status = 201, description = "Stored", body = ObjectView)))]
/// `PUT /api/v1/buckets/{bucket}/objects/{key}`: the body is the object.
pub async fn put_raw(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ObjectView>)> {
    let key = object_key(&key)?;
    state
        .store
        .authorize(Some(&who), &bucket, Access::Write)
        .await?;
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let attrs = ObjectAttrs {
        content_type: text(header::CONTENT_TYPE),
        content_disposition: text(header::CONTENT_DISPOSITION),
        cache_control: text(header::CACHE_CONTROL),
        ..ObjectAttrs::default()
    };
    let declared = text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
    let stream: ByteStream = Box::pin(
        body.into_data_stream()
            .map(|r| r.map_err(std::io::Error::other)),
    );
    let object = state
        .store
        .put_object(
            &bucket,
            &key,
            attrs,
            plain_body(stream, declared),
            PutCondition::Always,
        )
        .await?;
    Ok((StatusCode::CREATED, Json((&object).into())))
}

#[utoipa::path(post, path = "/api/v1/buckets/{bucket}/objects", tag = "objects", params(("bucket" = String, Path, description = "Bucket name", example = "photos")), request_body(content = UploadForm, content_type = "multipart/form-data"), responses((status = 201, description = "Stored, one entry per file field", body = Vec<ObjectView>)))]
/// `POST /api/v1/buckets/{bucket}/objects`: a multipart form; every `file`
/// field becomes an object named by a preceding `key` field, or by
/// `prefix` plus the file's name.
pub async fn post_form(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(bucket): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Vec<ObjectView>>)> {
    let mut form = form.map_err(|e| ApiError::bad_field("form", e.body_text()))?;
    state
        .store
        .authorize(Some(&who), &bucket, Access::Write)
        .await?;
    let stored: Vec<ObjectView> = store_form_files(&state, &bucket, &mut form)
        .await?
        .iter()
        .map(ObjectView::from)
        .collect();
    if stored.is_empty() {
        return Err(ApiError::bad_field("file", "the form has no file field"));
    }
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Stores every `file` field of an upload form, in order, each under the
/// `key` field before it or under `prefix` plus its file name (the JSON
/// API's form upload and the console's plain upload form). The caller has
/// checked that the bucket takes writes.
pub(crate) async fn store_form_files(
    state: &WebState,
    bucket: &str,
    form: &mut Multipart,
) -> ApiResult<Vec<ObjectRecord>> {
    let bad_form =
        |e: axum::extract::multipart::MultipartError| ApiError::bad_field("form", e.body_text());
    let mut stored = Vec::new();
    let (mut key, mut prefix) = (None::<String>, String::new());
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        match field.name().unwrap_or_default() {
            "key" => key = Some(field.text().await.map_err(bad_form)?),
            "prefix" => prefix = field.text().await.map_err(bad_form)?,
            "file" => {
                let name = match (key.take(), field.file_name()) {
                    (Some(key), _) => key,
                    // A browser sends an empty field for a file input left
                    // unused.
                    (None, Some("")) => continue,
                    (None, Some(file)) => format!("{prefix}{file}"),
                    (None, None) => {
                        return Err(ApiError::bad_field(
                            "file",
                            "give a file name or a key field first",
                        ));
                    }
                };
                let name = object_key(&name)?;
                let attrs = ObjectAttrs {
                    content_type: field.content_type().map(str::to_owned),
                    ..ObjectAttrs::default()
                };
                // The field borrows the form, so feed the store through a
                // small channel while both run side by side.
                let (feed, chunks) =
                    tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
                let mut chunks = chunks;
                let stream: ByteStream =
                    Box::pin(futures::stream::poll_fn(move |cx| chunks.poll_recv(cx)));
                let upload = state.store.put_object(
                    bucket,
                    &name,
                    attrs,
                    plain_body(stream, None),
                    PutCondition::Always,
                );
                let pump = async move {
                    loop {
                        match field.chunk().await {
                            Ok(Some(chunk)) => {
                                if feed.send(Ok(chunk)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => return,
                            Err(e) => {
                                let _ = feed.send(Err(std::io::Error::other(e.body_text()))).await;
                                return;
                            }
                        }
                    }
                };
                let (object, ()) = tokio::join!(upload, pump);
                stored.push(object?);
            }
            other => {
                return Err(ApiError::bad_field(
                    other,
                    "unknown form field (use key, prefix, file)",
                ));
            }
        }
    }
    Ok(stored)
}

fn parse_range(headers: &HeaderMap) -> ApiResult<Option<ByteRange>> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_field(
            "Range",
            "expected bytes=first-last, bytes=first- or bytes=-suffix",
        )
    };
    let spec = value.strip_prefix("bytes=").ok_or_else(bad)?;
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    Ok(Some(
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => ByteRange::Suffix(number(last)?),
            (false, true) => ByteRange::From {
                first: number(first)?,
                last: None,
            },
            (false, false) => ByteRange::From {
                first: number(first)?,
                last: Some(number(last)?),
            },
            (true, true) => return Err(bad()),
        },
    ))
}

fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

pub(super) fn object_headers(object: &ObjectRecord, headers: &mut HeaderMap) {
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(
        header::CONTENT_TYPE,
        object
            .attrs
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
    );
    let file = object.key.rsplit('/').next().unwrap_or(&object.key);
    let encoded = percent_encoding::utf8_percent_encode(file, percent_encoding::NON_ALPHANUMERIC);
    set(
        header::CONTENT_DISPOSITION,
        object
            .attrs
            .content_disposition
            .clone()
            .unwrap_or_else(|| format!("inline; filename*=UTF-8''{encoded}")),
    );
    set(header::ETAG, format!("\"{}\"", object.etag));
    set(header::LAST_MODIFIED, http_date(object.last_modified_ms));
    set(header::ACCEPT_RANGES, "bytes".to_owned());
    // Stored content runs in a sandbox if opened directly: an HTML file
    // someone uploaded must not run scripts with this site's cookies
    // (PDFs are exempt, or the browser's viewer would not show them).
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned());
    if object.attrs.content_type.as_deref() != Some("application/pdf") {
        set(header::CONTENT_SECURITY_POLICY, "sandbox".to_owned());
    }
    if let Some(cache) = &object.attrs.cache_control {
        set(header::CACHE_CONTROL, cache.clone());
    }
}

#[utoipa::path(method(get, head), path = "/api/v1/buckets/{bucket}/objects/{key}", tag = "objects", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("key" = String, Path, description = "Object key (may contain slashes)", example = "2026/cat.txt"), ("Range" = Option<String>, Header, description = "bytes=first-last, bytes=first- or bytes=-suffix")), responses((status = 200, description = "The object", content_type = "*/*", body = Vec<u8>), (status = 206, description = "The requested range", content_type = "*/*", body = Vec<u8>)))]
/// `GET` and `HEAD` of one object, with `Range`.
pub async fn get(
    State(state): State<WebState>,
    MaybeCaller(who): MaybeCaller,
    method: Method,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state
        .store
        .authorize(who.as_ref(), &bucket, Access::Read)
        .await
        .map_err(refusal_for(&who))?;
    serve_object(&state, &bucket, &key, &method, &headers).await
}

/// An object's bytes (or the range asked for) with its headers, for a
/// caller already allowed to read it.
pub(crate) async fn serve_object(
    state: &WebState,
    bucket: &str,
    key: &str,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let range = parse_range(headers)?;
    let read = state
        .store
        .get_object(bucket, key, &ReadConditions::default(), range)
        .await?;
    let size = read.object.size as u64;
    let mut response = if *method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from_stream(read.body))
    };
    object_headers(&read.object, response.headers_mut());
    let length = match read.range {
        Some((start, end)) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            end - start
        }
        None => size,
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

#[utoipa::path(delete, path = "/api/v1/buckets/{bucket}/objects/{key}", tag = "objects", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ("key" = String, Path, description = "Object key (may contain slashes)", example = "2026/cat.txt")), responses((status = 204, description = "Deleted (also when it did not exist)")))]
pub async fn delete(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path((bucket, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .authorize(Some(&who), &bucket, Access::Write)
        .await?;
    state.store.delete_object(&bucket, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 1000, default 1000.
    pub limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListView {
    pub objects: Vec<ListedObject>,
    pub prefixes: Vec<String>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListedObject {
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub last_modified_ms: i64,
}

#[utoipa::path(get, path = "/api/v1/buckets/{bucket}/objects", tag = "objects", params(("bucket" = String, Path, description = "Bucket name", example = "photos"), ListQuery), responses((status = 200, description = "One page", body = ListView)))]
pub async fn list(
    State(state): State<WebState>,
    MaybeCaller(who): MaybeCaller,
    Path(bucket): Path<String>,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> ApiResult<Json<ListView>> {
    state
        .store
        .authorize(who.as_ref(), &bucket, Access::Read)
        .await
        .map_err(refusal_for(&who))?;
    let limit = query.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_field("limit", "1 to 1000"));
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let after = match &query.cursor {
        Some(cursor) => engine
            .decode(cursor)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiError::bad_field("cursor", "not a cursor this API gave out"))?,
        None => String::new(),
    };
    let prefix = query.prefix.unwrap_or_default();
    let page = state
        .store
        .list_objects(&bucket, &prefix, query.delimiter.as_deref(), &after, limit)
        .await?;
    Ok(Json(ListView {
        next_cursor: page
            .truncated
            .then(|| page.last.as_ref().map(|l| engine.encode(l)))
            .flatten(),
        objects: page
            .objects
            .into_iter()
            .map(|o| ListedObject {
                key: o.key,
                size: o.size,
                etag: o.etag,
                last_modified_ms: o.last_modified_ms,
            })
            .collect(),
        prefixes: page.common_prefixes,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    pub key: String,
    /// Seconds the link works, 1 to 604800 (7 days); default 3600.
    pub expires_secs: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ShareLink {
    pub url: String,
    pub expires_ms: i64,
}

#[utoipa::path(post, path = "/api/v1/buckets/{bucket}/share", tag = "objects", params(("bucket" = String, Path, description = "Bucket name", example = "photos")), request_body = ShareRequest, responses((status = 200, description = "A presigned GET URL on the S3 port", body = ShareLink)))]
pub async fn share(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(bucket): Path<String>,
    JsonBody(request): JsonBody<ShareRequest>,
) -> ApiResult<Json<ShareLink>> {
    use crate::core::presign::{MAX_EXPIRY_SECS, PresignRequest, presign_get};
    let expires_secs = request.expires_secs.unwrap_or(3600);
    if !(1..=MAX_EXPIRY_SECS).contains(&expires_secs) {
        return Err(ApiError::bad_field(
            "expires_secs",
            format!("1 to {MAX_EXPIRY_SECS}"),
        ));
    }
    state
        .store
        .authorize(Some(&who), &bucket, Access::Read)
        .await?;
    state.store.head_object(&bucket, &request.key).await?;
    let (access_key, secret) = state.store.share_key(&who, &bucket).await?;
    let now = crate::core::now_ms();
    let url = presign_get(&PresignRequest {
        endpoint: &state.api.s3_public_url,
        region: &state.api.region,
        access_key: &access_key,
        secret: &secret,
        bucket: &bucket,
        key: &request.key,
        expires_secs,
        now_secs: now / 1000,
    });
    Ok(Json(ShareLink {
        url,
        expires_ms: now + expires_secs as i64 * 1000,
    }))
}
