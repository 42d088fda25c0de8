//! A route's instances of its plugin: reused across messages (a call on a warm
//! instance costs about a microsecond), discarded after any failure, and tied to
//! the plugin version they were made from. A plugin with `isolation = "fresh"`
//! gets a new instance for every message instead; nothing is kept but the one
//! the loader made, which serves the first message.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use switchyard_abi::{Message, Outcome};

use super::error::CallError;
use super::guest_threads;
use super::instance::{Handled, Instance, NewError};
use super::load::Plugin;
use super::rollout::{Judgement, Trial, TrialStatus};
use super::shadow::{Diff, Shadow};
use crate::config::{Isolation, KeySource, Strategy};
use crate::telemetry::RolloutMetrics;
use crate::telemetry::trace::TraceId;

pub struct Pool {
    current: ArcSwap<Plugin>,
    /// The version swapped in last, while it is on trial (`rollout.rs`).
    trial: Mutex<Option<Trial>>,
    /// Whether `trial` is `Some`: read on every call, so the common case (no
    /// version on trial) takes no lock.
    on_trial: AtomicBool,
    /// How the last trial ended, for `switchyard rollout status`.
    last_trial: Mutex<Option<String>>,
    /// Idle instances of the current version and of a canary.
    idle: Mutex<Vec<Instance>>,
    /// Idle instances kept per version; the route's concurrency.
    max_idle: usize,
    rollbacks: AtomicU64,
    metrics: RolloutMetrics,
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

/// Which versions a call may go to.
#[derive(Debug, Clone, Copy)]
pub enum Pick<'a> {
    /// The current one, or a canary taking its share; the route's `order_by`
    /// gives the key that keeps a message's key on one version (read only
    /// while a canary runs).
    Any { order_by: Option<&'a KeySource> },
    /// The current one only: a canary failed this message.
    Current,
}

/// What the version that handled a message was, for the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Current,
    /// Swapped in and on probation: a failure may be its fault, so the message
    /// is retried rather than dead-lettered.
    Probation,
    /// A canary: a failure is retried on the current version at once.
    Canary,
}

impl Pool {
    /// A pool serving `plugin`, seeded with the instance that proved it loads.
    pub fn new(plugin: Arc<Plugin>, first: Instance, max_idle: usize) -> Self {
        Self {
            current: ArcSwap::new(plugin),
            trial: Mutex::new(None),
            on_trial: AtomicBool::new(false),
            last_trial: Mutex::new(None),
            idle: Mutex::new(vec![first]),
            max_idle: max_idle.max(1),
            rollbacks: AtomicU64::new(0),
            metrics: RolloutMetrics::default(),
            busy: AtomicUsize::new(0),
            slow: AtomicBool::new(false),
        }
    }

    /// Count this pool's rollbacks and trials in the host's metrics.
    pub fn counting_in(self, metrics: RolloutMetrics) -> Self {
        Self { metrics, ..self }
    }

    /// The version new messages go to (a canary aside).
    pub fn plugin(&self) -> Arc<Plugin> {
        self.current.load_full()
    }

    /// A new version arrived: it takes over as its `rollout.strategy` says.
    /// Swap: new messages go to it from now on, on probation; calls in flight
    /// finish on the version they started with, whose idle instances are
    /// dropped. Canary and shadow: it is put on trial beside the current
    /// version. `first` is an instance of it. A version on trial before is
    /// dropped.
    pub fn swap(&self, plugin: Arc<Plugin>, first: Option<Instance>) {
        // The trial starts before the first message can reach the new version.
        let mut trial = lock(&self.trial);
        *trial = Trial::start(self.current.load_full(), plugin.clone(), &self.metrics);
        let becomes_current = matches!(*trial, None | Some(Trial::Probation(_)));
        // A shadow keeps its own instances.
        let first = first.filter(|_| !matches!(*trial, Some(Trial::Shadow(_))));
        if let Some(trial) = trial.as_ref() {
            tracing::info!(plugin = %plugin.spec.name, version = %plugin.hash, strategy = %plugin.spec.rollout.strategy, "new version on trial");
            self.metrics.share.set(i64::from(trial.status().share_percent));
        }
        self.on_trial.store(trial.is_some(), Ordering::Release);
        if becomes_current {
            self.current.store(plugin);
        }
        // Lock order: the trial, then the idle instances.
        let current = self.current.load_full();
        let mut idle = lock(&self.idle);
        idle.retain(|instance| Arc::ptr_eq(instance.plugin(), &current));
        idle.extend(first);
    }

