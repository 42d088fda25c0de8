//! Tracing setup: log lines on stderr, filtered by `RUST_LOG` (default
//! `info`). Text by default (colour only on a terminal); with `json`, one JSON
//! object per line, the event's fields (route, plugin, version, subject,
//! sequence, trace id) at the top level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn,wasmtime=warn,cranelift=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    // A second init (tests calling into the library twice) is harmless: ignore it.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
}
