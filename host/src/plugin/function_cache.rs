//! Cranelift's incremental compilation cache, kept in memory for the life of the
//! host (or on disk, for the compiler process): compiled functions keyed by a
//! hash of their IR. A new version of a
//! plugin is mostly the code of the old one (the standard library, serde, the
//! SDK), so a hot reload recompiles only the functions that changed, which is
//! what keeps "file written → new version serving" short and leaves the cores to
//! the messages being served meanwhile. A restart starts with an empty cache;
//! the on-disk artifact cache (cache.rs) covers restarts.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

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

/// The same cache on disk, one file per function, for the compiler process
/// (`compiler.rs`): each compilation is a new process, and a reload's new
/// version still recompiles only the functions that changed.
#[derive(Debug)]
pub(super) struct DiskFunctionCache {
    dir: PathBuf,
}

/// Files kept; beyond it the folder starts over at the next compilation.
const DISK_CAPACITY: usize = 200_000;

impl DiskFunctionCache {
    pub(super) fn new(dir: PathBuf) -> Self {
        // Bounded like the in-memory cache: too many entries, start over.
        if std::fs::read_dir(&dir).is_ok_and(|entries| entries.count() > DISK_CAPACITY) {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let _ = std::fs::create_dir_all(&dir);
        Self { dir }
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        let digest = Sha256::digest(key);
        self.dir.join(digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>())
    }
}

impl CacheStore for DiskFunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        std::fs::read(self.path(key)).ok().map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.path(key);
        // Written aside and renamed: a reader never sees half an entry.
        let tmp = super::compiler::scratch_path(&path);
        std::fs::write(&tmp, value).and_then(|()| std::fs::rename(&tmp, &path)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_cache_gives_back_what_it_was_given() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = DiskFunctionCache::new(dir.path().join("functions"));
        assert!(cache.get(b"key").is_none());
        assert!(cache.insert(b"key", vec![1, 2, 3]));
        assert_eq!(cache.get(b"key").as_deref(), Some(&[1, 2, 3][..]));
        assert!(DiskFunctionCache::new(dir.path().join("functions")).get(b"key").is_some(), "kept across processes");
    }

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
