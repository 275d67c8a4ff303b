//! `/api/v1/pools/{pool}/contributions`: members send files (a raw body,
//! or a multipart form of many files with their timestamps) and get a
//! receipt per file; members list their own contributions, the owner
//! everyone's.

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, header};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{PoolCaller, parse_time, rfc3339};
use crate::core::pool_access::PoolIntent;
use crate::core::pools::Receipt;
use crate::model::{ByteStream, ContributionRecord, RefusalReason};
use crate::web::WebState;
use crate::web::api::QueryArgs;
use crate::web::api::error::{ApiError, ApiResult};

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
    let (pool, member) = caller.member(&state, &pool, PoolIntent::Contribute).await?;
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
