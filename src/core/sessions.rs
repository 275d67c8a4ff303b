//! Login sessions and login throttling. A session token is random; only its
//! SHA-256 is stored, and a revoked session is a row change, so logout and
//! password changes take effect on every node at once. Failed logins are
//! slowed per user name at a client address and per address, with a delay
//! that grows with each failure and is capped; failures elsewhere never
//! slow a user's own address, so nobody can lock a user out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::{CoreError, CoreResult, Principal, Store, now_ms};
use crate::core::meta::Mutation;

/// A new session, as the login answer carries it.
#[derive(Debug, Clone)]
pub struct SessionToken {
    pub token: String,
    pub expires_ms: i64,
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Failures of one name from one address before that pair slows down.
const FREE_PER_NAME_AND_ADDRESS: u32 = 5;
/// Failures from one address, whatever the names, before it slows down.
const FREE_PER_ADDRESS: u32 = 20;
/// Failures of one name, from anywhere, that make it a name under attack:
/// from then on each address slows down from its first failure on it.
const UNDER_ATTACK: u32 = 20;
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Failures are forgotten after this long without a new one.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Counters kept before forgotten ones are swept out.
const SWEEP_AT: usize = 4096;

/// Counts failed logins and says how long a caller must wait. Failures
/// count against the name at an address and against the address, never
/// against the name alone, so nobody can lock a user out by failing on
/// purpose: the owner's own address keeps working.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// The counters one login attempt touches.
struct Subjects {
    name_at_address: String,
    address: String,
    name: String,
}

impl Subjects {
    fn new(name: &str, addr: Option<IpAddr>) -> Self {
        let address = addr.map_or_else(|| "unknown".to_owned(), |a| network_of(a.to_canonical()));
        Self {
            name_at_address: format!("{name}@{address}"),
            address: format!("addr:{address}"),
            name: format!("name:{name}"),
        }
    }
}

/// The network an address counts for: an IPv4 address alone, an IPv6
/// address with its /64 (one host commonly holds a whole /64, so single
/// addresses would give it endless fresh counters).
fn network_of(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl LoginThrottle {
    fn delay(failures: u32, free: u32) -> Duration {
        if failures < free.max(1) {
            return Duration::ZERO;
        }
        let exponent = (failures - free.max(1)).min(10);
        Duration::from_secs(1u64 << exponent).min(MAX_DELAY)
    }

    /// How long the caller must still wait before another attempt.
    #[cfg(test)]
    fn wait(&self, subjects: &Subjects) -> Duration {
        self.failures
            .lock()
            .map_or(Duration::ZERO, |map| Self::owed(&map, subjects))
    }

    fn owed(map: &HashMap<String, (u32, Instant)>, subjects: &Subjects) -> Duration {
        let count = |key: &str| {
            map.get(key)
                .copied()
                .filter(|(_, last)| last.elapsed() < FORGET_AFTER)
        };
        let remaining = |entry: Option<(u32, Instant)>, free: u32| {
            entry.map_or(Duration::ZERO, |(n, last)| {
                Self::delay(n, free).saturating_sub(last.elapsed())
            })
        };
        let under_attack = count(&subjects.name).is_some_and(|(n, _)| n >= UNDER_ATTACK);
        let pair_free = if under_attack {
            1
        } else {
            FREE_PER_NAME_AND_ADDRESS
        };
        remaining(count(&subjects.name_at_address), pair_free)
            .max(remaining(count(&subjects.address), FREE_PER_ADDRESS))
    }

    /// Starts an attempt: refuses it with the wait still owed, or counts
    /// it as a failure at once, in the same locked step, so that attempts
    /// sent side by side cannot all pass before the first one fails.
    fn begin(&self, subjects: &Subjects) -> Result<(), Duration> {
        let Ok(mut map) = self.failures.lock() else {
            return Ok(());
        };
        let wait = Self::owed(&map, subjects);
        if !wait.is_zero() {
            return Err(wait);
        }
        // Forgotten entries are skipped when read; sweeping them out costs a
        // pass over the map, so it waits until the map has grown.
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, last)| last.elapsed() < FORGET_AFTER);
        }
        Self::count_failure(&mut map, subjects);
        Ok(())
    }

    fn count_failure(map: &mut HashMap<String, (u32, Instant)>, subjects: &Subjects) {
        for key in [&subjects.name_at_address, &subjects.address, &subjects.name] {
            let entry = map.entry(key.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= FORGET_AFTER {
                entry.0 = 0;
            }
            entry.0 += 1;
            entry.1 = Instant::now();
        }
    }

    /// Takes back the failure counted by [`LoginThrottle::begin`] for an
    /// attempt that did not fail; a success also clears the pair.
    fn not_a_failure(&self, subjects: &Subjects, succeeded: bool) {
        if let Ok(mut map) = self.failures.lock() {
            for key in [&subjects.address, &subjects.name, &subjects.name_at_address] {
                if let Some(entry) = map.get_mut(key.as_str()) {
                    entry.0 = entry.0.saturating_sub(1);
                }
            }
            if succeeded {
                map.remove(&subjects.name_at_address);
            }
        }
    }

    /// A failure whose wait had passed (tests leave no time between them).
    #[cfg(test)]
    fn failed(&self, subjects: &Subjects) {
        if let Ok(mut map) = self.failures.lock() {
            Self::count_failure(&mut map, subjects);
        }
    }
}

