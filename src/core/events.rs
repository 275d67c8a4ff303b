//! The node's event hub: one task reads newly written pool events from the
//! database and routes each to the open event streams that want it, so a
//! stream costs no query per event. A member's streams share one channel
//! that carries the pool's events and the member's own, so one member's
//! upload wakes only that member's streams; owners follow a channel of
//! everything. Streams catch up from the database when they start, resume,
//! or fall behind. A change to a member (`member.*` events) makes its
//! streams check once whether it may still listen: there is no polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use super::{CoreResult, Store};
use crate::model::PoolEvent;

/// Events kept for owner streams that are momentarily slow.
pub const HUB_CAPACITY: usize = 8192;
/// Events kept per member channel: a member that falls further behind
/// reads the gap from the database. Small, because every member with an
/// open stream has one.
const MEMBER_CAPACITY: usize = 64;

type EventSender = broadcast::Sender<Arc<PoolEvent>>;

/// Routes events to the channels of the streams that want them.
pub struct EventHub {
    everything: EventSender,
    /// pool id → member id → the channel of that member's streams.
    members: Mutex<HashMap<String, HashMap<String, EventSender>>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            everything: broadcast::channel(HUB_CAPACITY).0,
            members: Mutex::new(HashMap::new()),
        }
    }
}

impl EventHub {
    fn subscribe(&self, filter: &EventFilter) -> broadcast::Receiver<Arc<PoolEvent>> {
        let (Some(member_id), [pool_id]) = (&filter.member_id, filter.pool_ids.as_slice()) else {
            return self.everything.subscribe();
        };
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .entry(pool_id.clone())
            .or_default()
            .entry(member_id.clone())
            .or_insert_with(|| broadcast::channel(MEMBER_CAPACITY).0)
            .subscribe()
    }

    fn publish(&self, event: Arc<PoolEvent>) {
        // No receivers is fine: nobody is listening.
        let _ = self.everything.send(event.clone());
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pool) = members.get_mut(&event.pool_id) else {
            return;
        };
        // A channel whose streams have all ended is dropped when an event
        // finds nobody on it.
        match &event.member_id {
            Some(member_id) => {
                if let Some(channel) = pool.get(member_id)
                    && channel.send(event.clone()).is_err()
                {
                    pool.remove(member_id);
                }
            }
            None => pool.retain(|_, channel| channel.send(event.clone()).is_ok()),
        }
        if pool.is_empty() {
            members.remove(&event.pool_id);
        }
    }
}

/// Which events a stream wants.
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// One pool's id; or, for an owner's feed of all their pools, several
    /// (a member always follows exactly one). Sorted.
    pool_ids: Vec<String>,
    /// A member sees the pool's events and its own; `None` sees all.
    member_id: Option<String>,
}

impl EventFilter {
    /// A member's view of its pool (its own events and the pool's), or
    /// with `None` everything in the pools named.
    pub fn new(mut pool_ids: Vec<String>, member_id: Option<String>) -> Self {
        pool_ids.sort();
        pool_ids.dedup();
        Self {
            pool_ids,
            member_id,
        }
    }

    fn wants(&self, event: &PoolEvent) -> bool {
        self.pool_ids.binary_search(&event.pool_id).is_ok()
            && match (&self.member_id, &event.member_id) {
                (None, _) | (_, None) => true,
                (Some(me), Some(them)) => me == them,
            }
    }

    /// A change to this stream's own member.
    fn changes_me(&self, event: &PoolEvent) -> bool {
        self.member_id.is_some()
            && event.member_id == self.member_id
            && event.kind.is_member_change()
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
    /// The caller should check the member's rights before going on.
    check_rights: bool,
}

type FollowItem = CoreResult<Option<Arc<PoolEvent>>>;

impl Follow {
    /// What to hand on for `event`: the event if it is new and wanted, and
    /// a rights check after a change to this stream's member.
    fn items_for(&mut self, event: Arc<PoolEvent>) -> Vec<FollowItem> {
        let changes_me = self.filter.changes_me(&event);
        let mut items = Vec::new();
        if event.id > self.last && self.filter.wants(&event) {
            items.push(Ok(Some(event.clone())));
        }
        // Events come in id order, so one not wanted is passed for good:
        // a catch-up after lagging starts here, not at the last wanted.
        self.last = self.last.max(event.id);
        if changes_me {
            items.push(Ok(None));
        }
        items
    }
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
                        self.event_hub.publish(Arc::new(event));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event hub read failed"),
            }
            // Other nodes' events are announced where the database can
            // (LISTEN); the poll is what finds them elsewhere, and a
            // safety net where it can.
            let poll = if self.meta.hears_events() {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(250)
            };
            let _ = tokio::time::timeout(poll, written).await;
        }
    }

    /// Events for `filter` after `after`, as they are written. `Err` items
    /// are failed reads. An `Ok(None)` item asks the caller to check that
    /// the member may still listen: one comes first (a change made before
    /// the stream subscribed is then seen), and one after each change to
    /// the member.
    pub fn follow_events(
        &self,
        filter: EventFilter,
        after: i64,
    ) -> impl Stream<Item = FollowItem> + Send + use<> {
        // Subscribed before the first read, so nothing falls between them.
        let follow = Follow {
            receiver: self.event_hub.subscribe(&filter),
            store: self.clone(),
            check_rights: filter.member_id.is_some(),
            filter,
            last: after,
            phase: Phase::CatchUp,
        };
        futures::stream::unfold(follow, |mut f| async move {
            if std::mem::take(&mut f.check_rights) {
                return Some((vec![Ok(None)], f));
            }
            loop {
                match f.phase {
                    Phase::CatchUp => {
                        // One pool's events as a member or owner sees them;
                        // several pools' all together.
                        let page = match f.filter.pool_ids.as_slice() {
                            [pool_id] => {
                                f.store
                                    .meta
                                    .pool_events(
                                        pool_id,
                                        f.filter.member_id.as_deref(),
                                        f.last,
                                        500,
                                    )
                                    .await
                            }
                            pool_ids => f.store.meta.pool_events_in(pool_ids, f.last, 500).await,
                        };
                        match page {
                            Ok(page) if page.is_empty() => f.phase = Phase::Live,
                            Ok(page) => {
                                let items: Vec<FollowItem> = page
                                    .into_iter()
                                    .flat_map(|e| f.items_for(Arc::new(e)))
                                    .collect();
                                if items.is_empty() {
                                    continue;
                                }
                                return Some((items, f));
                            }
                            Err(e) => {
                                // Not at full speed while the database is away.
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                return Some((vec![Err(e.into())], f));
                            }
                        }
                    }
                    Phase::Live => match f.receiver.recv().await {
                        Ok(event) => {
                            let items = f.items_for(event);
                            if !items.is_empty() {
                                return Some((items, f));
                            }
                        }
                        // Fell behind the channel: read the gap, and check
                        // rights, since a change to the member may be in it
                        // below a resume point the client chose.
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            f.phase = Phase::CatchUp;
                            f.check_rights = f.filter.member_id.is_some();
                            if f.check_rights {
                                return Some((Vec::new(), f));
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                }
            }
        })
        .map(futures::stream::iter)
        .flatten()
    }
}
