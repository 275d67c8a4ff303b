//! `/ui/events`: the live feed behind the notifications area of every
//! console page. One Server-Sent Events stream per page carries the events
//! of all the pools the signed-in person owns (the pool page reads its
//! pool's events from the same stream), so a person with several pools
//! open does not hold one connection per pool. It resumes after
//! `Last-Event-ID` (or `?after=`) and ends every ten minutes, so the
//! browser reconnects and the session is checked again; someone who owns
//! no pool gets 204, which tells the browser not to reconnect.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::session::{ConsoleError, Visitor};
use crate::web::WebState;
use crate::web::api::pools::events::event_view;

/// How long one stream lasts before the browser is asked to come again.
const STREAM_LIFETIME: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
pub struct NoticesQuery {
    after: Option<i64>,
}

/// `GET /ui/events`.
pub async fn stream(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<NoticesQuery>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let Some((names, feed)) = state
        .store
        .owner_event_feed(&visitor.principal, resume.or(query.after))
        .await?
    else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let events = feed
        .map(move |event| {
            let pool = names.get(&event.pool_id).map(String::as_str).unwrap_or("");
            Ok::<_, Infallible>(
                Event::default()
                    .id(event.id.to_string())
                    .event(event.kind.as_str())
                    .json_data(event_view(&event, pool))
                    .unwrap_or_default(),
            )
        })
        .take_until(tokio::time::sleep(STREAM_LIFETIME))
        .take_until(state.stopping.clone().cancelled_owned());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
