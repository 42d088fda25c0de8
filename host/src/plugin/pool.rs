//! A route's instances of its plugin: reused across messages (a call on a warm
//! instance costs about a microsecond), discarded after any failure, and tied to
//! the plugin version they were made from. A plugin with `isolation = "fresh"`
//! gets a new instance for every message instead; nothing is kept but the one
//! the loader made, which serves the first message.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use switchyard_abi::{Message, Outcome};

use super::error::CallError;
use super::guest_threads;
use super::instance::{Handled, Instance, NewError};
use super::load::Plugin;
use super::rollout::{Judgement, Rollout};
use crate::config::Isolation;
use crate::telemetry::trace::TraceId;

pub struct Pool {
    current: ArcSwap<Plugin>,
    /// The version swapped in last, while it is on probation.
    rollout: Mutex<Option<Rollout>>,
    /// Whether `rollout` is `Some`: read on every call, so the common case (no
    /// version on probation) takes no lock.
    probation: AtomicBool,
    idle: Mutex<Vec<Instance>>,
    /// Idle instances kept; the route's concurrency.
    max_idle: usize,
    rollbacks: AtomicU64,
    /// The host's `switchyard_reloads_total{result="rolled_back"}`, when metrics are kept.
    rolled_back: Option<prometheus_client::metrics::counter::Counter>,
    /// Instances out of `idle`, in a call now (for the metrics).
    busy: AtomicUsize,
    /// The last call ran past its first poll (it yielded): start the next one on
    /// the guest threads rather than on the host's (see `guest_threads`).
    slow: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("plugin", &self.current.load().hash).field("max_idle", &self.max_idle).finish()
    }
}

impl Pool {
    /// A pool serving `plugin`, seeded with the instance that proved it loads.
    pub fn new(plugin: Arc<Plugin>, first: Instance, max_idle: usize) -> Self {
        Self {
            current: ArcSwap::new(plugin),
            rollout: Mutex::new(None),
            probation: AtomicBool::new(false),
            idle: Mutex::new(vec![first]),
            max_idle: max_idle.max(1),
            rollbacks: AtomicU64::new(0),
            rolled_back: None,
            busy: AtomicUsize::new(0),
            slow: AtomicBool::new(false),
        }
    }

    /// Count this pool's rollbacks in `counter` too.
    pub fn counting_rollbacks_in(self, counter: prometheus_client::metrics::counter::Counter) -> Self {
        Self { rolled_back: Some(counter), ..self }
    }

    /// The version new messages go to.
    pub fn plugin(&self) -> Arc<Plugin> {
        self.current.load_full()
    }

    /// Send new messages to `plugin` from now on; calls in flight finish on the
    /// version they started with, whose idle instances are dropped. The new
    /// version is on probation (see [`Rollout`]); `first` is an instance of it.
    pub fn swap(&self, plugin: Arc<Plugin>, first: Option<Instance>) {
        // Probation starts before the first message can reach the new version.
        let mut rollout = lock(&self.rollout);
        *rollout = Rollout::start(self.current.load_full(), plugin.clone());
        self.probation.store(rollout.is_some(), Ordering::Release);
        drop(rollout);
        self.current.store(plugin.clone());
        let mut idle = lock(&self.idle);
        idle.retain(|instance| Arc::ptr_eq(instance.plugin(), &plugin));
        idle.extend(first);
    }

    /// Call the plugin on `msg`: the version that handled it, the result, and
    /// whether that version was on probation (a failure then is its fault, and
    /// the message should be retried rather than dead-lettered).
    pub async fn call(&self, msg: &Message) -> Call {
        self.call_traced(msg, None).await
    }

    /// [`Pool::call`] for a message in the trace `trace_id`, which the guest's
    /// log lines then carry.
    pub async fn call_traced(&self, msg: &Message, trace_id: Option<TraceId>) -> Call {
        let (plugin, result) = self.call_current(msg, trace_id).await;
        let on_probation = self.judge(&plugin, &result);
        Call { plugin, result, on_probation }
    }

