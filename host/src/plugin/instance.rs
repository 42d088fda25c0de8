//! One live instance of a plugin version: its store, its exports, and the call
//! protocol (write the message into guest memory, call, read the outcome back).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use switchyard_abi::{Message, Outcome, Publish, names};
use wasmtime::{Memory, Store, Trap, TypedFunc, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::engine::EPOCH_TICK;
use super::error::CallError;
use super::load::Plugin;
use super::log_budget::LogBudget;
use super::state::{DeadlineHit, HostState, MemoryLimitHit};
use super::stdio::LogStream;
use super::text::printable;
use crate::telemetry::trace::TraceId;

/// What a successful call produced.
#[derive(Debug)]
pub struct Handled {
    pub outcome: Outcome,
    /// Publishes buffered during the call, to send only on Ack or Reply.
    pub publishes: Vec<Publish>,
}

/// Why a new instance could not be made.
#[derive(Debug)]
pub enum NewError {
    Refused(String),
    Call(CallError),
}

pub struct Instance {
    plugin: Arc<Plugin>,
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    handle: TypedFunc<(i32, i32), i64>,
    /// `switchyard_handle_batch`, when the module exports it.
    handle_batch: Option<TypedFunc<(i32, i32), i64>>,
    abi_version: TypedFunc<(), i32>,
    /// For the exports read once per version (at load), not once per instance.
    exports: wasmtime::Instance,
    init: Option<TypedFunc<(i32, i32), i64>>,
    /// The encoded message of the last call, kept so each call reuses its
    /// allocation instead of growing a new buffer field by field.
    input: Vec<u8>,
    /// The guest's stdout and stderr, to log a last line left without its newline.
    stdio: [LogStream; 2],
}

impl Instance {
    /// Instantiate `plugin` and run its `init` (if it exports one) with its config.
    pub async fn new(plugin: Arc<Plugin>) -> Result<Self, NewError> {
        let mut instance = Self::instantiate(plugin).await?;
        instance.init().await?;
        Ok(instance)
    }

    /// Instantiate without running `init`, so the loader can check the ABI
    /// version before handing the plugin its config.
    pub(super) async fn instantiate(plugin: Arc<Plugin>) -> Result<Self, NewError> {
        let spec = &plugin.spec;
        let log_budget = LogBudget::new(plugin.log_rate.clone());
        let stdio = [
            LogStream::new(plugin.name.clone(), "stdout", log_budget.clone()),
            LogStream::new(plugin.name.clone(), "stderr", log_budget.clone()),
        ];
        let wasi = WasiCtxBuilder::new().stdout(stdio[0].clone()).stderr(stdio[1].clone()).envs(&spec.env).build_p1();
        let state = HostState {
            wasi,
            plugin: plugin.name.clone(),
            version: plugin.hash.as_str().into(),
            message: Default::default(),
            batch: Default::default(),
            kv_allow: plugin.kv_allow.clone(),
            shadow: false,
            nats: plugin.nats.clone(),
            request_allow: plugin.request_allow.clone(),
            calls: 0,
            result: Vec::new(),
            memory_cap: spec.memory,
            allow: plugin.allow.clone(),
            publishes: None,
            publish_bytes: 0,
            msg_id_prefix: String::new(),
            max_payload: plugin.max_payload.clone(),
            deadline: Instant::now(),
            started: Instant::now(),
            last_error: None,
            log_budget,
        };
        let mut store = Store::new(plugin.pre.module().engine(), state);
        store.limiter(|state| state);
        store.epoch_deadline_callback(|ctx| {
            let now = Instant::now();
            if now >= ctx.data().deadline {
                return Err(wasmtime::Error::new(DeadlineHit));
            }
            // A short call that happens to straddle a tick runs on: yielding
            // would move it to the guest threads (guest_threads.rs), behind the
            // busy plugins there. Only a call busy for a whole tick yields.
            if now.duration_since(ctx.data().started) < EPOCH_TICK {
                return Ok(UpdateDeadline::Continue(1));
            }
            // Not late yet: let other tasks run, then check again next tick.
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
        });
        begin(&mut store, &plugin, false);

        // A start function and a reactor's constructors (`_initialize`, which a
        // wasip1 cdylib must run before any export) are guest code: bounded
        // like a call, timer included (a WASI sleep runs no wasm).
        let timeout = spec.timeout;
        let started = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            if let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
                initialize.call_async(&mut store, ()).await?;
            }
            Ok::<_, wasmtime::Error>(instance)
        };
        let instance = match tokio::time::timeout(timeout, started).await {
            Ok(Ok(instance)) => instance,
            Ok(Err(err)) => return Err(NewError::Call(classify(err, &plugin, store.data().last_error.clone()))),
            Err(_) => return Err(NewError::Call(CallError::Timeout(timeout))),
        };
        let abi = |err: wasmtime::Error| NewError::Call(CallError::Abi(format!("{err:#}")));
        let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| abi(wasmtime::Error::msg("no `memory` export")))?;
        Ok(Self {
            alloc: instance.get_typed_func(&mut store, names::ALLOC).map_err(abi)?,
            handle: instance.get_typed_func(&mut store, names::HANDLE).map_err(abi)?,
            // Type-checked by the loader: present means usable.
            handle_batch: instance.get_typed_func(&mut store, names::HANDLE_BATCH).ok(),
            abi_version: instance.get_typed_func(&mut store, names::ABI_VERSION).map_err(abi)?,
            exports: instance,
            init: if plugin.has_init { Some(instance.get_typed_func(&mut store, names::INIT).map_err(abi)?) } else { None },
            plugin: plugin.clone(),
            store,
            memory,
            input: Vec::new(),
            stdio,
        })
    }

    /// The size of the instance's linear memory now.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The value of the `switchyard_abi_version` export.
    pub async fn abi_version(&mut self) -> Result<i64, CallError> {
        let version = self.abi_version.clone();
        self.call_export(version).await.map(i64::from)
    }

    /// Whether the module exports `switchyard_handle_batch`.
    pub(super) fn exports_batch(&self) -> bool {
        self.handle_batch.is_some()
    }

    /// The value of the optional `switchyard_abi_features` export; 0 without it.
    pub async fn abi_features(&mut self) -> Result<u32, CallError> {
        // Optional, and already type-checked by the loader: absent means none.
        let Ok(features) = self.exports.get_typed_func::<(), i32>(&mut self.store, names::FEATURES) else { return Ok(0) };
        self.call_export(features).await.map(|bits| bits as u32)
    }

    /// Call an export that takes nothing and returns an i32, bounded like a call.
    async fn call_export(&mut self, export: TypedFunc<(), i32>) -> Result<i32, CallError> {
        begin(&mut self.store, &self.plugin, false);
        let timeout = self.plugin.spec.timeout;
        let call = tokio::time::timeout(timeout, export.call_async(&mut self.store, ())).await;
        match call {
            Ok(result) => result.map_err(|err| self.classify(err)),
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    pub(super) async fn init(&mut self) -> Result<(), NewError> {
        let Some(init) = self.init.clone() else {
            return Ok(());
        };
        let plugin = self.plugin.clone();
        begin(&mut self.store, &plugin, false);
        let timeout = plugin.spec.timeout;
        // Bounded like a call to `handle` (see there).
        let call = async {
            let (ptr, len) = self.write_input(&plugin.spec.config).await?;
            init.call_async(&mut self.store, (ptr, len)).await.map_err(|err| self.classify(err))
        };
        let packed = tokio::time::timeout(timeout, call).await.unwrap_or(Err(CallError::Timeout(timeout))).map_err(NewError::Call)?;
        if packed == 0 {
            return Ok(());
        }
        let bytes = self.read_output(packed).map_err(NewError::Call)?;
        // The plugin's own text, bound for logs and terminals: escaped and cut.
        Err(NewError::Refused(printable(&String::from_utf8_lossy(&bytes))))
    }

    /// Make this a shadow's instance: nothing it does may act outside it (see
    /// [`HostState::shadow`]).
    pub(super) fn shadowed(mut self) -> Self {
        self.store.data_mut().shadow = true;
        self
    }

    /// Run `switchyard_handle` on one message under the plugin's limits.
    pub async fn handle(&mut self, msg: &Message) -> Result<Handled, CallError> {
        self.prepare(msg, None)?;
        self.run_prepared().await
    }

    /// [`Instance::handle`] as a future that owns the instance and gives it back,
    /// so the call can move to another thread. The message is encoded now.
    pub(super) fn call(
        mut self,
        msg: &Message,
        trace_id: Option<TraceId>,
    ) -> impl Future<Output = (Self, Result<Handled, CallError>)> + Send + 'static {
        let prepared = self.prepare(msg, trace_id);
        async move {
            let result = match prepared {
                Ok(()) => self.run_prepared().await,
                Err(err) => Err(err),
            };
            (self, result)
        }
    }

    /// [`Instance::call`] for several messages in one `switchyard_handle_batch`
    /// call: a result for each, in order, or the error that failed the whole
    /// call (a trap in any of them, a bad result). Each message has the
    /// plugin's timeout and fuel from the moment the guest begins it.
    pub(super) fn call_batch(
        mut self,
        msgs: &[&Message],
        trace_ids: &[Option<TraceId>],
    ) -> impl Future<Output = (Self, Result<Vec<Handled>, CallError>)> + Send + 'static {
        let prepared = self.prepare_batch(msgs, trace_ids);
        let count = msgs.len();
        async move {
            let timeout = self.plugin.spec.timeout.saturating_mul(count as u32);
            let call = async {
                prepared?;
                let export = self.handle_batch.clone().ok_or_else(|| CallError::Abi(format!("no `{}` export", names::HANDLE_BATCH)))?;
                let packed = self.call_input(&export).await?;
                let publishes = self.store.data_mut().finish_batch().map_err(CallError::Abi)?;
                let outcomes = decode_outcomes(self.output(packed)?, count)?;
                Ok(outcomes.into_iter().zip(publishes).map(|(outcome, publishes)| Handled { outcome, publishes }).collect())
            };
            let result = tokio::time::timeout(timeout, call).await.unwrap_or(Err(CallError::Timeout(timeout)));
            self.stdio.iter().for_each(LogStream::finish_line);
            self.store.data().log_budget.report(&self.plugin.name);
            (self, result)
        }
    }

    fn prepare_batch(&mut self, msgs: &[&Message], trace_ids: &[Option<TraceId>]) -> Result<(), CallError> {
        let positional = self.plugin.positional.load(Ordering::Relaxed);
        self.input.clear();
        switchyard_abi::batch::write_len(&mut self.input, msgs.len());
        for msg in msgs {
            switchyard_abi::encode_message_into(&mut self.input, msg, positional)
                .map_err(|err| CallError::Abi(format!("encoding the message: {err}")))?;
        }
        begin(&mut self.store, &self.plugin, true);
        self.store.data_mut().batch.start(msgs, trace_ids, self.plugin.spec.timeout, self.plugin.spec.fuel);
        Ok(())
    }

    /// Encode `msg` into the input buffer and reset the per-call state.
    fn prepare(&mut self, msg: &Message, trace_id: Option<TraceId>) -> Result<(), CallError> {
        encode_message(msg, &mut self.input, self.plugin.positional.load(Ordering::Relaxed))?;
        begin(&mut self.store, &self.plugin, true);
        self.store.data_mut().number_publishes_after(msg.delivery.as_ref());
        self.store.data_mut().handling(msg, trace_id);
        Ok(())
    }

    async fn run_prepared(&mut self) -> Result<Handled, CallError> {
        let timeout = self.plugin.spec.timeout;
        // The epoch deadline stops running wasm; a guest blocked in a host function
        // (a WASI sleep or poll) runs none, so a timer bounds the whole call too.
        // A call cut short leaves the store unusable: the pool discards the instance.
        let result = tokio::time::timeout(timeout, self.call_handle()).await.unwrap_or(Err(CallError::Timeout(timeout)));
        // Text printed without a final newline belongs to this call: log it now.
        self.stdio.iter().for_each(LogStream::finish_line);
        self.store.data().log_budget.report(&self.plugin.name);
        result
    }

    async fn call_handle(&mut self) -> Result<Handled, CallError> {
        let handle = self.handle.clone();
        let packed = self.call_input(&handle).await?;
        // Decoded in place: the outcome is read straight out of guest memory.
        let outcome = decode_outcome(self.output(packed)?)?;
        let publishes = self.store.data_mut().publishes.take().unwrap_or_default();
        Ok(Handled { outcome, publishes })
    }

    /// Hand the input buffer to `export`: the packed location of its result.
    async fn call_input(&mut self, export: &TypedFunc<(i32, i32), i64>) -> Result<i64, CallError> {
        let input = std::mem::take(&mut self.input);
        let written = self.write_input(&input).await;
        self.input = input;
        let (ptr, len) = written?;
        export.call_async(&mut self.store, (ptr, len)).await.map_err(|err| self.classify(err))
    }

    /// Allocate guest memory for `bytes` and copy them in. Runs inside the call's
    /// deadline (the caller has just called [`begin`]).
    async fn write_input(&mut self, bytes: &[u8]) -> Result<(i32, i32), CallError> {
        let len = i32::try_from(bytes.len()).map_err(|_| CallError::Abi("message larger than 2 GiB".into()))?;
        let ptr = self.alloc.call_async(&mut self.store, len).await.map_err(|err| self.classify(err))?;
        if ptr == 0 && len > 0 {
            return Err(CallError::Abi(format!("`{}` could not allocate {len} bytes", names::ALLOC)));
        }
        self.memory
            .write(&mut self.store, ptr as u32 as usize, bytes)
            .map_err(|_| CallError::Abi(format!("`{}` returned out-of-bounds pointer {ptr:#x}", names::ALLOC)))?;
        Ok((ptr, len))
    }

    fn read_output(&self, packed: i64) -> Result<Vec<u8>, CallError> {
        self.output(packed).map(<[u8]>::to_vec)
    }

    /// The guest's result buffer, checked to lie inside its memory.
    fn output(&self, packed: i64) -> Result<&[u8], CallError> {
        let (ptr, len) = switchyard_abi::unpack(packed as u64);
        let (start, len) = (ptr as usize, len as usize);
        self.memory
            .data(&self.store)
            .get(start..start.saturating_add(len))
            .ok_or_else(|| CallError::BadOutcome(format!("result {ptr:#x}+{len} lies outside guest memory")))
    }

    fn classify(&self, err: wasmtime::Error) -> CallError {
        classify(err, &self.plugin, self.store.data().last_error.clone())
    }
}

