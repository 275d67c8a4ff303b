//! `/api/v1/pools/{pool}/webhook/attempts`: the owner's view of webhook
//! deliveries.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::{PoolCaller, rfc3339};
use crate::core::pool_access::PoolIntent;
use crate::web::WebState;
use crate::web::api::error::ApiResult;

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookAttemptView {
    pub event_id: i64,
    /// 1 for the first try.
    pub attempt: i64,
    pub time: String,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<i64>,
    pub error: Option<String>,
    pub delivered: bool,
    /// When the event is tried again (RFC 3339); absent once it was
    /// delivered or given up on, or when a later attempt followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_try: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/webhook/attempts", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky")), responses((status = 200, description = "The newest 1000 webhook delivery attempts, newest first (owner)", body = Vec<WebhookAttemptView>)))]
pub async fn webhook_attempts(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
) -> ApiResult<Json<Vec<WebhookAttemptView>>> {
    let pool = caller.pool(&state, &pool, PoolIntent::Manage).await?;
    let attempts = state.store.webhook_attempts(&pool, 1000).await?;
    Ok(Json(
        attempts
            .into_iter()
            .enumerate()
            .map(|(i, a)| WebhookAttemptView {
                // Only the newest attempt's next try is still to come.
                next_try: a.next_try_ms.filter(|_| i == 0).map(rfc3339),
                event_id: a.event_id,
                attempt: a.attempt,
                time: rfc3339(a.time_ms),
                status: a.status,
                error: a.error,
                delivered: a.delivered,
            })
            .collect(),
    ))
}
