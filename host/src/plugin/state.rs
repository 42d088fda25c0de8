//! The per-instance state a wasm store carries: WASI context, memory limiter, the
//! publishes buffered during the current call, and the call's deadline.

use std::sync::Arc;
use std::time::Instant;

use switchyard_abi::Publish;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p1::WasiP1Ctx;

/// Caps on what one call may buffer, so a plugin cannot make the host hold
/// unbounded memory on its behalf.
pub const MAX_PUBLISHES_PER_CALL: usize = 10_000;
pub const MAX_PUBLISH_BYTES_PER_CALL: usize = 64 * 1024 * 1024;

/// Set when the memory limiter refused a grow, so the resulting trap is reported
/// as a memory limit rather than as whatever the guest's allocator did next.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {0} bytes exceeded")]
pub struct MemoryLimitHit(pub u64);

/// Returned by the epoch callback when the call's wall-clock budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub struct DeadlineHit;

pub struct HostState {
    pub wasi: WasiP1Ctx,
    pub plugin: Arc<str>,
    pub memory_cap: u64,
    /// Subject patterns this plugin may publish to.
    pub allow: Arc<[String]>,
    /// `Some` only while `switchyard_handle` runs; publishing during init is refused.
    pub publishes: Option<Vec<Publish>>,
    pub publish_bytes: usize,
    pub deadline: Instant,
    /// The last ERROR line the guest logged during this call (the SDK logs panic
    /// messages there), to explain a trap.
    pub last_error: Option<String>,
}

impl HostState {
    pub fn begin_call(&mut self, deadline: Instant, collect_publishes: bool) {
        self.deadline = deadline;
        self.publishes = collect_publishes.then(Vec::new);
        self.publish_bytes = 0;
        self.last_error = None;
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
