//! The node's event hub: one task reads newly written pool events from the
//! database and broadcasts them to every open event stream, so a stream
//! costs no query per event. Streams catch up from the database when they
//! start, resume, or fall behind the broadcast.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use super::{CoreResult, Store};
use crate::meta::pools::PoolEvent;

/// Events kept for streams that are momentarily slow.
pub const HUB_CAPACITY: usize = 8192;

/// Which events a stream wants.
#[derive(Debug, Clone)]
pub struct EventFilter {
    pub pool_id: String,
    /// A member sees the pool's events and its own; `None` sees all.
    pub member_id: Option<String>,
}

impl EventFilter {
    fn wants(&self, event: &PoolEvent) -> bool {
        event.pool_id == self.pool_id
            && match (&self.member_id, &event.member_id) {
                (None, _) | (_, None) => true,
                (Some(me), Some(them)) => me == them,
            }
    }
}

enum Phase {
    /// Reading from the database after this id.
    CatchUp,
    /// Following the broadcast.
    Live,
}

struct Follow {
    store: Store,
    filter: EventFilter,
    receiver: broadcast::Receiver<Arc<PoolEvent>>,
    last: i64,
    phase: Phase,
    /// When the follower was last given a chance to check its rights.
    last_tick: tokio::time::Instant,
}

impl Store {
    /// Broadcasts events as this node (or, by polling, another) writes them.
    pub async fn run_event_hub(self) {
        let mut last = match self.meta.last_pool_event_id().await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "event hub cannot start");
                return;
            }
        };
        loop {
            let signal = self.pool_event_signal();
            let written = signal.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            match self.meta.pool_events_after(last, 1000).await {
                Ok(events) if !events.is_empty() => {
                    for event in events {
                        last = event.id;
                        // No receivers is fine: nobody is listening.
                        let _ = self.event_hub.send(Arc::new(event));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event hub read failed"),
            }
            // Events of other nodes are found by this poll.
            let _ = tokio::time::timeout(Duration::from_secs(1), written).await;
        }
    }

    /// Events for `filter` after `after`, as they are written. `Err` items
    /// are failed reads; `Ok(None)` items come once a second, so the caller
    /// can check that the follower may still listen.
    pub fn follow_events(
        &self,
        filter: EventFilter,
        after: i64,
    ) -> impl Stream<Item = CoreResult<Option<Arc<PoolEvent>>>> + Send + use<> {
        // Subscribed before the first read, so nothing falls between them.
        let follow = Follow {
            receiver: self.event_hub.subscribe(),
            store: self.clone(),
            filter,
            last: after,
            phase: Phase::CatchUp,
            last_tick: tokio::time::Instant::now(),
        };
        futures::stream::unfold(follow, |mut f| async move {
            loop {
                match f.phase {
                    Phase::CatchUp => {
                        let page = f
                            .store
                            .meta
                            .pool_events(
                                &f.filter.pool_id,
                                f.filter.member_id.as_deref(),
                                f.last,
                                500,
                            )
                            .await;
                        match page {
                            Ok(page) if page.is_empty() => f.phase = Phase::Live,
                            Ok(page) => {
                                f.last = page.last().map_or(f.last, |e| e.id);
                                let items: Vec<CoreResult<Option<Arc<PoolEvent>>>> =
                                    page.into_iter().map(|e| Ok(Some(Arc::new(e)))).collect();
                                return Some((futures::stream::iter(items), f));
                            }
                            Err(e) => {
                                let failed: Vec<CoreResult<Option<Arc<PoolEvent>>>> =
                                    vec![Err(e.into())];
                                return Some((futures::stream::iter(failed), f));
                            }
                        }
                    }
                    Phase::Live => {
                        // A tick at least once a second, busy or not.
                        let tick_at = f.last_tick + Duration::from_secs(1);
                        let received = if tokio::time::Instant::now() >= tick_at {
                            None
                        } else {
                            tokio::time::timeout_at(tick_at, f.receiver.recv())
                                .await
                                .ok()
                        };
                        let Some(received) = received else {
                            f.last_tick = tokio::time::Instant::now();
                            return Some((futures::stream::iter(vec![Ok(None)]), f));
                        };
                        match received {
                            Ok(event) => {
                                if event.id > f.last && f.filter.wants(&event) {
                                    f.last = event.id;
                                    return Some((futures::stream::iter(vec![Ok(Some(event))]), f));
                                }
                            }
                            // Fell behind the broadcast: read the gap.
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                f.phase = Phase::CatchUp;
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                }
            }
        })
        .flatten()
    }
}
