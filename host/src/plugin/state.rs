//! The per-instance state a wasm store carries: WASI context, memory limiter, the
//! publishes buffered during the current call (with what `publish` checks them
//! against: the server's `max_payload`, the message's id prefix), and the call's
//! deadline.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchyard_abi::{Delivery, Message, Publish};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p1::WasiP1Ctx;

use super::log_budget::LogBudget;
use super::nats::Nats;
use crate::telemetry::trace::TraceId;

/// Caps on what one call may buffer, so a plugin cannot make the host hold
/// unbounded memory on its behalf.
pub(super) const MAX_PUBLISHES_PER_CALL: usize = 10_000;
pub(super) const MAX_PUBLISH_BYTES_PER_CALL: usize = 64 * 1024 * 1024;
/// KV calls and requests one message (or `init`) may make.
pub(super) const MAX_CALLS_PER_MESSAGE: usize = 1_000;

/// Set when the memory limiter refused a grow, so the resulting trap is reported
/// as a memory limit rather than as whatever the guest's allocator did next.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {0} bytes exceeded")]
pub(super) struct MemoryLimitHit(pub u64);

/// Returned by the epoch callback when the call's wall-clock budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub(super) struct DeadlineHit;

/// The NATS server's `max_payload` in bytes, shared by the runtime and every
/// instance; 0 while the daemon has not said (no size check then).
#[derive(Debug, Clone, Default)]
pub(super) struct PayloadLimit(Arc<AtomicUsize>);

impl PayloadLimit {
    pub(super) fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> Option<usize> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&bytes| bytes > 0)
    }
}

pub(super) struct HostState {
    pub wasi: WasiP1Ctx,
    pub plugin: Arc<str>,
    /// The version's hash, for the log lines the guest writes.
    pub version: Arc<str>,
    pub memory_cap: u64,
    /// Subject patterns this plugin may publish to.
    pub allow: Arc<[String]>,
    /// `Some` only while `switchyard_handle` runs; publishing during init is refused.
    pub publishes: Option<Vec<Publish>>,
    pub publish_bytes: usize,
    /// `<stream>:<sequence>` of the JetStream message being handled, empty for a
    /// core message: its publishes get `Nats-Msg-Id = <this>:<n>`.
    pub msg_id_prefix: String,
    pub max_payload: PayloadLimit,
    pub deadline: Instant,
    /// When the current call began: a call younger than one epoch tick is not
    /// made to yield (see the epoch callback in `instance.rs`).
    pub started: Instant,
    /// The last ERROR line the guest logged during this call (the SDK logs panic
    /// messages there), to explain a trap.
    pub last_error: Option<String>,
    pub log_budget: LogBudget,
    /// The message being handled, as the guest's log lines name it.
    pub message: CurrentMessage,
    /// While `switchyard_handle_batch` runs: its messages, and the publishes of
    /// those the guest is done with.
    pub batch: Batch,
    /// Buckets this plugin may use, and the runtime's way to NATS.
    pub kv_allow: Arc<[String]>,
    /// A shadow's instance: it may read buckets, but its key-value writes and
    /// requests answer `UNAVAILABLE`, as they would act for real.
    pub shadow: bool,
    pub nats: Arc<Nats>,
    /// Subject patterns this plugin may send requests to.
    pub request_allow: Arc<[String]>,
    /// KV calls and requests made for the current message (or `init`).
    pub calls: usize,
    /// What the last `kv_get` or `kv_keys` left for `take_result`.
    pub result: Vec<u8>,
}

/// The messages of a batch call, as `begin_message` switches from one to the
/// next. Kept from call to call, so naming the messages allocates nothing once
/// its buffers have grown.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// A batch call is running.
    active: bool,
    /// The first `len` are this call's.
    items: Vec<BatchItem>,
    len: usize,
    /// The index the next `begin_message` must name.
    next: usize,
    /// Publishes of the messages before the current one, in order.
    done: Vec<Vec<Publish>>,
    /// Each message's own budget: wall clock and fuel.
    timeout: Duration,
    fuel: Option<u64>,
}

#[derive(Debug, Default)]
struct BatchItem {
    subject: String,
    /// Empty without a delivery.
    stream: String,
    stream_sequence: Option<u64>,
    trace_id: Option<TraceId>,
}

/// Why `begin_message` was refused.
pub(super) enum NotBegun {
    /// No batch call is running.
    NoBatch,
    /// Not the next index.
    OutOfOrder,
}

