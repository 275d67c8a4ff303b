//! The HTTP client to a pool's JSON API that every pool command shares:
//! the member's URLs and token, how an unsuccessful answer becomes an error
//! (the member refused, worth waiting out, or final), the backoff between
//! tries, and reading the server's words (reasons, states, event kinds).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use super::Member;

pub(super) struct Client {
    http: reqwest::Client,
    member: Member,
}

/// Failures worth waiting out (the server is away or busy), as opposed to
/// answers that will not change.
pub(super) fn transient(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// The server refuses the member itself: retrying cannot help until the
/// pool's owner acts, so the command stops (exit code 77).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Refused(pub(super) String);

/// An unsuccessful answer as an error: a [`Refused`] for 401 and 403,
/// otherwise what was asked with the status and the server's message.
pub(super) async fn failure(response: reqwest::Response, what: &str) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match refusal(status, &body) {
        Some(refused) => refused.into(),
        None => anyhow::anyhow!(
            "{what}: {status}: {}",
            body["error"]["message"].as_str().unwrap_or("no details")
        ),
    }
}

/// The refusal in an answer of 401 or 403 (with its JSON error body),
/// told in the owner's terms.
pub(super) fn refusal(status: reqwest::StatusCode, body: &Value) -> Option<Refused> {
    if !matches!(
        status,
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN
    ) {
        return None;
    }
    let why = match body["error"]["code"].as_str() {
        Some("account_disabled") => "this member was disabled by the pool owner".to_owned(),
        _ if status == reqwest::StatusCode::UNAUTHORIZED => {
            "the server does not know this member's token \
             (the pool owner removed the member or gave it a new token)"
                .to_owned()
        }
        _ => format!(
            "the server refused this member ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("no details")
        ),
    };
    Some(Refused(why))
}

impl Client {
    pub(super) fn new(member: Member) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
            member,
        })
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/pools/{}{path}",
            self.member.server.trim_end_matches('/'),
            self.member.pool
        )
    }

    /// The pool's event stream.
    pub(super) fn events_url(&self) -> String {
        format!(
            "{}/api/v1/events?pool={}",
            self.member.server.trim_end_matches('/'),
            self.member.pool
        )
    }

    pub(super) fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.member.token)
    }
}

/// Doubling waits from 1 s to 60 s, and the deadline to give up at.
pub(super) struct Backoff {
    next: Duration,
    give_up: Option<tokio::time::Instant>,
}

impl Backoff {
    pub(super) fn new(give_up: Option<Duration>) -> Self {
        Self {
            next: Duration::from_secs(1),
            give_up: give_up.map(|d| tokio::time::Instant::now() + d),
        }
    }

    /// Waits before the next try; false when it is time to give up.
    pub(super) async fn wait(&mut self, why: &str) -> bool {
        if self
            .give_up
            .is_some_and(|at| tokio::time::Instant::now() + self.next > at)
        {
            return false;
        }
        eprintln!("{why}; retrying in {} s", self.next.as_secs());
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(60));
        true
    }

    pub(super) fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }
}
/// A word the server sent (a refusal reason, a group state, an event
/// kind) as this CLI's enum; `None` when it is missing or a word that a
/// newer server knows and this CLI does not, which callers treat like any
/// other word they do not act on.
pub(super) fn word<T: FromStr>(value: &Value) -> Option<T> {
    value.as_str().and_then(|text| text.parse().ok())
}

/// Writes an answer's body into a new file at `path` as it arrives; answers
/// the file, not yet synced.
pub(super) async fn save_body(
    response: reqwest::Response,
    path: &Path,
) -> anyhow::Result<tokio::fs::File> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk?).await?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::word;
    use crate::model::{GroupState, PoolEventKind, RefusalReason};

    #[test]
    fn words_this_cli_does_not_know_are_none_not_errors() {
        assert_eq!(word(&json!("sealed")), Some(GroupState::Sealed));
        assert_eq!(
            word(&json!("quota_exceeded")),
            Some(RefusalReason::QuotaExceeded)
        );
        assert_eq!(
            word(&json!("group.published")),
            Some(PoolEventKind::GroupPublished)
        );
        // A newer server's word, a missing field, a value of another type.
        assert_eq!(word::<GroupState>(&json!("archived")), None);
        assert_eq!(word::<RefusalReason>(&serde_json::Value::Null), None);
        assert_eq!(word::<PoolEventKind>(&json!(7)), None);
    }
}
