//! The wasm side of the host: one wasmtime engine, compiled plugin versions, their
//! instances, the sandbox limits, and the host functions a plugin may import.
//!
//! A message reaches a plugin only through [`Pool::call`]: take an idle instance (or
//! make one), run `switchyard_handle` under the plugin's limits, put the instance
//! back on success and throw it away on any failure.

mod cache;
mod compiler;
mod engine;
mod error;
mod function_cache;
mod guest_threads;
mod host_fns;
mod instance;
mod kv;
mod load;
mod log_budget;
mod nats;
mod pool;
mod request;
mod rollout;
mod shadow;
mod state;
mod stdio;
#[cfg(test)]
mod tests;
mod text;

pub use compiler::{CompileLimits, child_main as compile_child_main, compile_with};
pub use engine::Runtime;
pub use error::{CallError, LoadError};
pub use instance::{Handled, Instance};
pub use load::{Plugin, PluginSpec, file_hash};
pub use pool::{Call, Pick, Pool, Role};
pub use rollout::{ShadowCounts, TrialStatus};
pub use shadow::{Diff, Observed, Shadow, Shown};
pub(crate) use text::printable;