impl Store {
    /// Checks an S3 access key and its secret, sent as HTTP Basic by the
    /// backup commands to report their runs (all they hold), under the same
    /// throttle as passwords. Only that route takes them: a key may be
    /// read-only or held to some buckets, and must not open the account.
    pub async fn login_with_key(
        &self,
        access_key: &str,
        secret: &str,
        addr: Option<IpAddr>,
    ) -> CoreResult<Principal> {
        use sha2::Digest;
        let subjects = Subjects::new(access_key, addr);
        if let Err(wait) = self.throttle.begin(&subjects) {
            return Err(CoreError::TooManyAttempts(wait.as_secs().max(1)));
        }
        match self.credentials(access_key).await {
            Ok(Some((principal, expected)))
                if sha2::Sha256::digest(expected.as_bytes())
                    == sha2::Sha256::digest(secret.as_bytes()) =>
            {
                self.throttle.not_a_failure(&subjects, true);
                Ok(principal)
            }
            Ok(_) => Err(CoreError::BadLogin),
            Err(e) => {
                self.throttle.not_a_failure(&subjects, false);
                Err(e)
            }
        }
    }

    /// Checks a name and password, slowing down repeated failures (see
    /// [`LoginThrottle`]). A name and password that checked out lately are
    /// accepted without hashing again.
    pub async fn login_from(
        &self,
        name: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> CoreResult<Principal> {
        self.catch_up_with_accounts().await?;
        if let Some(principal) = self.passwords.remembered(name, password) {
            return Ok(principal);
        }
        let _turn = self.passwords.turn_to_check(name, password).await?;
        // Whoever had the turn before may have checked these already.
        if let Some(principal) = self.passwords.remembered(name, password) {
            return Ok(principal);
        }
        let subjects = Subjects::new(name, addr);
        if let Err(wait) = self.throttle.begin(&subjects) {
            return Err(CoreError::TooManyAttempts(wait.as_secs().max(1)));
        }
        let generation = self.passwords.generation();
        match self.login(name, password).await {
            Ok(principal) => {
                self.throttle.not_a_failure(&subjects, true);
                self.passwords
                    .remember(name, password, &principal, generation);
                Ok(principal)
            }
            Err(e @ CoreError::BadLogin) => Err(e),
            Err(e) => {
                self.throttle.not_a_failure(&subjects, false);
                Err(e)
            }
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
                token_hash: token_hash(&token).into(),
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
        let free = FREE_PER_NAME_AND_ADDRESS;
        assert_eq!(LoginThrottle::delay(0, free), Duration::ZERO);
        assert_eq!(LoginThrottle::delay(free - 1, free), Duration::ZERO);
        assert_eq!(LoginThrottle::delay(free, free), Duration::from_secs(1));
        assert_eq!(LoginThrottle::delay(free + 3, free), Duration::from_secs(8));
        assert_eq!(LoginThrottle::delay(free + 50, free), MAX_DELAY);
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("an address"))
    }

    #[test]
    fn failures_elsewhere_never_lock_the_owner_out() {
        let throttle = LoginThrottle::default();
        let attacker = Subjects::new("alice", ip("10.0.0.9"));
        for _ in 0..FREE_PER_NAME_AND_ADDRESS + 2 {
            throttle.failed(&attacker);
        }
        assert!(throttle.wait(&attacker) > Duration::ZERO);
        assert!(
            throttle
                .wait(&Subjects::new("alice", ip("10.0.0.1")))
                .is_zero()
        );
    }

    #[test]
    fn a_success_clears_the_pair_but_not_the_address() {
        let throttle = LoginThrottle::default();
        let pair = Subjects::new("alice", ip("10.0.0.2"));
        for _ in 0..FREE_PER_NAME_AND_ADDRESS + 2 {
            throttle.failed(&pair);
        }
        throttle.not_a_failure(&pair, true);
        assert!(throttle.wait(&pair).is_zero());
        for _ in 0..FREE_PER_ADDRESS {
            throttle.failed(&Subjects::new("bob", ip("10.0.0.2")));
        }
        assert!(
            throttle.wait(&Subjects::new("carol", ip("10.0.0.2"))) > Duration::ZERO,
            "an address that tries many names slows down for all of them"
        );
    }

    #[test]
    fn attempts_side_by_side_count_before_they_finish() {
        let throttle = LoginThrottle::default();
        let pair = Subjects::new("alice", ip("10.3.0.1"));
        for _ in 0..FREE_PER_NAME_AND_ADDRESS {
            assert!(throttle.begin(&pair).is_ok());
        }
        assert!(
            throttle.begin(&pair).is_err(),
            "the sixth attempt in flight waits"
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_network() {
        let a = Subjects::new("alice", ip("2001:db8:1:2::1"));
        let b = Subjects::new("alice", ip("2001:db8:1:2:ffff::9"));
        assert_eq!(a.address, b.address);
        let mapped = Subjects::new("alice", ip("::ffff:10.0.0.7"));
        assert_eq!(mapped.address, "addr:10.0.0.7");
    }

    #[test]
    fn a_name_under_attack_slows_each_failing_address_at_once() {
        let throttle = LoginThrottle::default();
        for i in 0..UNDER_ATTACK {
            throttle.failed(&Subjects::new("alice", ip(&format!("10.1.0.{i}"))));
        }
        assert!(throttle.wait(&Subjects::new("alice", ip("10.1.0.3"))) > Duration::ZERO);
        assert!(
            throttle
                .wait(&Subjects::new("alice", ip("10.2.0.1")))
                .is_zero()
        );
    }
}
