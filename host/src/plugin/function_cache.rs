//! Cranelift's incremental compilation cache, kept in memory for the life of the
//! host: compiled functions keyed by a hash of their IR. A new version of a
//! plugin is mostly the code of the old one (the standard library, serde, the
//! SDK), so a hot reload recompiles only the functions that changed, which is
//! what keeps "file written → new version serving" short and leaves the cores to
//! the messages being served meanwhile. A restart starts with an empty cache;
//! the on-disk artifact cache (cache.rs) covers restarts.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use wasmtime::CacheStore;

/// Bytes of compiled functions kept; when full, the cache starts over. About
/// what a dozen typical plugins compile to.
const CAPACITY: usize = 32 << 20;

#[derive(Debug, Default)]
pub(super) struct FunctionCache {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.map.get(key).map(|value| Cow::Owned(value.clone()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let size = key.len() + value.len();
        if size > CAPACITY {
            return false;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.bytes + size > CAPACITY {
            // Simple and bounded: the next compiles fill it again with what is current.
            entries.map.clear();
            entries.bytes = 0;
        }
        if let Some(old) = entries.map.insert(key.to_vec(), value) {
            entries.bytes -= key.len() + old.len();
        }
        entries.bytes += size;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_and_starts_over_when_full() {
        let cache = FunctionCache::default();
        assert!(cache.insert(b"a", vec![1; 10]));
        assert_eq!(cache.get(b"a").as_deref(), Some(&[1; 10][..]));
        assert!(cache.insert(b"a", vec![2; 4]), "replacing an entry");
        assert_eq!(cache.entries.lock().expect("lock").bytes, 5);
        assert!(!cache.insert(b"huge", vec![0; CAPACITY]), "an entry larger than the cache is refused");
        assert!(cache.insert(b"b", vec![0; CAPACITY - 2]), "fits alone, not beside `a`");
        assert!(cache.get(b"a").is_none(), "filling the cache started it over");
        assert!(cache.get(b"b").is_some());
    }
}
