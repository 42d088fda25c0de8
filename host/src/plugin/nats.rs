//! How host functions reach NATS: the runtime's client, its JetStream context
//! and the key-value stores opened so far, shared by every plugin version (or,
//! for `switchyard test`, buckets in memory); and `take_result`, which hands
//! the guest what a call left for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::Store;
use switchyard_abi::kv::MemoryBucket;
use switchyard_abi::{names, status};
use wasmtime::Caller;

use super::state::HostState;
use crate::telemetry::Metrics;

/// The runtime's way to NATS for host functions, once the daemon is connected.
#[derive(Default)]
pub(crate) struct Nats {
    client: Mutex<Option<async_nats::Client>>,
    js: Mutex<Option<async_nats::jetstream::Context>>,
    /// Key-value stores, opened on first use (a `Store` is 1.5 KiB: shared,
    /// not copied per call).
    stores: Mutex<HashMap<String, Arc<Store>>>,
    /// Where each call is counted, once connected.
    metrics: Mutex<Option<Arc<Metrics>>>,
    /// `switchyard test`: the buckets, in memory, instead of the stores.
    memory: Mutex<Option<BTreeMap<String, MemoryBucket>>>,
    /// `switchyard test`: the reply to a request, by subject, instead of NATS.
    responders: Mutex<Option<BTreeMap<String, Vec<u8>>>>,
}

/// Where a KV call goes.
pub(super) enum Bucket {
    Store(Arc<Store>),
    /// This bucket of [`Nats::use_memory`].
    Memory(String),
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats").finish_non_exhaustive()
    }
}

impl Nats {
    pub(super) fn connect(&self, client: async_nats::Client, metrics: Arc<Metrics>) {
        *lock(&self.js) = Some(async_nats::jetstream::new(client.clone()));
        *lock(&self.client) = Some(client);
        *lock(&self.metrics) = Some(metrics);
        lock(&self.stores).clear();
    }

    pub(super) fn client(&self) -> Option<async_nats::Client> {
        lock(&self.client).clone()
    }

    /// Serve KV calls from these buckets, in memory, instead of NATS.
    pub(super) fn use_memory(&self, buckets: BTreeMap<String, MemoryBucket>) {
        *lock(&self.memory) = Some(buckets);
    }

    /// Answer requests with these replies (by subject) instead of NATS; a
    /// subject without one has no responders.
    pub(super) fn use_responders(&self, responders: BTreeMap<String, Vec<u8>>) {
        *lock(&self.responders) = Some(responders);
    }

    /// `None` when requests go to NATS; else the reply to `subject`, or no responders.
    pub(super) fn responder(&self, subject: &str) -> Option<Result<Vec<u8>, i32>> {
        lock(&self.responders).as_ref().map(|replies| replies.get(subject).cloned().ok_or(status::NO_RESPONDERS))
    }

    /// The buckets in memory, as the calls left them.
    pub(super) fn memory(&self) -> BTreeMap<String, MemoryBucket> {
        lock(&self.memory).clone().unwrap_or_default()
    }

    /// Run `op` on in-memory bucket `bucket`.
    pub(super) fn in_memory<T>(&self, bucket: &str, op: impl FnOnce(&mut MemoryBucket) -> Result<T, i32>) -> Result<T, i32> {
        op(lock(&self.memory).as_mut().and_then(|buckets| buckets.get_mut(bucket)).ok_or(status::STORE_UNAVAILABLE)?)
    }

    pub(super) async fn bucket(&self, bucket: &str) -> Result<Bucket, i32> {
        if lock(&self.memory).is_some() {
            return Ok(Bucket::Memory(bucket.to_owned()));
        }
        self.store(bucket).await.map(Bucket::Store)
    }

    async fn store(&self, bucket: &str) -> Result<Arc<Store>, i32> {
        if let Some(store) = lock(&self.stores).get(bucket) {
            return Ok(store.clone());
        }
        let js = lock(&self.js).clone().ok_or(status::UNAVAILABLE)?;
        let store = Arc::new(js.get_key_value(bucket).await.map_err(|err| {
            tracing::warn!(bucket, "cannot open the key-value bucket: {err}");
            status::STORE_UNAVAILABLE
        })?);
        lock(&self.stores).insert(bucket.to_owned(), store.clone());
        Ok(store)
    }

    /// Count a KV call of `op` by `plugin` that returned `returned` after `took`.
    pub(super) fn count_kv(&self, plugin: &str, op: &'static str, returned: i64, took: Duration) {
        if let Some(metrics) = lock(&self.metrics).as_ref() {
            metrics.kv_call(plugin, op, result_label(returned), took);
        }
    }

    /// Count a request by `plugin` that returned `returned` after `took`.
    pub(super) fn count_request(&self, plugin: &str, returned: i64, took: Duration) {
        if let Some(metrics) = lock(&self.metrics).as_ref() {
            metrics.plugin_request(plugin, result_label(returned), took);
        }
    }
}

/// The metrics' name for what a KV call or request returned.
fn result_label(returned: i64) -> &'static str {
    match i32::try_from(returned) {
        _ if returned >= 0 => "ok",
        Ok(status::NOT_FOUND) => "not_found",
        Ok(status::CONFLICT) => "conflict",
        Ok(status::NOT_ALLOWED) => "not_allowed",
        Ok(status::UNAVAILABLE | status::STORE_UNAVAILABLE) => "unavailable",
        Ok(status::BAD_ARGUMENT | status::BAD_ENCODING | status::INVALID_SUBJECT | status::INVALID_HEADER) => "invalid",
        Ok(status::LIMIT_EXCEEDED) => "limit",
        Ok(status::TOO_LARGE) => "too_large",
        Ok(status::NO_RESPONDERS) => "no_responders",
        Ok(status::TIMED_OUT) => "timed_out",
        _ => "other",
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Leave `value` for `take_result`; its length.
pub(super) fn leave_result(caller: &mut Caller<'_, HostState>, value: &impl serde::Serialize) -> i64 {
    match switchyard_abi::encode(value) {
        Ok(bytes) => {
            let len = bytes.len() as i64;
            caller.data_mut().result = bytes;
            len
        }
        Err(_) => i64::from(status::BAD_ENCODING),
    }
}

/// `take_result`: copy the result the last call left into guest memory (`len` must be its length).
pub(super) fn take_result(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> i32 {
    let result = std::mem::take(&mut caller.data_mut().result);
    if usize::try_from(len).ok() != Some(result.len()) {
        caller.data_mut().result = result;
        return status::BAD_ARGUMENT;
    }
    let Some(wasmtime::Extern::Memory(memory)) = caller.get_export(names::MEMORY) else { return status::UNAVAILABLE };
    match memory.write(&mut caller, ptr as u32 as usize, &result) {
        Ok(()) => status::OK,
        Err(_) => status::OUT_OF_BOUNDS,
    }
}
