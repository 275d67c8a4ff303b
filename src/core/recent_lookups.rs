//! A small memory of recent lookups that an account change must be able to
//! wipe at once, used for checked passwords and looked-up access keys.
//! Entries live for a set time; beyond a set count the memory starts over.
//! Every wipe bumps a generation, and a lookup stores what it read only if
//! no wipe happened since it began: a lookup that read the database before
//! a change cannot store its outdated answer after the wipe.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct RecentLookups<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    generation: AtomicU64,
    keep_for: Duration,
    at_most: usize,
}

impl<K: Eq + Hash, V: Clone> RecentLookups<K, V> {
    pub fn new(keep_for: Duration, at_most: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            keep_for,
            at_most,
        }
    }

    /// What was stored under `key`, if it is recent enough.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (value, at) = entries.get(key)?;
        (at.elapsed() < self.keep_for).then(|| value.clone())
    }

    /// To take before a lookup and hand back to [`RecentLookups::store`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Stores what a lookup that began at `generation` read, unless the
    /// memory was wiped since.
    pub fn store(&self, key: K, value: V, generation: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if self.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            if entries.len() >= self.at_most {
                let keep_for = self.keep_for;
                entries.retain(|_, (_, at)| at.elapsed() < keep_for);
                if entries.len() >= self.at_most {
                    entries.clear();
                }
            }
            entries.insert(key, (value, Instant::now()));
        }
    }

    /// Forgets everything (an account changed).
    pub fn forget_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.clear();
        }
    }
}
