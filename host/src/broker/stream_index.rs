//! Which subjects a JetStream stream captures, asked of the server and cached.
//!
//! A handler's publishes must be confirmed before its JetStream source is acked,
//! but only a subject some stream captures gets a JetStream ack: a JetStream
//! publish to a plain core subject that has subscribers waits for an ack that
//! never comes. So each publish subject is looked up and sent the right way.
//!
//! Answers are cached briefly, because streams come and go. An answer past its
//! time is still used while a background lookup refreshes it: that lookup goes
//! to the cluster's meta leader, and while the cluster elects a new one (its
//! node lost) the request goes unanswered for the client's whole timeout.
//! Every handler publishing meanwhile would stop that long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::GetStreamByNameErrorKind};

/// How long an answer is trusted; a stream created later is seen after this.
const TTL: Duration = Duration::from_secs(5);
/// Entries kept before the cache is cleared (subjects with ids in them are endless).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct StreamIndex {
    js: jetstream::Context,
    cache: Arc<Mutex<HashMap<String, Answer>>>,
}

#[derive(Debug)]
struct Answer {
    captured: bool,
    at: Instant,
    refreshing: bool,
}

impl StreamIndex {
    pub fn new(js: jetstream::Context) -> Self {
        Self { js, cache: Arc::default() }
    }

    /// Whether some stream captures `subject`.
    pub async fn captured(&self, subject: &str) -> Result<bool, String> {
        if let Some(answer) = lock(&self.cache).get_mut(subject) {
            if answer.at.elapsed() >= TTL && !answer.refreshing {
                answer.refreshing = true;
                let (js, cache, subject) = (self.js.clone(), self.cache.clone(), subject.to_owned());
                tokio::spawn(async move {
                    match look_up(&js, &subject).await {
                        Ok(captured) => remember(&cache, subject, captured),
                        Err(err) => {
                            tracing::debug!("{err}; the last answer stays in use");
                            if let Some(answer) = lock(&cache).get_mut(&subject) {
                                answer.refreshing = false;
                            }
                        }
                    }
                });
            }
            return Ok(answer.captured);
        }
        let captured = look_up(&self.js, subject).await?;
        remember(&self.cache, subject.to_owned(), captured);
        Ok(captured)
    }
}

async fn look_up(js: &jetstream::Context, subject: &str) -> Result<bool, String> {
    match js.stream_by_subject(subject).await {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == GetStreamByNameErrorKind::NotFound => Ok(false),
        Err(err) => Err(format!("looking up the stream of `{subject}`: {err}")),
    }
}

fn remember(cache: &Mutex<HashMap<String, Answer>>, subject: String, captured: bool) {
    let mut cache = lock(cache);
    if cache.len() >= MAX_ENTRIES {
        cache.clear();
    }
    cache.insert(subject, Answer { captured, at: Instant::now(), refreshing: false });
}

fn lock(cache: &Mutex<HashMap<String, Answer>>) -> std::sync::MutexGuard<'_, HashMap<String, Answer>> {
    cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
