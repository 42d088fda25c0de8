//! What can go wrong loading a plugin or calling it. Callers branch on these: a
//! [`LoadError`] refuses a plugin version; every [`CallError`] discards the
//! instance and is handled like a Retry outcome.

use thiserror::Error;

/// A plugin version that cannot be used. The text names the plugin and says why.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("plugin `{plugin}`: cannot read `{path}`: {source}")]
    Read { plugin: String, path: String, source: std::io::Error },
    #[error("plugin `{plugin}`: `{path}` is not a wasm module: {reason}")]
    NotWasm { plugin: String, path: String, reason: String },
    #[error("plugin `{plugin}`: {reason}")]
    BadModule { plugin: String, reason: String },
    #[error("plugin `{plugin}`: built for ABI version {found}, this host speaks version {expected}")]
    AbiVersion { plugin: String, found: i64, expected: u32 },
    #[error("plugin `{plugin}`: init refused the configuration: {reason}")]
    InitRefused { plugin: String, reason: String },
    #[error("plugin `{plugin}`: {call}")]
    Call { plugin: String, call: CallError },
}

/// A call into a plugin that did not produce an outcome.
#[derive(Debug, Clone, Error)]
pub enum CallError {
    #[error("trapped: {0}")]
    Trap(String),
    #[error("called proc_exit({0})")]
    Exit(i32),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("ran out of fuel ({0} units)")]
    OutOfFuel(u64),
    #[error("exceeded its memory limit of {0} bytes")]
    MemoryLimit(u64),
    #[error("returned an outcome that does not decode: {0}")]
    BadOutcome(String),
    #[error("broke the ABI: {0}")]
    Abi(String),
}

impl CallError {
    /// The `kind` label of `switchyard_plugin_traps_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Trap(_) | CallError::Exit(_) => "trap",
            CallError::Timeout(_) => "timeout",
            CallError::MemoryLimit(_) => "memory",
            CallError::OutOfFuel(_) => "fuel",
            CallError::BadOutcome(_) | CallError::Abi(_) => "abi",
        }
    }
}
