//! Delivery of pool events to each pool's webhook: in event order, one at
//! a time per pool, signed with HMAC-SHA256 of the body, retried with
//! doubling waits for at least 24 hours, and every attempt recorded for the
//! pool's owner to see.
//!
//! One node delivers; nodes sharing a database would each deliver (the
//! receiver sees duplicates, told apart by `x-cistern-event-id`).

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Store, now_ms};
use crate::meta::pools::{PoolEvent, PoolMutation, PoolRecord, WebhookAttempt};

/// How long an event is retried before the webhook moves past it.
const GIVE_UP_AFTER_MS: i64 = 25 * 3600 * 1000;
/// The longest wait between two attempts.
const MAX_RETRY_WAIT_MS: i64 = 3600 * 1000;

#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// The wait after the first failed attempt; it doubles after each.
    pub retry_base: Duration,
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
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
        {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for webhooks");
                return;
            }
        };
        let mut pending: HashMap<String, Pending> = HashMap::new();
        loop {
            let signal = self.pool_event_signal();
            let written = signal.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let mut soonest = now_ms() + 1000;
            match self.meta.pools_with_webhooks().await {
                Ok(pools) => {
                    for pool in pools {
                        if let Some(next) = self
                            .deliver_next(&http, &pool, &mut pending, settings)
                            .await
                        {
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

    /// Tries the pool's next event if it is due; answers when to look
    /// again (`None`: nothing waiting).
    async fn deliver_next(
        &self,
        http: &reqwest::Client,
        pool: &PoolRecord,
        pending: &mut HashMap<String, Pending>,
        settings: WebhookSettings,
    ) -> Option<i64> {
        let url = pool.webhook_url.as_deref()?;
        let event = match self
            .meta
            .pool_events(&pool.id, None, pool.webhook_cursor, 1)
            .await
        {
            Ok(mut events) => events.pop()?,
            Err(e) => {
                tracing::warn!(error = %e, "reading events for a webhook failed");
                return None;
            }
        };
        let now = now_ms();
        let state = pending.entry(pool.id.clone()).or_insert(Pending {
            event_id: event.id,
            attempts: 0,
            next_try_ms: now,
        });
        if state.event_id != event.id {
            *state = Pending {
                event_id: event.id,
                attempts: 0,
                next_try_ms: now,
            };
        }
        if state.next_try_ms > now {
            return Some(state.next_try_ms);
        }
        let body = event_json(&event, &pool.name).to_string();
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-cistern-event", &event.kind)
            .header("x-cistern-event-id", event.id.to_string())
            .body(body.clone());
        if let Some(secret) = &pool.webhook_secret {
            request = request.header("x-cistern-signature", signature(secret, body.as_bytes()));
        }
        state.attempts += 1;
        let (status, error) = match request.send().await {
            Ok(response) if response.status().is_success() => {
                (Some(i64::from(response.status().as_u16())), None)
            }
            Ok(response) => (
                Some(i64::from(response.status().as_u16())),
                Some(format!("the receiver answered {}", response.status())),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        let delivered = error.is_none();
        let gave_up = !delivered && now - event.time_ms > GIVE_UP_AFTER_MS;
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
        };
        let recorded = self
            .meta
            .apply(crate::meta::Mutation::Pool(Box::new(
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
            pending.remove(&pool.id);
            // The next event may be waiting already.
            return Some(now);
        }
        let doubling = 1_i64 << (state.attempts - 1).min(30);
        let wait = (settings.retry_base.as_millis() as i64)
            .saturating_mul(doubling)
            .min(MAX_RETRY_WAIT_MS);
        state.next_try_ms = now + wait;
        Some(state.next_try_ms)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
