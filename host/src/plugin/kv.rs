//! Key-value through the host: the `kv_*` imports over the JetStream key-value
//! buckets declared in `[[buckets]]`, each plugin limited to those its `kv`
//! names. The stores are opened once ([`Nats::store`]) and shared by every
//! instance; until the daemon is connected (`switchyard invoke`, `check`)
//! every call answers `UNAVAILABLE`.
//!
//! Unlike publishes, which wait for the message to be settled, a write happens
//! during the call: a redelivered message writes again (docs/ABI.md says how to
//! make that harmless).

use std::time::Instant;

use async_nats::jetstream::kv::{CreateErrorKind, EntryErrorKind, Operation, PutErrorKind, Store, UpdateErrorKind};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use switchyard_abi::{IMPORT_MODULE, KvEntry, MAX_KV_KEYS, names, status};
use wasmtime::{Caller, Linker};

use super::guest_threads;
use super::host_fns::guest_bytes;
use super::nats::leave_result;
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

/// The bucket and key (or prefix) a call names, once the plugin may use the
/// bucket and has calls left; the bucket's store.
async fn open(caller: &mut Caller<'_, HostState>, [bp, bl, kp, kl]: [i32; 4]) -> Result<(Store, String), i32> {
    let bucket = guest_text(caller, bp, bl)?;
    let key = guest_text(caller, kp, kl)?;
    let state = caller.data_mut();
    if !state.kv_allow.contains(&bucket) {
        return Err(status::NOT_ALLOWED);
    }
    if state.calls >= MAX_CALLS_PER_MESSAGE {
        return Err(status::LIMIT_EXCEEDED);
    }
    state.calls += 1;
    let nats = state.nats.clone();
    Ok((nats.store(&bucket).await?, key))
}

async fn get(caller: &mut Caller<'_, HostState>, at: [i32; 4]) -> i64 {
    let (store, key) = match open(caller, at).await {
        Ok(opened) => opened,
        Err(code) => return i64::from(code),
    };
    match store.entry(key).await {
        Ok(Some(entry)) if entry.operation == Operation::Put => {
            leave_result(caller, &KvEntry { value: entry.value.to_vec(), revision: entry.revision })
        }
        Ok(_) => i64::from(status::NOT_FOUND),
        Err(err) if err.kind() == EntryErrorKind::InvalidKey => i64::from(status::BAD_ARGUMENT),
        Err(_) => i64::from(status::STORE_UNAVAILABLE),
    }
}

enum Write {
    Put,
    Create,
    Update(i64),
}

async fn write(caller: &mut Caller<'_, HostState>, at: [i32; 4], [vp, vl]: [i32; 2], how: Write) -> i64 {
    let value = match guest_bytes(caller, vp, vl) {
        Ok(value) => Bytes::from(value),
        Err(code) => return i64::from(code),
    };
    let (store, key) = match open(caller, at).await {
        Ok(opened) => opened,
        Err(code) => return i64::from(code),
    };
    let written = match how {
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
            let Ok(revision) = u64::try_from(revision) else { return i64::from(status::BAD_ARGUMENT) };
            store.update(key, value, revision).await.map_err(|err| match err.kind() {
                UpdateErrorKind::WrongLastRevision => status::CONFLICT,
                UpdateErrorKind::InvalidKey => status::BAD_ARGUMENT,
                _ => status::STORE_UNAVAILABLE,
            })
        }
    };
    match written {
        Ok(revision) => i64::try_from(revision).unwrap_or(i64::MAX),
        Err(code) => i64::from(code),
    }
}

async fn delete(caller: &mut Caller<'_, HostState>, at: [i32; 4]) -> i64 {
    let (store, key) = match open(caller, at).await {
        Ok(opened) => opened,
        Err(code) => return i64::from(code),
    };
    match store.delete(key).await {
        Ok(()) => 0,
        Err(_) => i64::from(status::STORE_UNAVAILABLE),
    }
}

/// The keys starting with the prefix, sorted, at most `MAX_KV_KEYS`.
async fn keys(caller: &mut Caller<'_, HostState>, at: [i32; 4]) -> i64 {
    let (store, prefix) = match open(caller, at).await {
        Ok(opened) => opened,
        Err(code) => return i64::from(code),
    };
    let listed = async {
        let keys = store.keys().await.map_err(|_| status::STORE_UNAVAILABLE)?;
        let matching = keys.map_err(|_| status::STORE_UNAVAILABLE).try_filter(|key| std::future::ready(key.starts_with(&prefix)));
        let mut keys: Vec<String> = matching.take(MAX_KV_KEYS).try_collect().await?;
        keys.sort();
        Ok::<_, i32>(keys)
    };
    match listed.await {
        Ok(keys) => leave_result(caller, &keys),
        Err(code) => i64::from(code),
    }
}