    /// Call the plugin on `msg` (the current version, or a canary taking its share).
    pub async fn call(&self, msg: &Message) -> Call {
        self.call_traced(msg, None, Pick::Any { order_by: None }).await
    }

    /// [`Pool::call`] for a message in the trace `trace_id`, which the guest's
    /// log lines then carry, on a version `pick` allows.
    pub async fn call_traced(&self, msg: &Message, trace_id: Option<TraceId>, pick: Pick<'_>) -> Call {
        let (chosen, role) = self.choose(msg, pick);
        self.busy.fetch_add(1, Ordering::Relaxed);
        // Counted down even when the call is dropped (a route aborted at shutdown).
        let _busy = Busy(&self.busy);
        let (plugin, result, took) = self.call_instance(chosen, msg, trace_id).await;
        let role = match role {
            Role::Canary => {
                self.judge_canary(&plugin, &result, took);
                Role::Canary
            }
            _ => self.judge(&plugin, &result, took),
        };
        Call { plugin, result, role }
    }

    /// Call the current version once on all of `msgs` (`switchyard_handle_batch`):
    /// a result for each, in order, and how long the whole call took. `None`
    /// when they must be called one by one: the version does not handle
    /// batches, it is fresh isolation, a version is on trial (whose choices are
    /// per message), or no instance is idle (a new one comes from a single
    /// call). `Some(Err)` when the batch call failed: a trap or a timeout in
    /// any message discards the instance and its results, and only single calls
    /// can then say which message was at fault (the publishes it buffered were
    /// never sent).
    pub async fn call_batch(&self, msgs: &[&Message], trace_ids: &[Option<TraceId>]) -> Option<Result<(Vec<Call>, Duration), CallError>> {
        let plugin = self.current.load_full();
        if msgs.len() < 2 || !self.batches() {
            return None;
        }
        let instance = self.take(&plugin)?;
        self.busy.fetch_add(1, Ordering::Relaxed);
        let _busy = Busy(&self.busy);
        let here_first = !self.slow.load(Ordering::Relaxed);
        let calling = Instant::now();
        let ((instance, result), slow) = guest_threads::run(instance.call_batch(msgs, trace_ids), here_first).await;
        let took = calling.elapsed();
        self.slow.store(slow, Ordering::Relaxed);
        Some(result.map(|handled| {
            self.put(instance);
            let calls = handled.into_iter().map(|handled| Call { plugin: plugin.clone(), result: Ok(handled), role: Role::Current });
            (calls.collect(), took)
        }))
    }

    /// Whether [`Pool::call_batch`] would call a batch now.
    pub fn batches(&self) -> bool {
        let plugin = self.current.load();
        plugin.batch.load(Ordering::Relaxed) && plugin.spec.isolation == Isolation::Pooled && !self.on_trial.load(Ordering::Acquire)
    }

    /// The version for this call.
    fn choose(&self, msg: &Message, pick: Pick<'_>) -> (Arc<Plugin>, Role) {
        if self.on_trial.load(Ordering::Acquire)
            && let Pick::Any { order_by } = pick
            // A redelivery goes to the current version: it may be a canary's failure.
            && msg.attempt <= 1
            && let Some(Trial::Canary(canary)) = lock(&self.trial).as_ref()
            && canary.takes(order_by.and_then(|order_by| order_by.extract(msg)))
        {
            return (canary.candidate.clone(), Role::Canary);
        }
        (self.current.load_full(), Role::Current)
    }

