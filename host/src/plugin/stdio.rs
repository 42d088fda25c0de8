//! Guest stdout/stderr, captured line by line into the host's log.
//!
//! WASI writes arrive in arbitrary chunks; we cut them into lines, cap each line
//! and the pending buffer, and emit one tracing event per line tagged with the
//! plugin's name.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::log_budget::LogBudget;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

const MAX_LINE: usize = 8 * 1024;

#[derive(Clone)]
pub(super) struct LogStream {
    plugin: Arc<str>,
    stream: &'static str,
    pending: Arc<Mutex<Vec<u8>>>,
    budget: LogBudget,
}

impl LogStream {
    pub(super) fn new(plugin: Arc<str>, stream: &'static str, budget: LogBudget) -> Self {
        Self { plugin, stream, pending: Arc::default(), budget }
    }

    fn write(&self, bytes: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for &byte in bytes {
            if byte == b'\n' {
                self.emit(&pending);
                pending.clear();
            } else if pending.len() < MAX_LINE {
                pending.push(byte);
            }
        }
    }

    /// Log what was written since the last newline, if anything (the end of a call).
    pub(super) fn finish_line(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !pending.is_empty() {
            self.emit(&pending);
            pending.clear();
        }
    }

    fn emit(&self, line: &[u8]) {
        if !self.budget.allow() {
            return;
        }
        let text = super::printable(&String::from_utf8_lossy(line));
        tracing::info!(target: "switchyard::plugin", plugin = %self.plugin, stream = self.stream, "{text}");
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
