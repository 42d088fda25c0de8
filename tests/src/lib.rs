//! Test harness for end-to-end tests: real nats-server processes on dynamic
//! ports, the real `switchyard` binary, and bounded waits.
//!
//! Everything here is killed on Drop, and every wait has a deadline: a test fails
//! with a message, it never hangs.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod configs;
pub mod examples;
pub mod fleet;
pub mod host;
pub mod js;
pub mod ledger;
pub mod modules;
pub mod nats;
pub mod otlp;
pub mod wait;

pub use cluster::Cluster;
pub use host::Host;
pub use nats::NatsServer;
pub use wait::{eventually, within};

use std::path::PathBuf;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// A reference plugin's .wasm, built by `make plugins`.
pub fn plugin(name: &str) -> PathBuf {
    let path = workspace().join("target/wasm32-wasip1/release").join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run `make plugins` (or `make test`) first", path.display());
    path
}
