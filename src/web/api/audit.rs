//! `/api/v1/audit` (filtered, paged by cursor, or streamed as NDJSON) and
//! `/api/v1/usage`, `/api/v1/admin/usage`. Who sees which records and
//! whose usage is decided by the service layer; this module turns its
//! records into the API's own types.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::{Caller, QueryArgs};
use crate::core::Principal;
use crate::core::audit::UsageTotals;
use crate::model::{AuditFilter, AuditRecord, UsageRow};
use crate::web::WebState;

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// A user name, `anonymous` or `unauthenticated`.
    pub actor: Option<String>,
    /// For example `s3:PutObject` or `bucket.create`; a trailing `*`
    /// matches every action that starts with what comes before it
    /// (`backup.*`).
    pub action: Option<String>,
    pub bucket: Option<String>,
    pub status: Option<u16>,
    /// Unix milliseconds, inclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// `ndjson` streams every matching record instead of one page.
    pub format: Option<String>,
}

/// One request, as the audit log keeps it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Grows with time; the last one of a page is its `next_cursor`.
    pub id: i64,
    pub time_ms: i64,
    pub request_id: String,
    pub actor_id: Option<String>,
    /// A user name, or `anonymous`.
    pub actor: String,
    pub access_key: Option<String>,
    pub source: Option<String>,
    pub action: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// What else the action was done to (`user:alice`, `pool:sky/member:cam`).
    pub target: Option<String>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub user_agent: Option<String>,
    /// What the client reported about its own work (a backup run's
    /// figures), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

impl From<AuditRecord> for AuditEntry {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            time_ms: r.time_ms,
            request_id: r.request_id,
            actor_id: r.actor_id,
            actor: r.actor,
            access_key: r.access_key,
            source: r.source,
            action: r.action,
            bucket: r.bucket,
            key: r.key,
            target: r.target,
            status: r.status,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            user_agent: r.user_agent,
            detail: r.detail.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditEntry>,
    pub next_cursor: Option<i64>,
}

fn filter_for(query: &AuditQuery) -> AuditFilter {
    AuditFilter {
        // The service layer limits it to the caller's own unless an admin asks.
        actor_id: None,
        actor: query.actor.clone(),
        action: query.action.clone().filter(|a| !a.ends_with('*')),
        action_prefix: query
            .action
            .as_deref()
            .and_then(|a| a.strip_suffix('*'))
            .map(str::to_owned),
        bucket: query.bucket.clone(),
        status: query.status,
        from_ms: query.from,
        to_ms: query.to,
        before_id: query.cursor,
    }
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), responses((status = 200, description = "One page, newest first; with format=ndjson every record, one per line", body = AuditPage)))]
pub async fn query(
    State(state): State<WebState>,
    Caller(who): Caller,
    QueryArgs(query): QueryArgs<AuditQuery>,
) -> ApiResult<Response> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_field("limit", "1 to 1000"));
    }
    let filter = filter_for(&query);
    match query.format.as_deref() {
        None | Some("json") => {
            let records = state.store.audit_page(&who, &filter, limit).await?;
            let next_cursor = (records.len() as i64 == limit)
                .then(|| records.last().map(|r| r.id))
                .flatten();
            Ok(Json(AuditPage {
                records: records.into_iter().map(AuditEntry::from).collect(),
                next_cursor,
            })
            .into_response())
        }
        Some("ndjson") => Ok(ndjson(state, who, filter)),
        Some(other) => Err(ApiError::bad_field(
            "format",
            format!("'json' or 'ndjson', not {other:?}"),
        )),
    }
}

