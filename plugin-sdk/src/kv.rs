//! [`Bucket`]: a JetStream key-value bucket through the host (`ctx.kv("NAME")`), for the buckets
//! the plugin's `kv` list in runtime.toml names.
//!
//! Writes happen during the call, not after the outcome like publishes: a message handled again
//! (a redelivery, a retry) writes again. Make that harmless: put a value derived from the message,
//! compare-and-set with the revision read (`update`), or claim a key once with `create`.
//!
//! ```
//! use switchyard_sdk::prelude::*;
//!
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
//!     let seen = ctx.kv("SEEN")?;
//!     let count = match seen.get_json::<u64>("count")? {
//!         Some((n, revision)) => seen.update_json("count", &(n + 1), revision).map(|_| n + 1),
//!         None => seen.create_json("count", &1u64).map(|_| 1),
//!     };
//!     match count {
//!         Ok(n) => Ok(Outcome::reply(n.to_string())),
//!         // Someone else counted first: try again with what they wrote.
//!         Err(KvError::Conflict) => Err(Stop::retry("count changed meanwhile")),
//!         Err(other) => Err(other.into()),
//!     }
//! }
//! # #[cfg(not(target_arch = "wasm32"))] {
//! # let host = switchyard_sdk::testing::MockHost::new().bucket("SEEN");
//! # let msg = Message::builder("in").build();
//! # host.call(handle, &msg);
//! # assert_eq!(host.call(handle, &msg).outcome, Outcome::reply("2"));
//! # }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_abi::{KvEntry, status};

use crate::Stop;

/// A key's value and its revision (what `update` compares against).
pub type Entry = KvEntry;

/// Why a key-value call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The bucket is not on the plugin's `kv` list.
    #[error("bucket `{0}` is not on the plugin's kv list")]
    NotAllowed(String),
    /// `create` of a key that has a value, or `update` with a revision that is no longer the key's.
    #[error("the key was written by someone else first")]
    Conflict,
    /// The store did not answer (its server down, a timeout), or no store is connected (`switchyard
    /// invoke`): worth a retry.
    #[error("the key-value store is unavailable")]
    Unavailable,
    /// An empty key, or one that starts or ends with `.`, or a bucket name that cannot be one.
    #[error("invalid key or bucket name")]
    InvalidKey,
    /// Too many key-value calls for one message.
    #[error("key-value call limit exceeded for this message")]
    LimitExceeded,
    /// A value larger than the bucket's `max_value_size`, or the server's `max_payload`.
    #[error("the value is larger than the bucket takes")]
    TooLarge,
    /// A value that does not encode or decode as JSON.
    #[error("{0}")]
    Json(String),
    /// Any other status from the host.
    #[error("key-value call refused: {}", status::describe(*.0))]
    Host(i32),
}

impl KvError {
    fn from_status(code: i32, bucket: &str) -> Self {
        match code {
            status::NOT_ALLOWED => Self::NotAllowed(bucket.to_owned()),
            status::CONFLICT => Self::Conflict,
            status::UNAVAILABLE | status::STORE_UNAVAILABLE => Self::Unavailable,
            status::BAD_ARGUMENT => Self::InvalidKey,
            status::LIMIT_EXCEEDED => Self::LimitExceeded,
            status::TOO_LARGE => Self::TooLarge,
            other => Self::Host(other),
        }
    }
}

/// A failed key-value call is retried: the store may be back, the conflict resolved.
impl From<KvError> for Stop {
    fn from(err: KvError) -> Stop {
        Stop::retry(err)
    }
}

/// One bucket, as `ctx.kv(name)` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    name: String,
}

impl Bucket {
    pub(crate) fn new(name: &str) -> Result<Self, KvError> {
        // A bucket name is one token of the `$KV.<bucket>.<key>` subjects.
        if !crate::validate::is_subject_token(name) {
            return Err(KvError::InvalidKey);
        }
        Ok(Self { name: name.to_owned() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's value and revision; `None` when it has none (never written, deleted, expired).
    pub fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        match crate::host::kv_get(&self.name, key) {
            Ok(entry) => Ok(Some(entry)),
            Err(status::NOT_FOUND) => Ok(None),
            Err(code) => Err(KvError::from_status(code, &self.name)),
        }
    }

    /// Write the key; its new revision.
    pub fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64, KvError> {
        self.revision(crate::host::kv_write(&self.name, key, value.as_ref(), crate::host::Write::Put))
    }

    /// Write the key only if it has no value: [`KvError::Conflict`] otherwise. Claims a key once
    /// (a dedup marker, a lease).
    pub fn create(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64, KvError> {
        self.revision(crate::host::kv_write(&self.name, key, value.as_ref(), crate::host::Write::Create))
    }

    /// Write the key only if its revision is still `revision` (compare and set):
    /// [`KvError::Conflict`] otherwise.
    pub fn update(&self, key: &str, value: impl AsRef<[u8]>, revision: u64) -> Result<u64, KvError> {
        let revision = i64::try_from(revision).map_err(|_| KvError::InvalidKey)?;
        self.revision(crate::host::kv_write(&self.name, key, value.as_ref(), crate::host::Write::Update(revision)))
    }

    /// Delete the key (deleting one without a value is fine).
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        crate::host::kv_delete(&self.name, key).map_err(|code| KvError::from_status(code, &self.name))
    }

    /// The keys that start with `prefix` (`""`: all), sorted; at most 1,000.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        crate::host::kv_keys(&self.name, prefix).map_err(|code| KvError::from_status(code, &self.name))
    }

    /// [`Bucket::get`], the value decoded from JSON.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, u64)>, KvError> {
        let Some(entry) = self.get(key)? else { return Ok(None) };
        let value = serde_json::from_slice(&entry.value)
            .map_err(|e| KvError::Json(format!("the value of `{key}` is not the JSON expected: {e}")))?;
        Ok(Some((value, entry.revision)))
    }

    /// [`Bucket::put`] of `value` as JSON.
    pub fn put_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<u64, KvError> {
        self.put(key, json(value)?)
    }

    /// [`Bucket::create`] of `value` as JSON.
    pub fn create_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<u64, KvError> {
        self.create(key, json(value)?)
    }

    /// [`Bucket::update`] of `value` as JSON.
    pub fn update_json<T: Serialize + ?Sized>(&self, key: &str, value: &T, revision: u64) -> Result<u64, KvError> {
        self.update(key, json(value)?, revision)
    }

    fn revision(&self, written: Result<u64, i32>) -> Result<u64, KvError> {
        written.map_err(|code| KvError::from_status(code, &self.name))
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, KvError> {
    serde_json::to_vec(value).map_err(|e| KvError::Json(format!("value does not encode as json: {e}")))
}
