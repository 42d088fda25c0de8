//! [`PublishExt`]: build a [`Publish`] with a JSON payload and headers, for `ctx.send(..)`.
//!
//! `ctx.publish_json` covers JSON without headers and `ctx.publish_with_headers` headers without
//! JSON; propagating trace context or correlation ids onto JSON messages needs both:
//!
//! ```
//! use switchyard_sdk::prelude::*;
//!
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
//!     let chunk = serde_json::json!({"chunk_id": 0, "chunk": "hello"});
//!     let publish = Publish::json("chat.pod.pod-1.response", &chunk)?.with_header("correlation-id", "corr_1");
//!     ctx.send(publish).or_retry()?;
//!     Ok(Outcome::Ack)
//! }
//! # #[cfg(not(target_arch = "wasm32"))] {
//! # let handled = switchyard_sdk::testing::MockHost::new().allow("chat.>").call(handle, &Message::builder("in").build());
//! # assert_eq!(handled.sent()[0].headers.len(), 2);
//! # }
//! ```

use serde::Serialize;
use switchyard_abi::{Header, Publish};

use crate::PayloadError;

mod sealed {
    pub trait Sealed {}
    impl Sealed for switchyard_abi::Publish {}
}

/// Constructors and header helpers for [`Publish`] (in the prelude).
pub trait PublishExt: sealed::Sealed + Sized {
    /// `value` as JSON to `subject`, with `content-type: application/json`.
    fn json<T: Serialize + ?Sized>(subject: impl Into<String>, value: &T) -> Result<Publish, PayloadError>;

    /// Raw bytes to `subject`, no headers.
    fn bytes(subject: impl Into<String>, payload: impl Into<Vec<u8>>) -> Publish;

    /// Append a header (names may repeat).
    fn with_header(self, name: impl Into<String>, value: impl Into<String>) -> Publish;

    /// Append several headers, e.g. `TraceContext::headers()`.
    fn with_headers(self, headers: impl IntoIterator<Item = Header>) -> Publish;
}

impl PublishExt for Publish {
    fn json<T: Serialize + ?Sized>(subject: impl Into<String>, value: &T) -> Result<Publish, PayloadError> {
        let payload = serde_json::to_vec(value).map_err(PayloadError::EncodeJson)?;
        Ok(Publish::bytes(subject, payload).with_header("content-type", "application/json"))
    }

    fn bytes(subject: impl Into<String>, payload: impl Into<Vec<u8>>) -> Publish {
        Publish { subject: subject.into(), headers: Vec::new(), payload: payload.into() }
    }

    fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Publish {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn with_headers(mut self, headers: impl IntoIterator<Item = Header>) -> Publish {
        self.headers.extend(headers);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_headers() {
        let publish = Publish::json("a.b", &serde_json::json!({"n": 1}))
            .expect("json")
            .with_headers([("traceparent".to_owned(), "00-x".to_owned())])
            .with_header("k", "v");
        assert_eq!(publish.subject, "a.b");
        assert_eq!(publish.payload, br#"{"n":1}"#);
        let names: Vec<&str> = publish.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["content-type", "traceparent", "k"]);
        assert_eq!(Publish::bytes("c", "x").headers, []);
    }
}
