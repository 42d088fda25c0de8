//! Key-value through the host: the `kv_*` imports over the JetStream key-value
//! buckets declared in `[[buckets]]`, each plugin limited to those its `kv`
//! names. The stores are opened once ([`Nats::bucket`]) and shared by every
//! instance; until the daemon is connected (`switchyard invoke`, `check`)
//! every call answers `UNAVAILABLE`; `switchyard test` serves them from memory.
//!
//! Unlike publishes, which wait for the message to be settled, a write happens
//! during the call: a redelivered message writes again (docs/ABI.md says how to
//! make that harmless).

use std::time::Instant;

use async_nats::jetstream::kv::{CreateErrorKind, EntryErrorKind, Operation, PutErrorKind, Store, UpdateErrorKind};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use switchyard_abi::kv::Write;
use switchyard_abi::{IMPORT_MODULE, KvEntry, MAX_KV_KEYS, names, status};
use wasmtime::{Caller, Linker};

use super::guest_threads;
use super::host_fns::guest_bytes;
use super::nats::{Bucket, leave_result};
use super::state::{HostState, MAX_CALLS_PER_MESSAGE};

/// Run one KV call and count it in the metrics.
macro_rules! counted {
    ($caller:ident, $op:literal, $call:expr) => {
        Box::new(async move {
            let started = Instant::now();
            let returned = guest_threads::host_io($call).await;
            let state = $caller.data();
            state.nats.count_kv(&state.plugin, $op, returned, started.elapsed());
            returned
        })
    };
}

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(IMPORT_MODULE, names::KV_GET, |mut caller, (bp, bl, kp, kl): (i32, i32, i32, i32)| {
        counted!(caller, "get", get(&mut caller, [bp, bl, kp, kl]))
    })?;
    linker.func_wrap_async(IMPORT_MODULE, names::KV_PUT, |mut caller, (bp, bl, kp, kl, vp, vl): (i32, i32, i32, i32, i32, i32)| {
        counted!(caller, "put", write(&mut caller, [bp, bl, kp, kl], [vp, vl], Write::Put))
    })?;
    linker.func_wrap_async(IMPORT_MODULE, names::KV_CREATE, |mut caller, (bp, bl, kp, kl, vp, vl): (i32, i32, i32, i32, i32, i32)| {
        counted!(caller, "create", write(&mut caller, [bp, bl, kp, kl], [vp, vl], Write::Create))
    })?;
    linker.func_wrap_async(
        IMPORT_MODULE,
        names::KV_UPDATE,
        |mut caller, (bp, bl, kp, kl, vp, vl, revision): (i32, i32, i32, i32, i32, i32, i64)| {
            counted!(caller, "update", write(&mut caller, [bp, bl, kp, kl], [vp, vl], Write::Update(revision)))
        },
    )?;
    linker.func_wrap_async(IMPORT_MODULE, names::KV_DELETE, |mut caller, (bp, bl, kp, kl): (i32, i32, i32, i32)| {
        counted!(caller, "delete", delete(&mut caller, [bp, bl, kp, kl]))
    })?;
    linker.func_wrap_async(IMPORT_MODULE, names::KV_KEYS, |mut caller, (bp, bl, pp, pl): (i32, i32, i32, i32)| {
        counted!(caller, "keys", keys(&mut caller, [bp, bl, pp, pl]))
    })?;
    Ok(())
}