/// Streams every matching record, newest first, one JSON object a line,
/// reading pages as the client consumes them.
fn ndjson(state: WebState, who: Principal, filter: AuditFilter) -> Response {
    let pages = futures::stream::unfold(Some(filter), move |filter| {
        let (state, who) = (state.clone(), who.clone());
        async move {
            let mut filter = filter?;
            let page = match state.store.audit_page(&who, &filter, 1000).await {
                Ok(page) => page,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            };
            if page.is_empty() {
                return None;
            }
            let more = page.len() == 1000;
            filter.before_id = page.last().map(|r| r.id);
            let mut text = String::new();
            for record in page {
                text.push_str(
                    &serde_json::to_string(&AuditEntry::from(record)).unwrap_or_default(),
                );
                text.push('\n');
            }
            Some((Ok(text), more.then_some(filter)))
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response()
}

#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct Totals {
    pub objects: i64,
    pub bytes_stored: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub requests: i64,
}

impl From<UsageTotals> for Totals {
    fn from(t: UsageTotals) -> Self {
        Self {
            objects: t.objects,
            bytes_stored: t.bytes_stored,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            requests: t.requests,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BucketUsage {
    pub bucket: String,
    pub objects: i64,
    pub bytes_stored: i64,
}

/// Traffic of one user on one bucket on one day.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DailyUsage {
    pub day: String,
    pub user_id: String,
    pub bucket: String,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub requests: i64,
}

impl From<UsageRow> for DailyUsage {
    fn from(r: UsageRow) -> Self {
        Self {
            day: r.day,
            user_id: r.user_id,
            bucket: r.bucket,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            requests: r.requests,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OwnUsage {
    pub totals: Totals,
    pub buckets: Vec<BucketUsage>,
    /// Traffic per day and bucket.
    pub daily: Vec<DailyUsage>,
}

#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", responses((status = 200, description = "The caller's usage", body = OwnUsage)))]
pub async fn own_usage(
    State(state): State<WebState>,
    Caller(who): Caller,
) -> ApiResult<Json<OwnUsage>> {
    let usage = state.store.own_usage(&who).await?;
    Ok(Json(OwnUsage {
        totals: usage.totals.into(),
        buckets: usage
            .buckets
            .into_iter()
            .map(|b| BucketUsage {
                bucket: b.name,
                objects: b.object_count,
                bytes_stored: b.bytes_stored,
            })
            .collect(),
        daily: usage.daily.into_iter().map(DailyUsage::from).collect(),
    }))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageSort {
    /// `bytes_stored` (default), `objects`, `bytes_in`, `bytes_out`, `requests` or `user`.
    pub sort: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserUsage {
    /// The user's name; for an account since deleted, its id.
    pub user: String,
    /// The account was deleted; its usage is kept with the audit log.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(flatten)]
    pub totals: Totals,
}

#[utoipa::path(get, path = "/api/v1/admin/usage", tag = "usage", params(UsageSort), responses((status = 200, description = "Every user's usage (admins only)", body = Vec<UserUsage>)))]
pub async fn all_usage(
    State(state): State<WebState>,
    Caller(who): Caller,
    QueryArgs(sort): QueryArgs<UsageSort>,
) -> ApiResult<Json<Vec<UserUsage>>> {
    let mut rows: Vec<UserUsage> = state
        .store
        .usage_by_user(&who, None)
        .await?
        .into_iter()
        .map(|u| UserUsage {
            user: u.name,
            deleted: u.deleted,
            totals: u.totals.into(),
        })
        .collect();
    let key = sort.sort.as_deref().unwrap_or("bytes_stored");
    match key {
        "bytes_stored" => rows.sort_by_key(|r| std::cmp::Reverse(r.totals.bytes_stored)),
        "objects" => rows.sort_by_key(|r| std::cmp::Reverse(r.totals.objects)),
        "bytes_in" => rows.sort_by_key(|r| std::cmp::Reverse(r.totals.bytes_in)),
        "bytes_out" => rows.sort_by_key(|r| std::cmp::Reverse(r.totals.bytes_out)),
        "requests" => rows.sort_by_key(|r| std::cmp::Reverse(r.totals.requests)),
        "user" => rows.sort_by(|a, b| a.user.cmp(&b.user)),
        other => {
            return Err(ApiError::bad_field(
                "sort",
                format!("unknown sort key {other:?}"),
            ));
        }
    }
    Ok(Json(rows))
}