    /// Count a result of a version on probation, or of the current version
    /// beside a canary: roll back, promote or advance as it decides.
    fn judge(&self, plugin: &Arc<Plugin>, result: &Result<Handled, CallError>, took: Duration) -> Role {
        if !self.on_trial.load(Ordering::Acquire) {
            return Role::Current;
        }
        let mut trial = lock(&self.trial);
        let judgement = match trial.as_mut() {
            Some(Trial::Probation(probation)) if Arc::ptr_eq(&probation.candidate, plugin) => probation.record(succeeded(result)),
            Some(Trial::Canary(canary)) => canary.record(false, succeeded(result), took, Instant::now()),
            _ => return Role::Current,
        };
        let probation = matches!(*trial, Some(Trial::Probation(_)));
        self.decide(&mut trial, judgement);
        if probation { Role::Probation } else { Role::Current }
    }

    fn judge_canary(&self, plugin: &Arc<Plugin>, result: &Result<Handled, CallError>, took: Duration) {
        let mut trial = lock(&self.trial);
        if let Some(Trial::Canary(canary)) = trial.as_mut()
            && Arc::ptr_eq(&canary.candidate, plugin)
        {
            let judgement = canary.record(true, succeeded(result), took, Instant::now());
            self.decide(&mut trial, judgement);
        }
    }

    /// Carry out what the trial's last result decided.
    fn decide(&self, trial: &mut Option<Trial>, judgement: Judgement) {
        let Some(on) = trial.as_ref() else { return };
        let candidate = on.candidate().clone();
        let (name, version) = (&candidate.spec.name, &candidate.hash);
        let strategy = match candidate.spec.rollout.strategy {
            Strategy::Swap => "probation".to_owned(),
            other => other.to_string(),
        };
        match judgement {
            Judgement::Undecided => return,
            Judgement::Advanced(share) => {
                tracing::info!(plugin = %name, version = %version, "canary: the new version now takes {share} % of messages");
                self.metrics.share.set(i64::from(share));
                return;
            }
            Judgement::Accepted => {
                tracing::info!(plugin = %name, version = %version, "new version accepted after its {strategy}");
                self.current.store(candidate.clone());
                self.ended(format!("{strategy}: version {version} accepted"));
            }
            Judgement::RollBack(why) => {
                let restored = match on {
                    Trial::Probation(probation) => probation.previous.clone(),
                    _ => self.current.load_full(),
                };
                tracing::warn!(plugin = %name, version = %version, restored = %restored.hash, "rolled back: {why}");
                self.current.store(restored);
                self.rollbacks.fetch_add(1, Ordering::Relaxed);
                self.metrics.rolled_back.inc();
                self.ended(format!("{strategy}: version {version} rolled back: {why}"));
            }
        }
        *trial = None;
        self.on_trial.store(false, Ordering::Release);
        self.metrics.share.set(0);
        let current = self.current.load_full();
        lock(&self.idle).retain(|instance| Arc::ptr_eq(instance.plugin(), &current));
    }

    fn ended(&self, how: String) {
        *lock(&self.last_trial) = Some(how);
    }

    /// The operator's verdict on the version on trial (`switchyard rollout
    /// promote|abort`): it takes over, or the current (previous) version
    /// serves on. What was done, or why nothing was.
    pub fn conclude(&self, promote: bool) -> Result<String, String> {
        let mut trial = lock(&self.trial);
        let Some(on) = trial.as_ref() else {
            return Err(format!("no version of `{}` is on trial", self.current.load().spec.name));
        };
        let version = on.candidate().hash.clone();
        let judgement = if promote { Judgement::Accepted } else { Judgement::RollBack("aborted by request".into()) };
        self.decide(&mut trial, judgement);
        Ok(if promote { format!("version {version} promoted") } else { format!("version {version} aborted") })
    }

