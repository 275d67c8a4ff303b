//! Password work, bounded: argon2id hashing and checking costs about 19 MiB
//! and tens of milliseconds each, so it runs on blocking threads, at most a
//! set number at once; callers that wait in the queue longer than a set
//! time are refused as busy. A name and password that checked out are
//! remembered briefly, keyed by a keyed hash (never the password itself),
//! so a client that sends HTTP Basic with every request does not pay for a
//! hash every time, and checks of the same name and password sent side by
//! side take turns, so all but the first find the answer remembered.
//! Unknown names are checked against a hash of a random password, so they
//! cost the same as known ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{OnceCell, Semaphore};

use super::recent_lookups::RecentLookups;
use super::{CoreError, CoreResult, Principal};

/// How long a checked name and password are trusted without hashing again.
/// Any account change on this node, or a newer accounts version written by
/// another node sharing the database, forgets them all at once.
const REMEMBER_FOR: Duration = Duration::from_secs(30);
/// Beyond this many remembered credentials the memory starts over.
const REMEMBER_AT_MOST: usize = 10_000;

pub struct Passwords {
    slots: Arc<Semaphore>,
    queue_wait: Duration,
    /// Key of the hash under which checked credentials are remembered;
    /// random per process.
    remember_key: [u8; 32],
    remembered: RecentLookups<[u8; 32], Principal>,
    /// The turns of checks in progress, by the same key as `remembered`.
    checking: CheckTurns,
    /// The hash that unknown names are checked against.
    decoy: OnceCell<String>,
}

/// The turn of each name and password being checked, by its key.
type CheckTurns = Arc<std::sync::Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>>;

/// The turn to check one name and password; the next caller with the same
/// ones waits until it is dropped.
pub struct CheckTurn {
    slot: [u8; 32],
    checking: CheckTurns,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for CheckTurn {
    fn drop(&mut self) {
        let Some(turn) = self.turn.take() else {
            return;
        };
        // Counted with the map locked, so that no other turn can be taken
        // or given back meanwhile: the map's reference and this guard's
        // are the only ones when nobody else waits.
        let mut checking = self.checking.lock().unwrap_or_else(|e| e.into_inner());
        let nobody_waits = Arc::strong_count(tokio::sync::OwnedMutexGuard::mutex(&turn)) <= 2;
        drop(turn);
        if nobody_waits {
            checking.remove(&self.slot);
        }
    }
}

impl Passwords {
    /// `concurrency` 0 means one check per CPU core.
    pub fn new(concurrency: usize, queue_wait: Duration) -> Self {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            concurrency
        };
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            queue_wait,
            remember_key: rand::random(),
            remembered: RecentLookups::new(REMEMBER_FOR, REMEMBER_AT_MOST),
            checking: Arc::default(),
            decoy: OnceCell::new(),
        }
    }

    /// Runs `work` on a blocking thread once a slot is free.
    async fn bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> CoreResult<T> {
        let slot = tokio::time::timeout(self.queue_wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                metrics::counter!("cistern_password_checks_refused_total").increment(1);
                CoreError::Busy("too many password checks waiting")
            })?
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        // The slot goes with the work: a caller that hangs up (and drops
        // this future) does not free it while the hash still runs.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))
    }

    /// A new argon2id hash of `password`.
    pub async fn hash(&self, password: &str) -> CoreResult<String> {
        let password = password.to_owned();
        self.bounded(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| CoreError::Internal(format!("password hashing: {e}")))
        })
        .await?
    }

    /// Whether `password` matches `hash`; `None` (an unknown name) checks
    /// against a decoy and answers no.
    pub async fn matches(&self, password: &str, hash: Option<&str>) -> CoreResult<bool> {
        let (hash, known) = match hash {
            Some(hash) => (hash.to_owned(), true),
            None => {
                let decoy = self
                    .decoy
                    .get_or_try_init(|| {
                        let random = hex::encode(rand::random::<[u8; 16]>());
                        async move { self.hash(&random).await }
                    })
                    .await?;
                (decoy.clone(), false)
            }
        };
        let password = password.to_owned();
        let ok = self
            .bounded(move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        Ok(ok && known)
    }

    fn slot(&self, name: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.remember_key)
            .expect("HMAC takes keys of any length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Waits for the turn to check this name and password: a login
    /// throttle counts each check as a failure until it succeeds, so the
    /// same correct credentials sent many times at once (a client's
    /// parallel requests when the memory of them has lapsed) would
    /// otherwise look like guessing.
    /// The wait is bounded like the hashing queue's.
    pub async fn turn_to_check(&self, name: &str, password: &str) -> CoreResult<CheckTurn> {
        let slot = self.slot(name, password);
        let lock = {
            let mut checking = self.checking.lock().unwrap_or_else(|e| e.into_inner());
            checking.entry(slot).or_default().clone()
        };
        let turn = tokio::time::timeout(self.queue_wait, lock.lock_owned())
            .await
            .map_err(|_| CoreError::Busy("too many password checks waiting"))?;
        Ok(CheckTurn {
            slot,
            checking: self.checking.clone(),
            turn: Some(turn),
        })
    }

    /// The principal of a name and password that checked out lately.
    pub fn remembered(&self, name: &str, password: &str) -> Option<Principal> {
        self.remembered.get(&self.slot(name, password))
    }

    /// The current generation, to hand back to [`Passwords::remember`].
    pub fn generation(&self) -> u64 {
        self.remembered.generation()
    }

    /// Remembers a check that began at `generation`, unless an account
    /// changed since.
    pub fn remember(&self, name: &str, password: &str, principal: &Principal, generation: u64) {
        self.remembered
            .store(self.slot(name, password), principal.clone(), generation);
    }

    /// Forgets every remembered credential (an account changed).
    pub fn forget_all(&self) {
        self.remembered.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone() -> Principal {
        Principal {
            user_id: "u1".into(),
            name: "alice".into(),
            role: crate::model::Role::User,
            access_key: String::new(),
            read_only: false,
            key_buckets: None,
            session: None,
        }
    }

    #[tokio::test]
    async fn hashes_check_and_unknown_names_never_match() {
        let passwords = Passwords::new(1, Duration::from_secs(5));
        let hash = passwords.hash("right-password").await.expect("hash");
        assert!(!hash.contains("right-password"));
        assert!(
            passwords
                .matches("right-password", Some(&hash))
                .await
                .unwrap()
        );
        assert!(!passwords.matches("wrong", Some(&hash)).await.unwrap());
        assert!(!passwords.matches("anything", None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy() {
        let passwords = Passwords::new(1, Duration::from_millis(1));
        let _held = passwords.slots.acquire().await.expect("slot");
        assert!(matches!(
            passwords.hash("password").await,
            Err(CoreError::Busy(_))
        ));
    }

    #[test]
    fn remembered_by_name_and_password_until_forgotten() {
        let passwords = Passwords::new(1, Duration::from_secs(1));
        let before_a_change = passwords.generation();
        passwords.remember("alice", "pw-one", &someone(), before_a_change);
        assert_eq!(passwords.remembered("alice", "pw-one"), Some(someone()));
        assert_eq!(passwords.remembered("alice", "pw-two"), None);
        assert_eq!(passwords.remembered("alicepw", "-one"), None);
        passwords.forget_all();
        assert_eq!(passwords.remembered("alice", "pw-one"), None);
        passwords.remember("alice", "pw-one", &someone(), before_a_change);
        assert_eq!(
            passwords.remembered("alice", "pw-one"),
            None,
            "a check that began before the change is not remembered"
        );
    }
}
