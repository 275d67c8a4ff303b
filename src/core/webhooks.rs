//! Delivery of pool events to each pool's webhook: in event order, one at
//! a time per pool (pools side by side, so one slow receiver holds up only
//! its own pool), signed with HMAC-SHA256 of the body, retried with
//! doubling waits for at least 24 hours, and every attempt recorded for the
//! pool's owner to see. Only public addresses are called unless the
//! operator allows private ones, and redirects are not followed, so a pool
//! owner cannot make the server reach internal services.
//!
//! Nodes sharing a database take turns: a node delivers a pool's webhook
//! under a lease on the pool row that it renews while it runs, and another
//! node takes over once it lapses. A receiver may still see an event twice
//! around a takeover, told apart by `x-cistern-event-id`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Store, now_ms};
use crate::core::meta::pools::PoolMutation;
use crate::model::{PoolEvent, PoolRecord, WebhookAttempt};

/// How long an event is retried before the webhook moves past it.
const GIVE_UP_AFTER_MS: i64 = 25 * 3600 * 1000;
/// The longest wait between two attempts.
const MAX_RETRY_WAIT_MS: i64 = 3600 * 1000;
/// Pools whose webhooks are called at the same time.
const PARALLEL_POOLS: usize = 32;
/// How long a node's turn at a pool's webhook lasts unless renewed.
const TURN_MS: i64 = 30_000;
/// A turn is renewed when less than this is left of it.
const RENEW_TURN_MS: i64 = 20_000;

#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// The wait after the first failed attempt; it doubles after each.
    pub retry_base: Duration,
    /// Call loopback and private addresses too.
    pub allow_private: bool,
}

/// An address on the public internet: not loopback, private, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let [first, second, ..] = v6.segments();
            // Prefixes that carry or reach IPv4 addresses (IPv4-compatible,
            // NAT64, 6to4) are refused whole: they may lead inside.
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2001 && second == 0x0db8
                || first == 0x2002
                || first == 0x0064 && second == 0xff9b
                || v6.segments()[..6].iter().all(|&s| s == 0))
        }
    }
}

