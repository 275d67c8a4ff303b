//! `/api/v1/events`: a pool's events as Server-Sent Events, or as
//! WebSocket text messages after an upgrade, resumed after the last event
//! id the client saw.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{PoolCaller, rfc3339};
use crate::core::pool_access::PoolIntent;
use crate::model::PoolEvent;
use crate::web::WebState;
use crate::web::api::QueryArgs;
use crate::web::api::error::{ApiError, ApiResult};

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// The pool; members may leave it out (theirs).
    pub pool: Option<String>,
    /// Resume after this event id (or send `Last-Event-ID`).
    pub after: Option<i64>,
}

/// One event as the stream carries it (the SSE `data`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    pub kind: String,
    pub pool: String,
    pub group: Option<String>,
    pub time: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

pub fn event_view(event: &PoolEvent, pool: &str) -> EventView {
    EventView {
        id: event.id,
        kind: event.kind.to_string(),
        pool: pool.to_owned(),
        group: event.group_start_ms.map(rfc3339),
        time: rfc3339(event.time_ms),
        data: serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null),
    }
}

#[utoipa::path(get, path = "/api/v1/events", tag = "pools", params(EventQuery, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")), responses((status = 200, description = "Server-Sent Events: `id` is the event id, `event` its kind, `data` an EventView. With a WebSocket upgrade, each event is a text message holding an EventView.", content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<WebState>,
    caller: PoolCaller,
    QueryArgs(query): QueryArgs<EventQuery>,
    headers: HeaderMap,
    websocket: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let name = match (&query.pool, caller.0.member_pool_name()) {
        (Some(name), _) => name.clone(),
        (None, Some(own)) => own.to_owned(),
        (None, None) => {
            return Err(ApiError::bad_field("pool", "name the pool to follow"));
        }
    };
    let access = caller.access(&state, &name, PoolIntent::View).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::bad_field("Last-Event-ID", "not an event id"))
        })
        .transpose()?;
    let after = resume.or(query.after).unwrap_or(0);
    let pool_name = access.pool.name.clone();
    let events = state
        .store
        .pool_event_feed(&access, after)
        .map(move |event| (event.id, event.kind, event_view(&event, &pool_name)))
        .take_until(state.stopping.clone().cancelled_owned());
    let Ok(upgrade) = websocket else {
        let sse = events.map(|(id, kind, view)| {
            Ok::<_, Infallible>(
                Event::default()
                    .id(id.to_string())
                    .event(kind.as_str())
                    .json_data(view)
                    .unwrap_or_default(),
            )
        });
        return Ok(Sse::new(sse)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response());
    };
    Ok(upgrade.on_upgrade(move |mut socket| async move {
        let mut events = std::pin::pin!(events);
        while let Some((_, _, view)) = events.next().await {
            let text = serde_json::to_string(&view).unwrap_or_default();
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        let _ = socket.send(Message::Close(None)).await;
    }))
}