/// Encode `msg` into `buf` (emptied first), sized up front: growing a small
/// buffer field by field cost more than the rest of the encoding.
fn encode_message(msg: &Message, buf: &mut Vec<u8>, positional: bool) -> Result<(), CallError> {
    buf.clear();
    let headers: usize = msg.headers.iter().map(|(name, value)| name.len() + value.len() + 10).sum();
    buf.reserve(ENCODING_OVERHEAD + msg.subject.len() + msg.reply.as_ref().map_or(0, String::len) + headers + msg.payload.len());
    switchyard_abi::encode_message_into(buf, msg, positional).map_err(|err| CallError::Abi(format!("encoding the message: {err}")))
}

/// Field names, markers and delivery info of an encoded message, generously.
const ENCODING_OVERHEAD: usize = 192;

/// `{"kind":"ack"}` as MessagePack: the outcome of most calls, recognised without
/// the generic decoder (an internally tagged enum buffers its fields first).
const ACK: &[u8] = b"\x81\xa4kind\xa3ack";

/// The array of `count` outcomes a batch call returned, each read like a
/// single call's.
fn decode_outcomes(mut bytes: &[u8], count: usize) -> Result<Vec<Outcome>, CallError> {
    use switchyard_abi::batch;
    let bad = |err: rmp_serde::decode::Error| CallError::BadOutcome(printable(&err.to_string()));
    let len = batch::read_len(&mut bytes).map_err(bad)?;
    if len != count {
        return Err(CallError::BadOutcome(format!("{len} outcomes for a batch of {count} messages")));
    }
    let mut outcomes = Vec::with_capacity(count);
    for _ in 0..count {
        outcomes.push(match bytes.strip_prefix(ACK) {
            Some(rest) => {
                bytes = rest;
                Outcome::Ack
            }
            None => batch::read_item::<Outcome>(&mut bytes).map_err(bad)?,
        });
    }
    Ok(outcomes)
}

