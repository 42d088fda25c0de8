//! Requests to other services through the host: `ctx.request(subject, payload)` sends a core NATS
//! request to a subject the plugin's `request` list in runtime.toml allows, and waits for the
//! reply — at most until the call's own deadline (the plugin's `timeout`).
//!
//! A request happens during the call: a message handled twice asks twice. Ask what is safe to
//! ask again (a read, a health check, an idempotent command).
//!
//! ```
//! use switchyard_sdk::prelude::*;
//!
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
//!     let price = ctx.request("pricing.quote", msg.payload.clone())?;
//!     Ok(Outcome::reply(price.payload))
//! }
//! # #[cfg(not(target_arch = "wasm32"))] {
//! # let host = switchyard_sdk::testing::MockHost::new().responder("pricing.quote", b"42".to_vec());
//! # assert_eq!(host.call(handle, &Message::builder("in").build()).outcome, Outcome::reply("42"));
//! # }
//! ```

use std::time::Duration;

use switchyard_abi::{Header, Reply, Request, status};

use crate::{Context, Stop};

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Nobody is subscribed to the subject.
    #[error("no responders on `{0}`")]
    NoResponders(String),
    /// No reply within the timeout, or before the call's own deadline.
    #[error("no reply from `{0}` in time")]
    TimedOut(String),
    /// The subject is not on the plugin's `request` list.
    #[error("subject `{0}` is not on the plugin's request list")]
    NotAllowed(String),
    /// No connection to send it on (`switchyard invoke` runs without NATS).
    #[error("requests are not available here")]
    Unavailable,
    /// Any other status from the host (an invalid subject or header, too many calls).
    #[error("request to `{subject}` refused: {}", status::describe(*code))]
    Host { code: i32, subject: String },
}

impl RequestError {
    fn from_status(code: i32, subject: &str) -> Self {
        let subject = subject.to_owned();
        match code {
            status::NO_RESPONDERS => Self::NoResponders(subject),
            status::TIMED_OUT => Self::TimedOut(subject),
            status::NOT_ALLOWED => Self::NotAllowed(subject),
            status::UNAVAILABLE => Self::Unavailable,
            code => Self::Host { code, subject },
        }
    }
}

/// A service that does not answer may answer later: retry.
impl From<RequestError> for Stop {
    fn from(err: RequestError) -> Stop {
        Stop::retry(err)
    }
}

impl Context {
    /// Send `payload` to `subject` and wait for the reply, until the call's deadline.
    pub fn request(&mut self, subject: &str, payload: impl Into<Vec<u8>>) -> Result<Reply, RequestError> {
        self.request_with(subject, Vec::new(), payload, None)
    }

    /// [`Context::request`] with headers, and a timeout shorter than what is left of the call.
    pub fn request_with(
        &mut self,
        subject: &str,
        headers: Vec<Header>,
        payload: impl Into<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<Reply, RequestError> {
        let timeout_ms = timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1));
        let request = Request { subject: subject.to_owned(), headers, payload: payload.into(), timeout_ms };
        crate::host::request(&request).map_err(|code| RequestError::from_status(code, subject))
    }
}
