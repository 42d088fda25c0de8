//! Constructors for [`Outcome`] and [`IntoOutcome`], the conversion the handler macro applies to
//! whatever the handler returns.

use std::fmt::Display;
use std::time::Duration;

use serde::Serialize;
use switchyard_abi::Outcome;

use crate::PayloadError;
use crate::message::sealed;

/// Shorthand constructors for [`Outcome`] (a trait because the type lives in the ABI crate; it is
/// in the prelude).
pub trait OutcomeExt: sealed::Sealed + Sized {
    /// Answer the request with `payload` (buffered publishes are sent, like Ack).
    fn reply(payload: impl Into<Vec<u8>>) -> Outcome;

    /// Answer the request with `value` as JSON, with header `content-type: application/json`.
    fn reply_json<T: Serialize + ?Sized>(value: &T) -> Result<Outcome, PayloadError>;

    /// Try again later, on the route's backoff schedule.
    fn retry(reason: impl Into<String>) -> Outcome;

    /// Try again after `delay` (overriding the route's backoff for this attempt; whole
    /// milliseconds, saturating).
    fn retry_after(delay: Duration, reason: impl Into<String>) -> Outcome;

    /// Never going to work: dead-letter now, without further attempts.
    fn reject(reason: impl Into<String>) -> Outcome;

    /// Add a header to a `Reply`; other outcomes carry no headers and are returned unchanged.
    fn with_header(self, name: impl Into<String>, value: impl Into<String>) -> Outcome;

    /// True for `Ack` and `Reply`: the outcomes after which buffered publishes are sent.
    fn is_success(&self) -> bool;
}

impl OutcomeExt for Outcome {
    fn reply(payload: impl Into<Vec<u8>>) -> Outcome {
        Outcome::Reply { payload: payload.into(), headers: Vec::new() }
    }

    fn reply_json<T: Serialize + ?Sized>(value: &T) -> Result<Outcome, PayloadError> {
        let payload = serde_json::to_vec(value).map_err(PayloadError::EncodeJson)?;
        Ok(Outcome::reply(payload).with_header("content-type", "application/json"))
    }

    fn retry(reason: impl Into<String>) -> Outcome {
        Outcome::Retry { delay_ms: None, reason: reason.into() }
    }

    fn retry_after(delay: Duration, reason: impl Into<String>) -> Outcome {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        Outcome::Retry { delay_ms: Some(delay_ms), reason: reason.into() }
    }

    fn reject(reason: impl Into<String>) -> Outcome {
        Outcome::Reject { reason: reason.into() }
    }

    fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Outcome {
        if let Outcome::Reply { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    fn is_success(&self) -> bool {
        matches!(self, Outcome::Ack | Outcome::Reply { .. })
    }
}

/// What a handler may return: an [`Outcome`], or a `Result` whose `Err` becomes
/// `Outcome::Retry { reason: err.to_string() }` (so `?` means "try again later"; return
/// `Ok(Outcome::reject(..))` for errors that retrying cannot fix).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler's result",
    label = "return `Outcome` or `Result<Outcome, E>` where `E: Display`"
)]
pub trait IntoOutcome {
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for Outcome {
    fn into_outcome(self) -> Outcome {
        self
    }
}

impl<E: Display> IntoOutcome for Result<Outcome, E> {
    fn into_outcome(self) -> Outcome {
        self.unwrap_or_else(|e| Outcome::retry(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors() {
        assert_eq!(Outcome::reply("x"), Outcome::Reply { payload: b"x".to_vec(), headers: vec![] });
        assert_eq!(Outcome::retry("r"), Outcome::Retry { delay_ms: None, reason: "r".into() });
        assert_eq!(Outcome::retry_after(Duration::from_millis(1500), "r"), Outcome::Retry { delay_ms: Some(1500), reason: "r".into() });
        assert_eq!(Outcome::retry_after(Duration::MAX, "r"), Outcome::Retry { delay_ms: Some(u64::MAX), reason: "r".into() });
        assert_eq!(Outcome::reject("no"), Outcome::Reject { reason: "no".into() });
        assert!(Outcome::Ack.is_success() && Outcome::reply("").is_success() && !Outcome::reject("").is_success());
    }

    #[test]
    fn reply_json_sets_content_type_and_with_header_only_touches_replies() {
        let out = Outcome::reply_json(&serde_json::json!({"a": 1})).expect("json").with_header("k", "v");
        assert_eq!(
            out,
            Outcome::Reply {
                payload: br#"{"a":1}"#.to_vec(),
                headers: vec![("content-type".into(), "application/json".into()), ("k".into(), "v".into())],
            }
        );
        assert_eq!(Outcome::Ack.with_header("k", "v"), Outcome::Ack);
    }

    #[test]
    fn errors_become_retries() {
        let failed: Result<Outcome, String> = Err("db down".into());
        assert_eq!(failed.into_outcome(), Outcome::retry("db down"));
        let fine: Result<Outcome, String> = Ok(Outcome::Ack);
        assert_eq!(fine.into_outcome(), Outcome::Ack);
    }
}