/// Resolves names to their public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    format!("{host} has no public address (see --webhook-allow-private)").into(),
                );
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Why a webhook URL may not be called, if it names a non-public address
/// directly (names are checked when they are resolved).
fn refused_address(url: &str, settings: WebhookSettings) -> Option<String> {
    if settings.allow_private {
        return None;
    }
    let host = url::Url::parse(url).ok()?.host()?.to_owned();
    let ip = match host {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    (!is_public(ip)).then(|| {
        format!(
            "{ip} is not a public address; the operator can allow it with --webhook-allow-private"
        )
    })
}

/// The event as receivers (webhooks, event streams) get it.
pub fn event_json(event: &PoolEvent, pool: &str) -> serde_json::Value {
    serde_json::json!({
        "id": event.id,
        "kind": event.kind,
        "pool": pool,
        "group": event.group_start_ms.map(super::pools::rfc3339),
        "time": super::pools::rfc3339(event.time_ms),
        "data": serde_json::from_str::<serde_json::Value>(&event.data)
            .unwrap_or(serde_json::Value::Null),
    })
}

/// `sha256=<hex>` of the body under the pool's secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Where a pool's webhook stands with its next event.
struct Pending {
    event_id: i64,
    attempts: i64,
    next_try_ms: i64,
}

impl Store {
    /// Delivers webhook events forever.
    pub async fn run_webhooks(self, settings: WebhookSettings) {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, past the address check.
            .no_proxy();
        if !settings.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let http = match builder.build() {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for webhooks");
                return;
            }
        };
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let node = uuid::Uuid::new_v4().simple().to_string();
        // Pool id → when this node's turn at its webhook ends.
        let mut turns: HashMap<String, i64> = HashMap::new();
        loop {
            let signal = self.pool_event_signal();
            let written = signal.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let mut soonest = now_ms() + 1000;
            match self.meta.pools_with_webhooks().await {
                Ok(pools) => {
                    let due: Vec<(PoolRecord, Option<Pending>, Option<i64>)> = pools
                        .into_iter()
                        .map(|pool| {
                            let state = pending.remove(&pool.id);
                            let turn = turns.remove(&pool.id);
                            (pool, state, turn)
                        })
                        .collect();
                    // What is left belongs to pools that lost their webhook.
                    pending.clear();
                    turns.clear();
                    let (store, http, node) = (&self, &http, node.as_str());
                    let tries = due.into_iter().map(|(pool, state, turn)| async move {
                        let turn = store.my_turn(&pool.id, node, turn).await;
                        // Another node's turn: the retry state waits for ours.
                        let (state, next) = match turn {
                            Some(_) => store.deliver_next(http, &pool, state, settings).await,
                            None => (state, None),
                        };
                        (pool.id, state, next, turn)
                    });
                    let mut tries = futures::stream::iter(tries).buffer_unordered(PARALLEL_POOLS);
                    while let Some((pool_id, state, next, turn)) = tries.next().await {
                        if let Some(until) = turn {
                            turns.insert(pool_id.clone(), until);
                        }
                        if let Some(state) = state {
                            pending.insert(pool_id, state);
                        }
                        if let Some(next) = next {
                            soonest = soonest.min(next);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing webhooks failed"),
            }
            let wait = (soonest - now_ms()).clamp(0, 1000) as u64;
            let _ = tokio::time::timeout(Duration::from_millis(wait), written).await;
        }
    }

    /// Until when this node delivers the pool's webhook (`None`: another
    /// node does), taking or renewing its turn (ending at `turn`) when
    /// needed.
    async fn my_turn(&self, pool_id: &str, node: &str, turn: Option<i64>) -> Option<i64> {
        let now = now_ms();
        if turn.is_some_and(|until| until - now > RENEW_TURN_MS) {
            return turn;
        }
        let taken = self
            .meta
            .apply(crate::core::meta::Mutation::Pool(Box::new(
                PoolMutation::TakeWebhook {
                    pool_id: pool_id.to_owned(),
                    node: node.to_owned(),
                    now_ms: now,
                    until_ms: now + TURN_MS,
                },
            )))
            .await;
        match taken {
            Ok(_) => Some(now + TURN_MS),
            Err(e) => {
                if !e.is_refusal() {
                    tracing::warn!(error = %e, "taking a webhook turn failed");
                }
                None
            }
        }
    }

    /// Tries the pool's next event if it is due; answers where the pool's
    /// webhook stands and when to look again (`None`: nothing waiting).
    async fn deliver_next(
        &self,
        http: &reqwest::Client,
        pool: &PoolRecord,
        state: Option<Pending>,
        settings: WebhookSettings,
    ) -> (Option<Pending>, Option<i64>) {
        let Some(url) = pool.webhook_url.as_deref() else {
            return (None, None);
        };
        let event = match self
            .meta
            .pool_events(&pool.id, None, pool.webhook_cursor, 1)
            .await
        {
            Ok(mut events) => match events.pop() {
                Some(event) => event,
                None => return (None, None),
            },
            Err(e) => {
                tracing::warn!(error = %e, "reading events for a webhook failed");
                return (state, None);
            }
        };
        let now = now_ms();
        let mut state = match state {
            Some(state) if state.event_id == event.id => state,
            _ => Pending {
                event_id: event.id,
                attempts: 0,
                next_try_ms: now,
            },
        };
        if state.next_try_ms > now {
            let next = state.next_try_ms;
            return (Some(state), Some(next));
        }
        let body = event_json(&event, &pool.name).to_string();
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-cistern-event", event.kind.as_str())
            .header("x-cistern-event-id", event.id.to_string())
            .body(body.clone());
        if let Some(secret) = &pool.webhook_secret {
            let signed = signature(secret.expose(), body.as_bytes());
            request = request.header("x-cistern-signature", signed);
        }
        state.attempts += 1;
        let sent = match refused_address(url, settings) {
            Some(refusal) => Err(refusal),
            // The error's sources say why (a refused address, say).
            None => request.send().await.map_err(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text = format!("{text}: {cause}");
                    source = cause.source();
                }
                text
            }),
        };
        let (status, error) = match sent {
            Ok(response) if response.status().is_success() => {
                (Some(i64::from(response.status().as_u16())), None)
            }
            Ok(response) => (
                Some(i64::from(response.status().as_u16())),
                Some(format!("the receiver answered {}", response.status())),
            ),
            Err(e) => (None, Some(e)),
        };
        let delivered = error.is_none();
        let gave_up = !delivered && now - event.time_ms > GIVE_UP_AFTER_MS;
        let doubling = 1_i64 << (state.attempts - 1).min(30);
        let wait = (settings.retry_base.as_millis() as i64)
            .saturating_mul(doubling)
            .min(MAX_RETRY_WAIT_MS);
        state.next_try_ms = now + wait;
        let attempt = WebhookAttempt {
            event_id: event.id,
            attempt: state.attempts,
            time_ms: now,
            status,
            error: if gave_up {
                error.map(|e| format!("{e}; gave up after 24 h of attempts"))
            } else {
                error
            },
            delivered,
            next_try_ms: (!delivered && !gave_up).then_some(state.next_try_ms),
        };
        let recorded = self
            .meta
            .apply(crate::core::meta::Mutation::Pool(Box::new(
                PoolMutation::WebhookAttempt {
                    pool_id: pool.id.clone(),
                    attempt,
                    done: delivered || gave_up,
                },
            )))
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "recording a webhook attempt failed");
        }
        if delivered || gave_up {
            // The next event may be waiting already.
            return (None, Some(now));
        }
        let next = state.next_try_ms;
        (Some(state), Some(next))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "fec0::1",
        ] {
            assert!(!super::is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(super::is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