    /// The version on trial and how it fares; how the last trial ended.
    pub fn trial(&self) -> (Option<TrialStatus>, Option<String>) {
        let status = lock(&self.trial).as_ref().map(Trial::status);
        (status, lock(&self.last_trial).clone())
    }

    /// A shadow's differences kept so far.
    pub fn diffs(&self) -> Vec<Diff> {
        match lock(&self.trial).as_ref() {
            Some(Trial::Shadow(shadow)) => shadow.diffs(),
            _ => Vec::new(),
        }
    }

    /// The shadow `msg` should also run on, when a shadow runs and `msg` is a
    /// first delivery in its sample.
    pub fn shadow_for(&self, msg: &Message) -> Option<Arc<Shadow>> {
        if !self.on_trial.load(Ordering::Acquire) || msg.attempt > 1 {
            return None;
        }
        match lock(&self.trial).as_ref() {
            Some(Trial::Shadow(shadow)) if shadow.samples() => Some(shadow.clone()),
            _ => None,
        }
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

    /// Call `plugin` on an idle instance of it, or a new one: the version that
    /// ran (an idle instance may be of it only), the result, and how long the
    /// handler took.
    async fn call_instance(
        &self,
        plugin: Arc<Plugin>,
        msg: &Message,
        trace_id: Option<TraceId>,
    ) -> (Arc<Plugin>, Result<Handled, CallError>, Duration) {
        let here_first = !self.slow.load(Ordering::Relaxed);
        let instance = match self.take(&plugin) {
            Some(instance) => instance,
            // `init` is guest code too: it runs where calls do.
            None => match Box::pin(guest_threads::run(Instance::new(plugin.clone()), here_first)).await.0 {
                Ok(instance) => instance,
                Err(err) => {
                    let reason = match err {
                        NewError::Call(call) => call,
                        NewError::Refused(reason) => CallError::Abi(format!("init refused a new instance: {reason}")),
                    };
                    return (plugin, Err(reason), Duration::ZERO);
                }
            },
        };
        let calling = Instant::now();
        let ((instance, result), slow) = guest_threads::run(instance.call(msg, trace_id), here_first).await;
        let took = calling.elapsed();
        self.slow.store(slow, Ordering::Relaxed);
        // A failed instance may hold corrupt state (a trap mid-update, a half-grown
        // heap): never reuse it. A fresh plugin's instance has seen a message: done.
        if result.is_ok() && plugin.spec.isolation == Isolation::Pooled {
            self.put(instance);
        }
        (plugin, result, took)
    }

    fn take(&self, plugin: &Arc<Plugin>) -> Option<Instance> {
        let mut idle = lock(&self.idle);
        let at = idle.iter().rposition(|instance| Arc::ptr_eq(instance.plugin(), plugin))?;
        Some(idle.swap_remove(at))
    }

    fn put(&self, instance: Instance) {
        // An instance of a replaced version is dropped, not reused.
        let current = Arc::ptr_eq(instance.plugin(), &self.current.load());
        let canary = !current
            && self.on_trial.load(Ordering::Acquire)
            && matches!(lock(&self.trial).as_ref(), Some(Trial::Canary(c)) if Arc::ptr_eq(&c.candidate, instance.plugin()));
        if !current && !canary {
            return;
        }
        let mut idle = lock(&self.idle);
        let kept = idle.iter().filter(|kept| Arc::ptr_eq(kept.plugin(), instance.plugin())).count();
        if kept < self.max_idle {
            idle.push(instance);
        }
    }
}

/// Whether a result counts as a success for a version's trial.
fn succeeded(result: &Result<Handled, CallError>) -> bool {
    matches!(result, Ok(Handled { outcome: Outcome::Ack | Outcome::Reply { .. }, .. }))
}

/// The result of [`Pool::call`].
#[derive(Debug)]
pub struct Call {
    pub plugin: Arc<Plugin>,
    pub result: Result<Handled, CallError>,
    pub role: Role,
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
