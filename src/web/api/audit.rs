//! `/api/v1/audit` (filtered, paged by cursor, or streamed as NDJSON) and
//! `/api/v1/usage`, `/api/v1/admin/usage`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::{Caller, QueryArgs, require_admin};
use crate::core::Principal;
use crate::model::{AuditFilter, AuditRecord, UsageRow};
use crate::web::WebState;

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// A user name, `anonymous` or `unauthenticated`.
    pub actor: Option<String>,
    /// For example `s3:PutObject` or `api:POST /api/v1/keys`.
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    pub next_cursor: Option<i64>,
}

fn filter_for(who: &Principal, query: &AuditQuery) -> AuditFilter {
    AuditFilter {
        // Users see what they did; admins see everything.
        actor_id: (!who.is_admin()).then(|| who.user_id.clone()),
        actor: query.actor.clone(),
        action: query.action.clone(),
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
    let filter = filter_for(&who, &query);
    match query.format.as_deref() {
        None | Some("json") => {
            let records = state
                .store
                .meta()
                .audit(&filter, limit)
                .await
                .map_err(crate::core::CoreError::from)?;
            let next_cursor = (records.len() as i64 == limit)
                .then(|| records.last().map(|r| r.id))
                .flatten();
            Ok(Json(AuditPage {
                records,
                next_cursor,
            })
            .into_response())
        }
        Some("ndjson") => Ok(ndjson(state, filter)),
        Some(other) => Err(ApiError::bad_field(
            "format",
            format!("'json' or 'ndjson', not {other:?}"),
        )),
    }
}

/// Streams every matching record, newest first, one JSON object a line,
/// reading pages as the client consumes them.
fn ndjson(state: WebState, filter: AuditFilter) -> Response {
    let pages = futures::stream::unfold(Some(filter), move |filter| {
        let state = state.clone();
        async move {
            let mut filter = filter?;
            let page = match state.store.meta().audit(&filter, 1000).await {
                Ok(page) => page,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            };
            if page.is_empty() {
                return None;
            }
            let mut text = String::new();
            for record in &page {
                text.push_str(&serde_json::to_string(record).unwrap_or_default());
                text.push('\n');
            }
            let more = page.len() == 1000;
            filter.before_id = page.last().map(|r| r.id);
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct BucketUsage {
    pub bucket: String,
    pub objects: i64,
    pub bytes_stored: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OwnUsage {
    pub totals: Totals,
    pub buckets: Vec<BucketUsage>,
    /// Traffic per day and bucket.
    pub daily: Vec<UsageRow>,
}

#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", responses((status = 200, description = "The caller's usage", body = OwnUsage)))]
pub async fn own_usage(
    State(state): State<WebState>,
    Caller(who): Caller,
) -> ApiResult<Json<OwnUsage>> {
    let meta = state.store.meta();
    let buckets: Vec<BucketUsage> = meta
        .buckets()
        .await
        .map_err(crate::core::CoreError::from)?
        .into_iter()
        .filter(|b| b.owner_id == who.user_id)
        .map(|b| BucketUsage {
            bucket: b.name,
            objects: b.object_count,
            bytes_stored: b.bytes_stored,
        })
        .collect();
    let daily = meta
        .usage(Some(&who.user_id))
        .await
        .map_err(crate::core::CoreError::from)?;
    let mut totals = Totals::default();
    for b in &buckets {
        totals.objects += b.objects;
        totals.bytes_stored += b.bytes_stored;
    }
    for d in &daily {
        totals.bytes_in += d.bytes_in;
        totals.bytes_out += d.bytes_out;
        totals.requests += d.requests;
    }
    Ok(Json(OwnUsage {
        totals,
        buckets,
        daily,
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
    pub user: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[utoipa::path(get, path = "/api/v1/admin/usage", tag = "usage", params(UsageSort), responses((status = 200, description = "Every user's usage (admins only)", body = Vec<UserUsage>)))]
pub async fn all_usage(
    State(state): State<WebState>,
    Caller(who): Caller,
    QueryArgs(sort): QueryArgs<UsageSort>,
) -> ApiResult<Json<Vec<UserUsage>>> {
    require_admin(&who)?;
    let meta = state.store.meta();
    let core = crate::core::CoreError::from;
    let names: BTreeMap<String, String> = meta
        .accounts()
        .await
        .map_err(core)?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    let mut totals: BTreeMap<String, Totals> = names
        .keys()
        .map(|id| (id.clone(), Totals::default()))
        .collect();
    for b in meta.buckets().await.map_err(core)? {
        let t = totals.entry(b.owner_id).or_default();
        t.objects += b.object_count;
        t.bytes_stored += b.bytes_stored;
    }
    for d in meta.usage(None).await.map_err(core)? {
        let t = totals.entry(d.user_id).or_default();
        t.bytes_in += d.bytes_in;
        t.bytes_out += d.bytes_out;
        t.requests += d.requests;
    }
    let mut rows: Vec<UserUsage> = totals
        .into_iter()
        .map(|(id, totals)| UserUsage {
            user: names.get(&id).cloned().unwrap_or(id),
            totals,
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
