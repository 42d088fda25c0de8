//! The per-instance state a wasm store carries: WASI context, memory limiter, the
//! publishes buffered during the current call (with what `publish` checks them
//! against: the server's `max_payload`, the message's id prefix), and the call's
//! deadline.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use switchyard_abi::{Delivery, Message, Publish};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p1::WasiP1Ctx;

use super::log_budget::LogBudget;
use crate::telemetry::trace::TraceId;

/// Caps on what one call may buffer, so a plugin cannot make the host hold
/// unbounded memory on its behalf.
pub(super) const MAX_PUBLISHES_PER_CALL: usize = 10_000;
pub(super) const MAX_PUBLISH_BYTES_PER_CALL: usize = 64 * 1024 * 1024;

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
}

/// What a guest's log line says of the message it was handling: buffers
/// reused from call to call, so naming it costs no allocation.
#[derive(Debug, Default)]
pub(super) struct CurrentMessage {
    pub subject: String,
    pub stream_sequence: Option<u64>,
    pub trace_id: Option<TraceId>,
}

impl HostState {
    pub(super) fn begin_call(&mut self, deadline: Instant, collect_publishes: bool) {
        self.started = Instant::now();
        self.deadline = deadline;
        self.publishes = collect_publishes.then(Vec::new);
        self.publish_bytes = 0;
        self.msg_id_prefix.clear();
        self.last_error = None;
        self.log_budget.begin_call();
    }

    /// Number the publishes of this call after the JetStream message `delivery`
    /// describes (none for a core message). The buffer is reused: no allocation
    /// per message once it has grown.
    /// Name `msg` in this call's log lines.
    pub(super) fn handling(&mut self, msg: &Message, trace_id: Option<TraceId>) {
        let current = &mut self.message;
        current.subject.clear();
        current.subject.push_str(&msg.subject);
        current.stream_sequence = msg.delivery.as_ref().map(|d| d.stream_sequence);
        current.trace_id = trace_id;
    }

    pub(super) fn number_publishes_after(&mut self, delivery: Option<&Delivery>) {
        self.msg_id_prefix.clear();
        if let Some(delivery) = delivery {
            // Writing into a String cannot fail.
            let _ = write!(self.msg_id_prefix, "{}:{}", delivery.stream, delivery.stream_sequence);
        }
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
