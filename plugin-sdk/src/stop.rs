//! [`Stop`]: end a handler early with a chosen outcome, so `?` can mean "reject" as well as
//! "retry".
//!
//! A handler returning `Result<Outcome, E: Display>` turns every `Err` into a retry. That is right
//! for a dependency that is down and wrong for a payload that fails validation: the same bytes fail
//! on every redelivery, so they should be dead-lettered at once. A handler returning
//! `Result<Outcome, Stop>` says which, error by error:
//!
//! ```
//! use serde::Deserialize;
//! use switchyard_sdk::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct Job { id: u64 }
//!
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
//!     let job: Job = msg.json()?;                                   // bad payload: reject
//!     ctx.publish("jobs.done", job.id.to_string()).or_retry()?;     // host refused: retry
//!     Ok(Outcome::Ack)
//! }
//!
//! # #[cfg(not(target_arch = "wasm32"))] {
//! use switchyard_sdk::testing::MockHost;
//! let handled = MockHost::new().allow("jobs.>").call(handle, &Message::builder("jobs.new").text("nope").build());
//! assert!(matches!(handled.outcome, Outcome::Reject { .. }));
//! # }
//! ```
//!
//! `Stop` deliberately does not implement `Display`: that keeps `Result<Outcome, Stop>` apart from
//! the `Result<Outcome, E: Display>` form, whose errors all mean retry.

use std::fmt::Display;
use std::time::Duration;

use switchyard_abi::Outcome;

use crate::{EnvelopeError, IntoOutcome, OutcomeExt, PayloadError, TraceError, ValidationError};

/// The outcome a handler stops with: usually a reject or a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop(Outcome);

impl Stop {
    /// Dead-letter the message now: retrying cannot help.
    pub fn reject(reason: impl Display) -> Stop {
        Stop(Outcome::reject(reason.to_string()))
    }

    /// Try again on the route's backoff schedule.
    pub fn retry(reason: impl Display) -> Stop {
        Stop(Outcome::retry(reason.to_string()))
    }

    /// Try again after `delay`.
    pub fn retry_after(delay: Duration, reason: impl Display) -> Stop {
        Stop(Outcome::retry_after(delay, reason.to_string()))
    }

    /// Stop with any outcome, e.g. an early `Outcome::Ack` for a message that needs nothing done.
    pub fn with(outcome: Outcome) -> Stop {
        Stop(outcome)
    }

    /// The outcome it stands for.
    pub fn outcome(&self) -> &Outcome {
        &self.0
    }

    pub fn into_outcome(self) -> Outcome {
        self.0
    }
}

impl IntoOutcome for Result<Outcome, Stop> {
    fn into_outcome(self) -> Outcome {
        self.unwrap_or_else(Stop::into_outcome)
    }
}

/// A payload that does not decode will not decode on the next delivery either.
impl From<PayloadError> for Stop {
    fn from(err: PayloadError) -> Stop {
        Stop::reject(err)
    }
}

/// A message that fails validation fails it on every delivery.
impl From<ValidationError> for Stop {
    fn from(err: ValidationError) -> Stop {
        Stop::reject(err)
    }
}

/// An envelope that is malformed or of an unsupported schema stays so.
impl From<EnvelopeError> for Stop {
    fn from(err: EnvelopeError) -> Stop {
        Stop::reject(err)
    }
}

/// A malformed `traceparent` header stays malformed.
impl From<TraceError> for Stop {
    fn from(err: TraceError) -> Stop {
        Stop::reject(err)
    }
}

/// Say what an error means for the message: `.or_reject()?` or `.or_retry()?`.
pub trait StopExt<T> {
    /// An `Err` dead-letters the message now.
    fn or_reject(self) -> Result<T, Stop>;
    /// An `Err` is retried on the route's backoff schedule.
    fn or_retry(self) -> Result<T, Stop>;
    /// Like [`StopExt::or_reject`], the reason prefixed with `context: `.
    fn or_reject_with(self, context: impl Display) -> Result<T, Stop>;
    /// Like [`StopExt::or_retry`], the reason prefixed with `context: `.
    fn or_retry_with(self, context: impl Display) -> Result<T, Stop>;
}

impl<T, E: Display> StopExt<T> for Result<T, E> {
    fn or_reject(self) -> Result<T, Stop> {
        self.map_err(Stop::reject)
    }

    fn or_retry(self) -> Result<T, Stop> {
        self.map_err(Stop::retry)
    }

    fn or_reject_with(self, context: impl Display) -> Result<T, Stop> {
        self.map_err(|e| Stop::reject(format!("{context}: {e}")))
    }

    fn or_retry_with(self, context: impl Display) -> Result<T, Stop> {
        self.map_err(|e| Stop::retry(format!("{context}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;
    use crate::{Context, Message, MessageExt, PublishError};

    #[crate::handler]
    fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
        let n: u32 = msg.json()?;
        if n == 0 {
            return Err(Stop::with(Outcome::Ack));
        }
        ctx.publish("out", n.to_string()).or_retry_with("forwarding")?;
        Ok(Outcome::reply(n.to_string()))
    }

    #[test]
    fn question_mark_picks_the_outcome() {
        let host = MockHost::new().allow("out");
        let bad = host.call(handle, &Message::builder("in").text("x").build());
        assert_eq!(bad.outcome, Outcome::reject("payload is not valid json: expected value at line 1 column 1"));
        assert_eq!(host.call(handle, &Message::builder("in").text("0").build()).outcome, Outcome::Ack);
        assert_eq!(host.call(handle, &Message::builder("in").text("7").build()).outcome, Outcome::reply("7"));

        let refused = MockHost::new().call(handle, &Message::builder("in").text("7").build());
        assert_eq!(refused.outcome, Outcome::retry("forwarding: subject `out` is not on the publish allow-list"));
    }

    #[test]
    fn constructors_and_extension() {
        assert_eq!(
            Stop::retry_after(Duration::from_secs(2), "later").into_outcome(),
            Outcome::retry_after(Duration::from_secs(2), "later")
        );
        let failed: Result<(), PublishError> = Err(PublishError::Unavailable);
        assert_eq!(
            failed.clone().or_reject().map_err(Stop::into_outcome),
            Err(Outcome::reject("publish is not available here (only while handling a message)"))
        );
        assert_eq!(
            failed.or_reject_with("audit").map_err(|s| s.outcome().clone()),
            Err(Outcome::reject("audit: publish is not available here (only while handling a message)"))
        );
        assert_eq!(Ok::<u8, String>(1).or_retry(), Ok(1));
    }
}
