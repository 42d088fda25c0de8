//! A shadow run: a new version handles copies of live messages after the
//! current version settled them, in its own instances, `concurrency` at a
//! time from a bounded queue (a message that finds it full is dropped and
//! counted). What it would have published and replied is captured (a plugin
//! reaches NATS only through what the host sends for it), compared with what
//! the current version did, and never sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_abi::{Header, Message, Outcome};
use tokio::sync::mpsc;

use super::error::CallError;
use super::guest_threads;
use super::instance::{Handled, Instance};
use super::load::Plugin;
use super::rollout::ShadowCounts;
use super::text::printable;
use crate::config::Isolation;
use crate::telemetry::RolloutMetrics;

/// Longest payload kept in a difference, as text.
const SHOWN_PAYLOAD: usize = 2048;

/// What a version did with a message, as far as anyone outside could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// ack, reply, retry, reject, or "plugin error: <kind>".
    kind: String,
    publishes: Vec<(String, Vec<u8>)>,
    /// The reply's payload and the headers the plugin gave it.
    reply: Option<(Vec<u8>, Vec<Header>)>,
}

impl Observed {
    pub fn of(result: &Result<Handled, CallError>) -> Self {
        let (kind, reply) = match result {
            Ok(Handled { outcome, .. }) => match outcome {
                Outcome::Ack => ("ack".to_owned(), None),
                Outcome::Reply { payload, headers } => ("reply".to_owned(), Some((payload.clone(), headers.clone()))),
                Outcome::Retry { .. } => ("retry".to_owned(), None),
                Outcome::Reject { .. } => ("reject".to_owned(), None),
            },
            Err(err) => (format!("plugin error: {}", err.kind()), None),
        };
        let publishes = match result {
            Ok(handled) => handled.publishes.iter().map(|p| (p.subject.clone(), p.payload.clone())).collect(),
            Err(_) => Vec::new(),
        };
        Self { kind, publishes, reply }
    }

    fn shown(&self) -> Shown {
        Shown {
            outcome: self.kind.clone(),
            publishes: self.publishes.iter().map(|(subject, payload)| format!("{subject} {}", text(payload))).collect(),
            reply: self.reply.as_ref().map(|(payload, headers)| match headers.is_empty() {
                true => text(payload),
                false => format!("{}{}", headers_text(headers), text(payload)),
            }),
        }
    }
}

/// One difference kept for `switchyard rollout diff`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diff {
    pub subject: String,
    pub payload: String,
    pub current: Shown,
    pub shadow: Shown,
    /// What differs, one line each: `publish[0] done.x: $.total: 10 -> 11`.
    pub changes: Vec<String>,
}

/// An outcome as text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shown {
    pub outcome: String,
    /// `<subject> <payload>` each.
    pub publishes: Vec<String>,
    pub reply: Option<String>,
}

/// Messages waiting for the shadow's calls; one more is dropped (and counted).
const QUEUE: usize = 256;

pub struct Shadow {
    state: Arc<State>,
    queue: mpsc::Sender<(Message, Observed)>,
}

/// What the shadow's calls share with it.
struct State {
    candidate: Arc<Plugin>,
    idle: Mutex<Vec<Instance>>,
    same: AtomicU64,
    different: AtomicU64,
    dropped: AtomicU64,
    diffs: Mutex<Vec<Diff>>,
    metrics: RolloutMetrics,
}

impl std::fmt::Debug for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadow").field("candidate", &self.state.candidate.hash).finish()
    }
}

