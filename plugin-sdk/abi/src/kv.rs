//! A key-value bucket in memory, with JetStream's rules: the stand-in both the
//! SDK's mock host and `switchyard test` use, so a plugin sees the same answers
//! from each as from a real bucket (codes of [`crate::status`]).

use std::collections::BTreeMap;

use crate::{KvEntry, MAX_KV_KEYS, status};

/// How a write writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Put,
    /// Only when the key has no value.
    Create,
    /// Only when the key's revision is still this one.
    Update(i64),
}

/// A key JetStream takes: letters, digits and `-/_=.`, not starting or ending with a dot.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
}

/// One bucket: each key's value and revision, and the last revision given
/// (revisions grow per bucket, as a bucket's stream sequence does).
#[derive(Debug, Clone, Default)]
pub struct MemoryBucket {
    keys: BTreeMap<String, (Vec<u8>, u64)>,
    revision: u64,
}

impl MemoryBucket {
    pub fn get(&self, key: &str) -> Result<KvEntry, i32> {
        checked(key)?;
        let (value, revision) = self.keys.get(key).ok_or(status::NOT_FOUND)?;
        Ok(KvEntry { value: value.clone(), revision: *revision })
    }

    /// The new revision, or `CONFLICT` when `how` does not allow the write.
    pub fn write(&mut self, key: &str, value: &[u8], how: Write) -> Result<u64, i32> {
        checked(key)?;
        let current = self.keys.get(key).map(|(_, revision)| *revision);
        let allowed = match how {
            Write::Put => true,
            Write::Create => current.is_none(),
            Write::Update(revision) => current.is_some_and(|current| i64::try_from(current) == Ok(revision)),
        };
        if !allowed {
            return Err(status::CONFLICT);
        }
        self.revision += 1;
        self.keys.insert(key.to_owned(), (value.to_vec(), self.revision));
        Ok(self.revision)
    }

    pub fn delete(&mut self, key: &str) -> Result<(), i32> {
        checked(key)?;
        self.keys.remove(key);
        Ok(())
    }

    /// The keys starting with `prefix`, sorted, at most [`MAX_KV_KEYS`].
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.keys.keys().filter(|k| k.starts_with(prefix)).take(MAX_KV_KEYS).cloned().collect()
    }

    /// Every key with its value, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.keys.iter().map(|(key, (value, _))| (key.as_str(), value.as_slice()))
    }
}

fn checked(key: &str) -> Result<(), i32> {
    if valid_key(key) { Ok(()) } else { Err(status::BAD_ARGUMENT) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_follow_jetstream_rules() {
        let mut bucket = MemoryBucket::default();
        assert_eq!(bucket.get("a"), Err(status::NOT_FOUND));
        assert_eq!(bucket.write("a", b"1", Write::Create), Ok(1));
        assert_eq!(bucket.write("a", b"2", Write::Create), Err(status::CONFLICT));
        assert_eq!(bucket.write("a", b"2", Write::Update(7)), Err(status::CONFLICT));
        assert_eq!(bucket.write("a", b"2", Write::Update(1)), Ok(2));
        assert_eq!(bucket.write("b.c", b"3", Write::Put), Ok(3));
        assert_eq!(bucket.get("a"), Ok(KvEntry { value: b"2".to_vec(), revision: 2 }));
        assert_eq!(bucket.keys("b"), ["b.c"]);
        assert_eq!(bucket.delete("a"), Ok(()));
        assert_eq!(bucket.write("a", b"4", Write::Create), Ok(4), "a deleted key may be created again");
        for bad in ["", ".a", "a.", "a b", "a*", "a>"] {
            assert_eq!(bucket.write(bad, b"x", Write::Put), Err(status::BAD_ARGUMENT), "{bad:?}");
        }
    }
}
