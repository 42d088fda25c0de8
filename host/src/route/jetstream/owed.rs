//! JetStream messages that failed for good but whose dead letter could not be
//! stored (the dead-letter stream unavailable), per stream sequence. Such a
//! message is nak'd, never given up (the server's `max_deliver` is unlimited),
//! and when it comes back it goes straight to the dead letter with its
//! original reason and plugin version, without calling the plugin again.
//! Kept in memory: on another host, or after a restart, the plugin is called
//! once more, fails again, and the dead letter is written then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::plugin::Plugin;

/// Entries kept at most; beyond it the oldest knowledge is dropped wholesale
/// (the message is then handled once more, as after a restart).
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct OwedDeadLetters(Mutex<HashMap<u64, (Arc<Plugin>, String)>>);

impl OwedDeadLetters {
    pub(crate) fn owe(&self, sequence: u64, plugin: Arc<Plugin>, reason: String) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
        map.insert(sequence, (plugin, reason));
    }

    pub(crate) fn get(&self, sequence: u64) -> Option<(Arc<Plugin>, String)> {
        self.lock().get(&sequence).cloned()
    }

    pub(crate) fn paid(&self, sequence: u64) {
        self.lock().remove(&sequence);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Arc<Plugin>, String)>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