/// The text at `ptr`/`len` in guest memory.
fn guest_text(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Result<String, i32> {
    String::from_utf8(guest_bytes(caller, ptr, len)?).map_err(|_| status::BAD_ENCODING)
}

/// Whether a call changes the bucket: a shadow's instance may only read
/// (`HostState::shadow`).
#[derive(PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// The bucket and key (or prefix) a call names, once the plugin may use the
/// bucket this way and has calls left; where the bucket is.
async fn open(caller: &mut Caller<'_, HostState>, [bp, bl, kp, kl]: [i32; 4], access: Access) -> Result<(Bucket, String), i32> {
    let bucket = guest_text(caller, bp, bl)?;
    let key = guest_text(caller, kp, kl)?;
    let state = caller.data_mut();
    if !state.kv_allow.contains(&bucket) {
        return Err(status::NOT_ALLOWED);
    }
    if access == Access::Write && state.shadow {
        return Err(status::UNAVAILABLE);
    }
    if state.calls >= MAX_CALLS_PER_MESSAGE {
        return Err(status::LIMIT_EXCEEDED);
    }
    state.calls += 1;
    let nats = state.nats.clone();
    Ok((nats.bucket(&bucket).await?, key))
}

async fn get(caller: &mut Caller<'_, HostState>, at: [i32; 4]) -> i64 {
    let (bucket, key) = match open(caller, at, Access::Read).await {
        Ok(opened) => opened,
        Err(code) => return i64::from(code),
    };
    let entry = match bucket {
        Bucket::Store(store) => match store.entry(key).await {
            Ok(Some(entry)) if entry.operation == Operation::Put => Ok(KvEntry { value: entry.value.to_vec(), revision: entry.revision }),
            Ok(_) => Err(status::NOT_FOUND),
            Err(err) if err.kind() == EntryErrorKind::InvalidKey => Err(status::BAD_ARGUMENT),
            Err(_) => Err(status::STORE_UNAVAILABLE),
        },
        Bucket::Memory(name) => caller.data().nats.in_memory(&name, |b| b.get(&key)),
    };
    match entry {
        Ok(entry) => leave_result(caller, &entry),
        Err(code) => i64::from(code),
    }
}

async fn write(caller: &mut Caller<'_, HostState>, at: [i32; 4], [vp, vl]: [i32; 2], how: Write) -> i64 {
    let value = match guest_bytes(caller, vp, vl) {
        Ok(value) => Bytes::from(value),
        Err(code) => return i64::from(code),
    };
    let max_payload = caller.data().max_payload.get();
    let written = match open(caller, at, Access::Write).await {
        Ok((Bucket::Store(store), _)) if too_large(&store, value.len(), max_payload) => Err(status::TOO_LARGE),
        Ok((Bucket::Store(store), key)) => write_store(&store, key, value, how).await,
        Ok((Bucket::Memory(name), key)) => caller.data().nats.in_memory(&name, |b| b.write(&key, &value, how)),
        Err(code) => Err(code),
    };
    match written {
        Ok(revision) => i64::try_from(revision).unwrap_or(i64::MAX),
        Err(code) => i64::from(code),
    }
}

/// Whether a value of `len` bytes is more than the bucket takes (its
/// `max_value_size`) or the server (`max_payload`): the write would fail the
/// same way every time, so it is refused as such instead of as unavailable.
fn too_large(store: &Store, len: usize, max_payload: Option<usize>) -> bool {
    let bucket_max = usize::try_from(store.stream.cached_info().config.max_message_size).ok();
    [bucket_max, max_payload].into_iter().flatten().any(|max| len > max)
}

async fn write_store(store: &Store, key: String, value: Bytes, how: Write) -> Result<u64, i32> {
    match how {
        Write::Put => store.put(key, value).await.map_err(|err| match err.kind() {
            PutErrorKind::InvalidKey => status::BAD_ARGUMENT,
            _ => status::STORE_UNAVAILABLE,
        }),
        Write::Create => store.create(key, value).await.map_err(|err| match err.kind() {
            CreateErrorKind::AlreadyExists => status::CONFLICT,
            CreateErrorKind::InvalidKey => status::BAD_ARGUMENT,
            _ => status::STORE_UNAVAILABLE,
        }),
        Write::Update(revision) => {
            let revision = u64::try_from(revision).map_err(|_| status::BAD_ARGUMENT)?;
            store.update(key, value, revision).await.map_err(|err| match err.kind() {
                UpdateErrorKind::WrongLastRevision => status::CONFLICT,
                UpdateErrorKind::InvalidKey => status::BAD_ARGUMENT,
                _ => status::STORE_UNAVAILABLE,
            })
        }
    }
}

async fn delete(caller: &mut Caller<'_, HostState>, at: [i32; 4]) -> i64 {
    let deleted = match open(caller, at, Access::Write).await {
        Ok((Bucket::Store(store), key)) => store.delete(key).await.map_err(|_| status::STORE_UNAVAILABLE),
        Ok((Bucket::Memory(name), key)) => caller.data().nats.in_memory(&name, |b| b.delete(&key)),
        Err(code) => Err(code),
    };
    deleted.map_or_else(i64::from, |()| 0)
}

/// The keys starting with the prefix, sorted, at most `MAX_KV_KEYS`.
async fn keys(caller: &mut Caller<'_, HostState>, at: [i32; 4]) -> i64 {
    let listed = match open(caller, at, Access::Read).await {
        Ok((Bucket::Store(store), prefix)) => store_keys(&store, &prefix).await,
        Ok((Bucket::Memory(name), prefix)) => caller.data().nats.in_memory(&name, |b| Ok(b.keys(&prefix))),
        Err(code) => Err(code),
    };
    match listed {
        Ok(keys) => leave_result(caller, &keys),
        Err(code) => i64::from(code),
    }
}

async fn store_keys(store: &Store, prefix: &str) -> Result<Vec<String>, i32> {
    let listed = async {
        let keys = store.keys().await.map_err(|_| status::STORE_UNAVAILABLE)?;
        let matching = keys.map_err(|_| status::STORE_UNAVAILABLE).try_filter(|key| std::future::ready(key.starts_with(prefix)));
        let mut keys: Vec<String> = matching.take(MAX_KV_KEYS).try_collect().await?;
        keys.sort();
        Ok::<_, i32>(keys)
    };
    listed.await
}