    /// Count a result against a version on probation; roll back or accept it.
    fn judge(&self, plugin: &Arc<Plugin>, result: &Result<Handled, CallError>) -> bool {
        if !self.probation.load(Ordering::Acquire) {
            return false;
        }
        let mut rollout = lock(&self.rollout);
        let Some(watch) = rollout.as_mut().filter(|r| Arc::ptr_eq(&r.candidate, plugin)) else {
            return false;
        };
        let success = matches!(result, Ok(Handled { outcome: Outcome::Ack | Outcome::Reply { .. }, .. }));
        match watch.record(success) {
            Judgement::Undecided => {}
            Judgement::Accepted => {
                tracing::info!(plugin = %plugin.spec.name, version = %plugin.hash, "new version accepted after probation");
                *rollout = None;
                self.probation.store(false, Ordering::Release);
            }
            Judgement::RollBack { failed, seen } => {
                let previous = watch.previous.clone();
                tracing::warn!(
                    plugin = %plugin.spec.name, version = %plugin.hash, restored = %previous.hash,
                    "rolled back: {failed} of the first {seen} messages failed on the new version"
                );
                self.current.store(previous);
                self.rollbacks.fetch_add(1, Ordering::Relaxed);
                if let Some(counter) = &self.rolled_back {
                    counter.inc();
                }
                *rollout = None;
                self.probation.store(false, Ordering::Release);
                lock(&self.idle).clear();
            }
        }
        true
    }

    /// Rollbacks this pool has made.
    pub fn rollbacks(&self) -> u64 {
        self.rollbacks.load(Ordering::Relaxed)
    }

    /// Instances of this route's plugin: idle and in a call.
    pub fn instances(&self) -> usize {
        lock(&self.idle).len() + self.busy.load(Ordering::Relaxed)
    }

    /// Linear memory of the idle instances (those in a call cannot be read).
    pub fn memory_bytes(&self) -> usize {
        lock(&self.idle).iter().map(Instance::memory_bytes).sum()
    }

    async fn call_current(&self, msg: &Message, trace_id: Option<TraceId>) -> (Arc<Plugin>, Result<Handled, CallError>) {
        self.busy.fetch_add(1, Ordering::Relaxed);
        // Counted down even when the call is dropped (a route aborted at shutdown).
        let _busy = Busy(&self.busy);
        self.call_instance(msg, trace_id).await
    }

    async fn call_instance(&self, msg: &Message, trace_id: Option<TraceId>) -> (Arc<Plugin>, Result<Handled, CallError>) {
        let here_first = !self.slow.load(Ordering::Relaxed);
        let instance = match self.take() {
            Some(instance) => instance,
            // `init` is guest code too: it runs where calls do.
            None => match guest_threads::run(Instance::new(self.plugin()), here_first).await.0 {
                Ok(instance) => instance,
                Err(err) => {
                    let reason = match err {
                        NewError::Call(call) => call,
                        NewError::Refused(reason) => CallError::Abi(format!("init refused a new instance: {reason}")),
                    };
                    return (self.plugin(), Err(reason));
                }
            },
        };
        let ((instance, result), slow) = guest_threads::run(instance.call(msg, trace_id), here_first).await;
        self.slow.store(slow, Ordering::Relaxed);
        let plugin = instance.plugin().clone();
        // A failed instance may hold corrupt state (a trap mid-update, a half-grown
        // heap): never reuse it. A fresh plugin's instance has seen a message: done.
        if result.is_ok() && plugin.spec.isolation == Isolation::Pooled {
            self.put(instance);
        }
        (plugin, result)
    }

    fn take(&self) -> Option<Instance> {
        lock(&self.idle).pop()
    }

    fn put(&self, instance: Instance) {
        // An instance of a replaced version is dropped, not reused.
        if !Arc::ptr_eq(instance.plugin(), &self.current.load()) {
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }
}

/// The result of [`Pool::call`].
#[derive(Debug)]
pub struct Call {
    pub plugin: Arc<Plugin>,
    pub result: Result<Handled, CallError>,
    pub on_probation: bool,
}

struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