impl Shadow {
    /// A shadow of `candidate`, its calls started: they end once it is
    /// dropped and what it queued is done.
    pub(super) fn new(candidate: Arc<Plugin>, metrics: RolloutMetrics) -> Self {
        let concurrency = candidate.spec.rollout.concurrency.max(1) as usize;
        let state = Arc::new(State {
            candidate,
            idle: Mutex::new(Vec::new()),
            same: AtomicU64::new(0),
            different: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            diffs: Mutex::new(Vec::new()),
            metrics,
        });
        let (queue, jobs) = mpsc::channel::<(Message, Observed)>(QUEUE);
        // `concurrency` callers take turns at the queue.
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        for _ in 0..concurrency {
            let (jobs, state) = (jobs.clone(), state.clone());
            tokio::spawn(async move {
                loop {
                    let job = jobs.lock().await.recv().await;
                    let Some((msg, current)) = job else { return };
                    let shadow = state.run(&msg).await;
                    state.compare(&msg, &current, &shadow);
                }
            });
        }
        Self { state, queue }
    }

    pub(super) fn candidate(&self) -> &Arc<Plugin> {
        &self.state.candidate
    }

    /// Whether this message is in the sample.
    pub(super) fn samples(&self) -> bool {
        let sample = self.state.candidate.spec.rollout.sample;
        sample >= 1.0 || fastrand::f64() < sample
    }

    pub(super) fn counts(&self) -> ShadowCounts {
        let state = &self.state;
        ShadowCounts {
            same: state.same.load(Ordering::Relaxed),
            different: state.different.load(Ordering::Relaxed),
            dropped: state.dropped.load(Ordering::Relaxed),
        }
    }

    pub(super) fn diffs(&self) -> Vec<Diff> {
        lock(&self.state.diffs).clone()
    }

    /// Queue `msg` for the candidate, to compare with `current`; dropped (and
    /// counted) when the shadow's calls cannot keep up.
    pub fn offer(&self, msg: Message, current: Observed) {
        if self.queue.try_send((msg, current)).is_err() {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            self.state.metrics.shadow_dropped.inc();
        }
    }
}

impl State {
    /// One call of the candidate, where live calls run (a call busy for a
    /// whole epoch tick moves to the guest threads).
    async fn run(&self, msg: &Message) -> Observed {
        let instance = lock(&self.idle).pop();
        let instance = match instance {
            Some(instance) => instance,
            None => match guest_threads::run(Instance::new(self.candidate.clone()), true).await.0 {
                Ok(instance) => instance.shadowed(),
                Err(err) => return Observed { kind: format!("plugin error: no instance: {err:?}"), publishes: Vec::new(), reply: None },
            },
        };
        let ((instance, result), _) = guest_threads::run(instance.call(msg, None), true).await;
        if result.is_ok() && self.candidate.spec.isolation == Isolation::Pooled {
            lock(&self.idle).push(instance);
        }
        Observed::of(&result)
    }

    fn compare(&self, msg: &Message, current: &Observed, shadow: &Observed) {
        if shadow == current {
            self.same.fetch_add(1, Ordering::Relaxed);
            self.metrics.shadow_same.inc();
            return;
        }
        self.different.fetch_add(1, Ordering::Relaxed);
        self.metrics.shadow_different.inc();
        let mut diffs = lock(&self.diffs);
        if diffs.len() < self.candidate.spec.rollout.keep_diffs as usize {
            diffs.push(Diff {
                subject: msg.subject.clone(),
                payload: text(&msg.payload),
                current: current.shown(),
                shadow: shadow.shown(),
                changes: changes(current, shadow),
            });
        }
    }
}

/// What differs between two outcomes, one line each; JSON payloads field by field.
fn changes(current: &Observed, shadow: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    if current.kind != shadow.kind {
        out.push(format!("outcome: {} -> {}", current.kind, shadow.kind));
    }
    if current.publishes.len() != shadow.publishes.len() {
        out.push(format!("publishes: {} -> {}", current.publishes.len(), shadow.publishes.len()));
    }
    for (i, (a, b)) in current.publishes.iter().zip(&shadow.publishes).enumerate() {
        if a.0 != b.0 {
            out.push(format!("publish[{i}] subject: {} -> {}", a.0, b.0));
        }
        payload_changes(&format!("publish[{i}] {}", b.0), &a.1, &b.1, &mut out);
    }
    match (&current.reply, &shadow.reply) {
        (Some((a, a_headers)), Some((b, b_headers))) => {
            if a_headers != b_headers {
                out.push(format!("reply headers: {}-> {}", headers_text(a_headers), headers_text(b_headers)));
            }
            payload_changes("reply", a, b, &mut out);
        }
        (None, None) => {}
        (a, b) => {
            let shown = |reply: &Option<(Vec<u8>, Vec<Header>)>| reply.as_ref().map_or("none".into(), |(payload, _)| text(payload));
            out.push(format!("reply: {} -> {}", shown(a), shown(b)));
        }
    }
    out
}

