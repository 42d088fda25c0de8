//! Which subjects a JetStream stream captures, asked of the server and cached.
//!
//! A handler's publishes must be confirmed before its JetStream source is acked,
//! but only a subject some stream captures gets a JetStream ack: a JetStream
//! publish to a plain core subject that has subscribers waits for an ack that
//! never comes. So each publish subject is looked up (briefly cached, because
//! streams come and go) and sent the right way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::GetStreamByNameErrorKind};

/// How long an answer is trusted; a stream created later is seen after this.
const TTL: Duration = Duration::from_secs(5);
/// Entries kept before the cache is cleared (subjects with ids in them are endless).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct StreamIndex {
    js: jetstream::Context,
    cache: Mutex<HashMap<String, (bool, Instant)>>,
}

impl StreamIndex {
    pub fn new(js: jetstream::Context) -> Self {
        Self { js, cache: Mutex::default() }
    }

    /// Whether some stream captures `subject`.
    pub async fn captured(&self, subject: &str) -> Result<bool, String> {
        if let Some(&(captured, at)) = self.lock().get(subject)
            && at.elapsed() < TTL
        {
            return Ok(captured);
        }
        let captured = match self.js.stream_by_subject(subject).await {
            Ok(_) => true,
            Err(err) if err.kind() == GetStreamByNameErrorKind::NotFound => false,
            Err(err) => return Err(format!("looking up the stream of `{subject}`: {err}")),
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(subject.to_owned(), (captured, Instant::now()));
        Ok(captured)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, Instant)>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
