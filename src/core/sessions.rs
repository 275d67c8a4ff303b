//! Login sessions and login throttling. A session token is random; only its
//! SHA-256 is stored, and a revoked session is a row change, so logout and
//! password changes take effect on every node at once. Failed logins are
//! slowed per user name and per client address with a delay that grows with
//! each failure and is capped, so a real user is never locked out for good.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::{CoreError, CoreResult, Principal, Store, now_ms};
use crate::meta::Mutation;

/// A new session, as the login answer carries it.
#[derive(Debug, Clone)]
pub struct SessionToken {
    pub token: String,
    pub expires_ms: i64,
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Failures allowed before logins slow down.
const FREE_FAILURES: u32 = 5;
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Failures are forgotten after this long without a new one.
const FORGET_AFTER: Duration = Duration::from_secs(900);

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    fn delay(failures: u32) -> Duration {
        if failures < FREE_FAILURES {
            return Duration::ZERO;
        }
        let exponent = (failures - FREE_FAILURES).min(10);
        Duration::from_secs(1u64 << exponent).min(MAX_DELAY)
    }

    /// How long these subjects must still wait before another attempt.
    fn wait(&self, subjects: &[String]) -> Duration {
        let Ok(map) = self.failures.lock() else {
            return Duration::ZERO;
        };
        subjects
            .iter()
            .filter_map(|s| map.get(s))
            .map(|(n, last)| Self::delay(*n).saturating_sub(last.elapsed()))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn failed(&self, subjects: &[String]) {
        if let Ok(mut map) = self.failures.lock() {
            map.retain(|_, (_, last)| last.elapsed() < FORGET_AFTER);
            for subject in subjects {
                let entry = map.entry(subject.clone()).or_insert((0, Instant::now()));
                entry.0 += 1;
                entry.1 = Instant::now();
            }
        }
    }

    fn succeeded(&self, subject: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(subject);
        }
    }
}

impl Store {
    /// Checks a name and password, slowing down repeated failures per name
    /// and per client address.
    pub async fn login_from(
        &self,
        name: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> CoreResult<Principal> {
        let mut subjects = vec![format!("user:{name}")];
        if let Some(addr) = addr {
            subjects.push(format!("addr:{addr}"));
        }
        let wait = self.throttle.wait(&subjects);
        if !wait.is_zero() {
            return Err(CoreError::TooManyAttempts(wait.as_secs().max(1)));
        }
        match self.login(name, password).await {
            Ok(principal) => {
                self.throttle.succeeded(&subjects[0]);
                Ok(principal)
            }
            Err(e @ CoreError::BadLogin) => {
                self.throttle.failed(&subjects);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn open_session(&self, who: &Principal, ttl: Duration) -> CoreResult<SessionToken> {
        let token = format!(
            "cs_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        );
        let created_ms = now_ms();
        let expires_ms = created_ms + ttl.as_millis() as i64;
        self.meta
            .apply(Mutation::CreateSession {
                token_hash: token_hash(&token),
                user_id: who.user_id.clone(),
                created_ms,
                expires_ms,
            })
            .await?;
        Ok(SessionToken { token, expires_ms })
    }

    /// The principal of a live session token.
    pub async fn session_principal(&self, token: &str) -> CoreResult<Principal> {
        let hash = token_hash(token);
        let account = self.meta.session_account(&hash, now_ms()).await?;
        match account {
            Some(a) if a.disabled_ms.is_some() => Err(CoreError::AccountDisabled(a.name)),
            Some(a) => {
                let mut principal = super::accounts::principal_of(&a, None);
                principal.session = Some(hash);
                Ok(principal)
            }
            None => Err(CoreError::BadSession),
        }
    }

    /// Logout: revokes the caller's session.
    pub async fn close_session(&self, who: &Principal) -> CoreResult<()> {
        let Some(session) = &who.session else {
            return Err(CoreError::InvalidRequest(
                "logout needs a session token (Bearer)".into(),
            ));
        };
        self.meta
            .apply(Mutation::RevokeSessions {
                user_id: who.user_id.clone(),
                only: Some(session.clone()),
                keep: None,
                now_ms: now_ms(),
            })
            .await?;
        Ok(())
    }

    /// Revokes every session of a user except the caller's own.
    pub async fn revoke_other_sessions(&self, user_id: &str, keep: Option<&str>) -> CoreResult<()> {
        self.meta
            .apply(Mutation::RevokeSessions {
                user_id: user_id.to_owned(),
                only: None,
                keep: keep.map(str::to_owned),
                now_ms: now_ms(),
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        assert_eq!(LoginThrottle::delay(0), Duration::ZERO);
        assert_eq!(LoginThrottle::delay(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(LoginThrottle::delay(FREE_FAILURES), Duration::from_secs(1));
        assert_eq!(
            LoginThrottle::delay(FREE_FAILURES + 3),
            Duration::from_secs(8)
        );
        assert_eq!(LoginThrottle::delay(FREE_FAILURES + 50), MAX_DELAY);
    }

    #[test]
    fn a_success_clears_the_user_but_not_the_address() {
        let throttle = LoginThrottle::default();
        let subjects = vec!["user:a".to_owned(), "addr:1.2.3.4".to_owned()];
        for _ in 0..FREE_FAILURES + 2 {
            throttle.failed(&subjects);
        }
        assert!(throttle.wait(&subjects) > Duration::ZERO);
        throttle.succeeded("user:a");
        assert!(throttle.wait(&subjects[..1]).is_zero());
        assert!(throttle.wait(&subjects[1..]) > Duration::ZERO);
    }
}
