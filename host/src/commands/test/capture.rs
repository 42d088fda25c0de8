//! The plugin's log lines during `switchyard test`, kept for the cases to
//! check instead of printed: a tracing layer that takes the events the
//! `log` host function emits (target `switchyard::plugin`). Other events (a
//! compiler warning) still go to stderr, at WARN and above.

use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, filter};

const PLUGIN_TARGET: &str = "switchyard::plugin";

/// Lines logged since the last [`take`], as `LEVEL text`.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub(super) fn install() {
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(EnvFilter::new("warn,wasmtime=error,cranelift=error"))
        .with_filter(filter::filter_fn(|meta| meta.target() != PLUGIN_TARGET));
    let _ = tracing_subscriber::registry().with(stderr).with(Capture).try_init();
}

/// The lines logged since the last call.
pub(super) fn take() -> Vec<String> {
    std::mem::take(&mut *LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

struct Capture;

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != PLUGIN_TARGET {
            return;
        }
        let mut text = Message(String::new());
        event.record(&mut text);
        let line = format!("{} {}", event.metadata().level(), text.0);
        LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line);
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.0);
        }
    }
}
