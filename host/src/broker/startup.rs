//! Start-up against a NATS that is not there yet: a server still starting, a
//! cluster electing its JetStream leader, hosts racing to create the same
//! stream. Each step is retried with backoff and a log line per failure, until
//! `nats.startup_timeout`; a failure retrying cannot fix (a stream whose
//! settings differ from the file, a refused login) ends start-up at once.

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::ErrorCode;

/// Why one attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another try: timeouts, no JetStream leader, a lost race.
    Transient(anyhow::Error),
    /// Retrying cannot help.
    Fatal(anyhow::Error),
}

impl Failure {
    /// A JetStream API error: transient when it says the cluster is not ready
    /// (no leader, not enough peers yet) or that another host just did the same.
    pub fn from_jetstream(code: Option<ErrorCode>, err: anyhow::Error) -> Self {
        const NOT_READY: [ErrorCode; 8] = [
            ErrorCode::CLUSTER_NOT_AVAILABLE,
            ErrorCode::CLUSTER_NO_PEERS,
            ErrorCode::CLUSTER_NOT_ACTIVE,
            ErrorCode::CLUSTER_NOT_LEADER,
            ErrorCode::CLUSTER_INCOMPLETE,
            ErrorCode::INSUFFICIENT_RESOURCES,
            ErrorCode::STREAM_NAME_EXIST,
            ErrorCode::CONSUMER_ALREADY_EXISTS,
        ];
        match code {
            Some(code) if !NOT_READY.contains(&code) => Self::Fatal(err),
            // No code at all: a request that timed out or found no responder.
            _ => Self::Transient(err),
        }
    }
}

/// Run `attempt` until it succeeds, fails fatally, or `deadline` passes.
pub async fn retrying<T, F, Fut>(what: &str, deadline: Instant, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut delay = Duration::from_millis(250);
    let mut tries = 0u32;
    loop {
        tries += 1;
        let err = match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Fatal(err)) => return Err(err.context(what.to_owned())),
            Err(Failure::Transient(err)) => err,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(err.context(format!("{what}: gave up after {tries} tries (`nats.startup_timeout`)")));
        }
        let wait = delay.min(deadline - now);
        tracing::warn!("{what}: {err:#}; retrying in {wait:?} (try {tries})");
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let mut calls = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        let value = retrying("test", deadline, || {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err(Failure::Transient(anyhow::anyhow!("not yet"))) } else { Ok(n) } }
        })
        .await
        .expect("third try succeeds");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn a_fatal_failure_stops_at_once() {
        let mut calls = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = retrying("setting up", deadline, || {
            calls += 1;
            async { Err::<(), _>(Failure::Fatal(anyhow::anyhow!("differs"))) }
        })
        .await
        .expect_err("fatal");
        assert_eq!(calls, 1);
        assert_eq!(format!("{err:#}"), "setting up: differs");
    }

    #[tokio::test]
    async fn the_deadline_bounds_the_retries() {
        let deadline = Instant::now() + Duration::from_millis(600);
        let err = retrying("connecting", deadline, || async { Err::<(), _>(Failure::Transient(anyhow::anyhow!("refused"))) })
            .await
            .expect_err("deadline");
        assert!(format!("{err:#}").contains("gave up after"), "{err:#}");
    }

    #[test]
    fn cluster_not_ready_is_transient_and_bad_config_is_fatal() {
        let transient = Failure::from_jetstream(Some(ErrorCode::CLUSTER_NOT_AVAILABLE), anyhow::anyhow!("x"));
        assert!(matches!(transient, Failure::Transient(_)));
        assert!(matches!(Failure::from_jetstream(None, anyhow::anyhow!("timed out")), Failure::Transient(_)));
        let fatal = Failure::from_jetstream(Some(ErrorCode::STREAM_SUBJECT_OVERLAP), anyhow::anyhow!("x"));
        assert!(matches!(fatal, Failure::Fatal(_)));
    }
}