fn payload_changes(what: &str, a: &[u8], b: &[u8], out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (serde_json::from_slice::<Value>(a), serde_json::from_slice::<Value>(b)) {
        (Ok(a), Ok(b)) => json_changes(what, "$", &a, &b, out),
        _ => out.push(format!("{what}: {} -> {}", text(a), text(b))),
    }
}

/// Differences between two JSON values, as `path: before -> after` lines.
fn json_changes(what: &str, path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, before) in x {
                match y.get(key) {
                    Some(after) => json_changes(what, &format!("{path}.{key}"), before, after, out),
                    None => out.push(format!("{what}: {path}.{key}: {before} -> (missing)")),
                }
            }
            for (key, after) in y.iter().filter(|(key, _)| !x.contains_key(*key)) {
                out.push(format!("{what}: {path}.{key}: (missing) -> {after}"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (before, after)) in x.iter().zip(y).enumerate() {
                json_changes(what, &format!("{path}[{i}]"), before, after, out);
            }
        }
        _ if a != b => out.push(format!("{what}: {path}: {a} -> {b}")),
        _ => {}
    }
}

/// `[name: value, …] ` or `[] `.
fn headers_text(headers: &[Header]) -> String {
    let pairs: Vec<String> = headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
    printable(&format!("[{}] ", pairs.join(", ")))
}

/// A payload as readable text, cut to a length a terminal shows.
fn text(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let cut: String = text.chars().take(SHOWN_PAYLOAD).collect();
    if cut.len() < text.len() { format!("{}… ({} bytes)", printable(&cut), payload.len()) } else { printable(&cut) }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(kind: &str, publishes: &[(&str, &str)], reply: Option<&str>) -> Observed {
        Observed {
            kind: kind.to_owned(),
            publishes: publishes.iter().map(|(s, p)| ((*s).to_owned(), p.as_bytes().to_vec())).collect(),
            reply: reply.map(|r| (r.as_bytes().to_vec(), Vec::new())),
        }
    }

    #[test]
    fn a_changed_json_field_is_named_by_its_path() {
        let a = observed("ack", &[("done.x", r#"{"total":10,"items":[1,2],"id":"a"}"#)], None);
        let b = observed("ack", &[("done.x", r#"{"total":11,"items":[1,3],"id":"a","new":true}"#)], None);
        assert_eq!(
            changes(&a, &b),
            [
                "publish[0] done.x: $.items[1]: 2 -> 3",
                "publish[0] done.x: $.total: 10 -> 11",
                "publish[0] done.x: $.new: (missing) -> true",
            ]
        );
    }

    #[test]
    fn outcomes_replies_and_plain_payloads_are_compared() {
        let a = observed("reply", &[("a", "x")], Some("yes"));
        let b = observed("retry", &[("b", "y"), ("c", "z")], None);
        assert_eq!(
            changes(&a, &b),
            ["outcome: reply -> retry", "publishes: 1 -> 2", "publish[0] subject: a -> b", "publish[0] b: x -> y", "reply: yes -> none"]
        );
        assert!(changes(&a, &a).is_empty());
        let mut headed = a.clone();
        headed.reply = Some((b"yes".to_vec(), vec![("echoed-by".into(), "echo".into())]));
        assert_eq!(changes(&a, &headed), ["reply headers: [] -> [echoed-by: echo] "]);
    }
}
