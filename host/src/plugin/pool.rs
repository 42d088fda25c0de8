//! A route's instances of its plugin: reused across messages (a call on a warm
//! instance costs about a microsecond, a fresh one tens), discarded after any
//! failure, and tied to the plugin version they were made from.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use switchyard_abi::Message;

use super::error::CallError;
use super::instance::{Handled, Instance, NewError};
use super::load::Plugin;

pub struct Pool {
    current: ArcSwap<Plugin>,
    idle: Mutex<Vec<Instance>>,
    /// Idle instances kept; the route's concurrency.
    max_idle: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("plugin", &self.current.load().hash).field("max_idle", &self.max_idle).finish()
    }
}

impl Pool {
    /// A pool serving `plugin`, seeded with the instance that proved it loads.
    pub fn new(plugin: Arc<Plugin>, first: Instance, max_idle: usize) -> Self {
        Self { current: ArcSwap::new(plugin), idle: Mutex::new(vec![first]), max_idle: max_idle.max(1) }
    }

    /// The version new messages go to.
    pub fn plugin(&self) -> Arc<Plugin> {
        self.current.load_full()
    }

    /// Call the plugin on `msg`. Returns the version that handled it with the result.
    pub async fn call(&self, msg: &Message) -> (Arc<Plugin>, Result<Handled, CallError>) {
        let mut instance = match self.take() {
            Some(instance) => instance,
            None => match Instance::new(self.plugin()).await {
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
        let result = instance.handle(msg).await;
        let plugin = instance.plugin().clone();
        // A failed instance may hold corrupt state (a trap mid-update, a half-grown
        // heap): never reuse it.
        if result.is_ok() {
            self.put(instance);
        }
        (plugin, result)
    }

    fn take(&self) -> Option<Instance> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop()
    }

    fn put(&self, instance: Instance) {
        // An instance of a replaced version is dropped, not reused.
        if !Arc::ptr_eq(instance.plugin(), &self.current.load()) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }
}