impl Batch {
    /// A batch call of `msgs` begins.
    pub(super) fn start(&mut self, msgs: &[&Message], trace_ids: &[Option<TraceId>], timeout: Duration, fuel: Option<u64>) {
        if self.items.len() < msgs.len() {
            self.items.resize_with(msgs.len(), BatchItem::default);
        }
        for ((item, msg), trace_id) in self.items.iter_mut().zip(msgs).zip(trace_ids) {
            item.subject.clear();
            item.subject.push_str(&msg.subject);
            item.stream.clear();
            item.stream.push_str(msg.delivery.as_ref().map_or("", |d| d.stream.as_str()));
            item.stream_sequence = msg.delivery.as_ref().map(|d| d.stream_sequence);
            item.trace_id = *trace_id;
        }
        self.active = true;
        self.len = msgs.len();
        self.next = 0;
        self.done = Vec::with_capacity(msgs.len());
        (self.timeout, self.fuel) = (timeout, fuel);
    }
}

/// What a guest's log line says of the message it was handling: buffers
/// reused from call to call, so naming it costs no allocation.
#[derive(Debug, Default)]
pub(super) struct CurrentMessage {
    pub subject: String,
    pub stream_sequence: Option<u64>,
    pub trace_id: Option<TraceId>,
}

impl CurrentMessage {
    fn set(&mut self, subject: &str, stream_sequence: Option<u64>, trace_id: Option<TraceId>) {
        self.subject.clear();
        self.subject.push_str(subject);
        self.stream_sequence = stream_sequence;
        self.trace_id = trace_id;
    }
}

impl HostState {
    pub(super) fn begin_call(&mut self, deadline: Instant, collect_publishes: bool) {
        self.started = Instant::now();
        self.deadline = deadline;
        self.publishes = collect_publishes.then(Vec::new);
        self.publish_bytes = 0;
        self.msg_id_prefix.clear();
        self.last_error = None;
        self.batch.active = false;
        self.calls = 0;
        self.result = Vec::new();
        self.log_budget.begin_call();
    }

    /// Name `msg` in this call's log lines.
    pub(super) fn handling(&mut self, msg: &Message, trace_id: Option<TraceId>) {
        self.message.set(&msg.subject, msg.delivery.as_ref().map(|d| d.stream_sequence), trace_id);
    }

    /// Number the publishes of this call after the JetStream message `delivery`
    /// describes (none for a core message). The buffer is reused: no allocation
    /// per message once it has grown.
    pub(super) fn number_publishes_after(&mut self, delivery: Option<&Delivery>) {
        self.set_msg_id_prefix(delivery.map(|d| (d.stream.as_str(), d.stream_sequence)));
    }

    fn set_msg_id_prefix(&mut self, delivery: Option<(&str, u64)>) {
        self.msg_id_prefix.clear();
        if let Some((stream, sequence)) = delivery {
            // Writing into a String cannot fail.
            let _ = write!(self.msg_id_prefix, "{stream}:{sequence}");
        }
    }

    /// `begin_message(index)`: the publishes, log lines and budget that follow
    /// are message `index`'s. Returns the fuel to give it.
    pub(super) fn begin_message(&mut self, index: i32) -> Result<Option<u64>, NotBegun> {
        if !self.batch.active {
            return Err(NotBegun::NoBatch);
        }
        let mut batch = std::mem::take(&mut self.batch);
        let result = self.switch_to(&mut batch, index);
        self.batch = batch;
        result
    }

    fn switch_to(&mut self, batch: &mut Batch, index: i32) -> Result<Option<u64>, NotBegun> {
        let Some(item) = usize::try_from(index).ok().filter(|&i| i == batch.next && i < batch.len).and_then(|i| batch.items.get(i)) else {
            return Err(NotBegun::OutOfOrder);
        };
        if batch.next > 0 {
            batch.done.push(self.publishes.replace(Vec::new()).unwrap_or_default());
        }
        batch.next += 1;
        self.publish_bytes = 0;
        self.calls = 0;
        self.set_msg_id_prefix(item.stream_sequence.map(|sequence| (item.stream.as_str(), sequence)));
        self.message.set(&item.subject, item.stream_sequence, item.trace_id);
        self.started = Instant::now();
        self.deadline = self.started + batch.timeout;
        Ok(batch.fuel)
    }

    /// The batch call returned: each message's publishes, in order, or why the
    /// guest's account does not hold (a message it never began).
    pub(super) fn finish_batch(&mut self) -> Result<Vec<Vec<Publish>>, String> {
        let batch = &mut self.batch;
        batch.active = false;
        if batch.next != batch.len {
            return Err(format!("began {} of the batch's {} messages", batch.next, batch.len));
        }
        let mut done = std::mem::take(&mut batch.done);
        done.extend(self.publishes.take());
        Ok(done)
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_cap {
            return Err(wasmtime::Error::new(MemoryLimitHit(self.memory_cap)));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; 100k entries is far beyond any real plugin.
        Ok(desired <= 100_000)
    }
}