fn decode_outcome(bytes: &[u8]) -> Result<Outcome, CallError> {
    if bytes == ACK {
        return Ok(Outcome::Ack);
    }
    // The decoder's message may quote the plugin's bytes ("unknown variant …").
    switchyard_abi::decode::<Outcome>(bytes).map_err(|err| CallError::BadOutcome(printable(&err.to_string())))
}

/// Reset per-call state: deadline, fuel, publish buffer.
fn begin(store: &mut Store<HostState>, plugin: &Plugin, collect_publishes: bool) {
    store.data_mut().begin_call(Instant::now() + plugin.spec.timeout, collect_publishes);
    store.set_epoch_deadline(1);
    if let Some(fuel) = plugin.spec.fuel {
        // Only fails on an engine without fuel, which a fuel plugin never uses.
        let _ = store.set_fuel(fuel);
    }
}

/// Turn a wasmtime error into the reason the call failed.
fn classify(err: wasmtime::Error, plugin: &Plugin, last_error: Option<String>) -> CallError {
    if err.chain().any(|cause| cause.is::<DeadlineHit>()) {
        return CallError::Timeout(plugin.spec.timeout);
    }
    if let Some(MemoryLimitHit(cap)) = err.chain().find_map(|cause| cause.downcast_ref::<MemoryLimitHit>()) {
        return CallError::MemoryLimit(*cap);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel(plugin.spec.fuel.unwrap_or_default()),
        Some(trap) => match last_error {
            // The SDK logs a panic's message just before the trap it causes.
            Some(message) => CallError::Trap(format!("{trap}: {message}")),
            None => CallError::Trap(trap.to_string()),
        },
        // Raised by a host function: its own error, not wasmtime's context
        // ("error while executing at wasm backtrace …") around it.
        None => match err.chain().find_map(|cause| cause.downcast_ref::<wasmtime_wasi::I32Exit>()) {
            Some(exit) => CallError::Exit(exit.0),
            None => CallError::Trap(err.root_cause().to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use switchyard_abi::{Delivery, Message, Outcome};

    #[test]
    fn the_ack_shortcut_agrees_with_the_decoder() {
        let bytes = switchyard_abi::encode(&Outcome::Ack).expect("encodes");
        assert_eq!(bytes, super::ACK);
        assert_eq!(super::decode_outcome(&bytes).expect("decodes"), Outcome::Ack);
        let reply = Outcome::Reply { payload: b"x".to_vec(), headers: Vec::new() };
        let bytes = switchyard_abi::encode(&reply).expect("encodes");
        assert_eq!(super::decode_outcome(&bytes).expect("decodes"), reply);
    }

    #[test]
    fn the_reused_buffer_holds_exactly_what_the_abi_encodes() {
        let mut buf = vec![0xff; 3];
        let small = Message { subject: "a".into(), ..Message::default() };
        let full = Message {
            subject: "orders.created".into(),
            reply: Some("_INBOX.x".into()),
            headers: vec![("k".into(), "v".repeat(500))],
            payload: vec![7; 4096],
            attempt: 3,
            delivery: Some(Delivery { max_deliver: 5, stream: "ORDERS".into(), stream_sequence: 42, ..Default::default() }),
        };
        for msg in [&small, &full, &small] {
            super::encode_message(msg, &mut buf, false).expect("encodes");
            assert_eq!(buf, switchyard_abi::encode(msg).expect("encodes"));
            super::encode_message(msg, &mut buf, true).expect("encodes");
            assert_eq!(&switchyard_abi::decode::<Message>(&buf).expect("decodes"), msg);
        }
    }
}
