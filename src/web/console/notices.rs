//! `/ui/events`: the live feed behind the notifications area of every
//! console page. One Server-Sent Events stream per page carries the events
//! of all the pools the signed-in person owns (the pool page reads its
//! pool's events from the same stream), so a person with several pools
//! open does not hold one connection per pool. It resumes after
//! `Last-Event-ID` (or `?after=`), opens with a `ready` event naming where
//! it starts, and ends every ten minutes, so the browser reconnects and
//! the session is checked again; someone who owns no pool gets 204, which
//! tells the browser not to reconnect. An admin's look at someone else's
//! pool adds that pool (`?pool=`).

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
    /// A pool the page shows that the person may see without owning it
    /// (an admin's look).
    pool: Option<String>,
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
    let also = match &query.pool {
        Some(name) => Some(state.store.owned_pool(&visitor.principal, name).await?),
        None => None,
    };
    let Some(feed) = state
        .store
        .owner_event_feed(&visitor.principal, also, resume.or(query.after))
        .await?
    else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let names = feed.names;
    // First, where the feed starts: the page resumes from there after it
    // closed the stream while hidden, even if nothing came meanwhile.
    let ready = Event::default()
        .id(feed.after.to_string())
        .event("ready")
        .data(feed.after.to_string());
    let events = feed
        .events
        .map(move |event| {
            let pool = names.get(&event.pool_id).map(String::as_str).unwrap_or("");
            Event::default()
                .id(event.id.to_string())
                .event(event.kind.as_str())
                .json_data(event_view(&event, pool))
                .unwrap_or_default()
        })
        .map(Ok::<_, Infallible>);
    let events = futures::stream::once(async move { Ok::<_, Infallible>(ready) })
        .chain(events)
        .take_until(tokio::time::sleep(STREAM_LIFETIME))
        .take_until(state.stopping.clone().cancelled_owned());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
