//! Deliveries of a JetStream message that an open breaker spent (by nak'ing it
//! unhandled), per stream sequence, so they are not counted as failed attempts.
//! Kept in memory: after a restart (or on another host) they count again, so a
//! message the breaker held back many times may be dead-lettered early there.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept at most; the oldest knowledge is dropped wholesale beyond it.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
pub struct BreakerNaks(Mutex<HashMap<u64, u64>>);

impl BreakerNaks {
    pub fn bump(&self, sequence: u64) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
        *map.entry(sequence).or_default() += 1;
    }

    pub fn get(&self, sequence: u64) -> u64 {
        self.lock().get(&sequence).copied().unwrap_or(0)
    }

    pub fn remove(&self, sequence: u64) {
        self.lock().remove(&sequence);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
