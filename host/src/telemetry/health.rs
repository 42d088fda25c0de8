//! What the probes answer: `/healthz` (the host's loop runs and NATS is
//! connected) and `/readyz` (serving: every configured route started and
//! none down). Changed rarely (startup, a route's consumer lost or back, a
//! reload, shutdown), read at each probe.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

/// Where the host is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Serving,
    Draining,
}

#[derive(Debug)]
pub struct Health {
    phase: AtomicU8,
    /// Route name → why it is not serving (did not start, consumer lost).
    down: Mutex<BTreeMap<String, String>>,
}

impl Default for Health {
    fn default() -> Self {
        Self { phase: AtomicU8::new(Phase::Starting as u8), down: Mutex::default() }
    }
}

/// A probe's answer: its body, and whether it is good news (200) or not (503).
#[derive(Debug, Serialize)]
pub struct Probe {
    pub ok: bool,
    pub phase: Phase,
    pub nats_connected: bool,
    /// Route → why it is down; empty when all serve.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub routes_down: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl Health {
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::Draining,
        }
    }

    pub fn route_down(&self, route: &str, why: String) {
        self.lock().insert(route.to_owned(), why);
    }

    pub fn route_up(&self, route: &str) {
        let mut down = self.lock();
        if !down.is_empty() {
            down.remove(route);
        }
    }

    /// After a reload: exactly these routes are down (the configured ones that
    /// did not start); those no longer configured are forgotten.
    pub fn routes_not_started(&self, configured: &[String], running: impl Fn(&str) -> bool) {
        let mut down = self.lock();
        down.retain(|name, _| configured.contains(name));
        for name in configured.iter().filter(|name| !running(name)) {
            down.insert(name.clone(), "not started (see the host's log)".into());
        }
    }

    /// `/healthz`: alive — the loop runs and NATS is connected.
    pub fn live(&self, nats_connected: bool) -> Probe {
        let mut probe = self.probe(nats_connected);
        probe.ok = nats_connected;
        if !nats_connected {
            probe.reasons.push("not connected to NATS".into());
        }
        probe.routes_down.clear();
        probe
    }

    /// `/readyz`: serving every route; not while starting or draining.
    pub fn ready(&self, nats_connected: bool) -> Probe {
        let mut probe = self.probe(nats_connected);
        match probe.phase {
            Phase::Starting => probe.reasons.push("starting".into()),
            Phase::Draining => probe.reasons.push("draining: shutting down".into()),
            Phase::Serving => {}
        }
        if !nats_connected {
            probe.reasons.push("not connected to NATS".into());
        }
        if !probe.routes_down.is_empty() {
            probe.reasons.push(format!("{} route(s) down", probe.routes_down.len()));
        }
        probe.ok = probe.reasons.is_empty();
        probe
    }

    fn probe(&self, nats_connected: bool) -> Probe {
        Probe { ok: false, phase: self.phase(), nats_connected, routes_down: self.lock().clone(), reasons: Vec::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_serving_every_route_connected() {
        let health = Health::default();
        assert!(!health.ready(true).ok, "starting");
        health.set_phase(Phase::Serving);
        assert!(health.ready(true).ok);
        assert!(!health.ready(false).ok, "NATS down");
        health.route_down("orders", "consumer lost".into());
        let probe = health.ready(true);
        assert!(!probe.ok);
        assert_eq!(probe.routes_down["orders"], "consumer lost");
        assert!(health.live(true).ok, "a route down is not a reason to restart the host");
        health.route_up("orders");
        assert!(health.ready(true).ok);
        health.routes_not_started(&["a".into(), "b".into()], |name| name == "a");
        assert_eq!(health.ready(true).routes_down.keys().collect::<Vec<_>>(), ["b"]);
        health.set_phase(Phase::Draining);
        assert_eq!(health.ready(true).reasons[0], "draining: shutting down");
    }
}
