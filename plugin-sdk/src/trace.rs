//! W3C Trace Context (`traceparent`, `tracestate` headers), carried from a message to what the
//! handler publishes, so a trace follows the work across NATS.
//!
//! The handler's work is a span: a child of the incoming `traceparent`, same trace id, its own
//! span id. [`TraceContext::child_of`] derives that span id from something that identifies the
//! work (the message id), so a redelivered message continues the trace with the same span, and
//! [`TraceContext::headers`] gives the headers to put on every publish.
//!
//! ```
//! use switchyard_sdk::prelude::*;
//!
//! let msg = Message::builder("chat.in")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .build();
//! let span = TraceContext::from_message(&msg).expect("well formed").expect("present").child_of("msg_1");
//! assert_eq!(span.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_ne!(span.span_id(), "00f067aa0ba902b7");
//! assert!(span.sampled());
//! ```

use std::fmt;

use switchyard_abi::{Header, Message};

use crate::MessageExt;

/// A position in a trace: trace id, span id (the `parent-id` field of the header), flags, and
/// the vendor `tracestate` passed along untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
    state: Option<String>,
}

/// Why a `traceparent` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent `{header}`: {reason}")]
pub struct TraceError {
    header: String,
    reason: &'static str,
}

impl TraceContext {
    /// Parse a `traceparent` value: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. A
    /// later version is read by its first four fields, as the specification asks.
    pub fn parse(traceparent: &str) -> Result<TraceContext, TraceError> {
        let fail = |reason| TraceError { header: traceparent.to_owned(), reason };
        let text = traceparent.trim();
        let fields: Vec<&str> = text.splitn(5, '-').collect();
        let [version, trace, span, flags, rest @ ..] = fields.as_slice() else {
            return Err(fail("expected `version-traceid-parentid-flags`"));
        };
        let lower_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lower_hex(version, 2) || *version == "ff" {
            return Err(fail("the version must be two lowercase hex digits other than `ff`"));
        }
        if *version == "00" && !rest.is_empty() {
            return Err(fail("version 00 has exactly four fields"));
        }
        if !lower_hex(trace, 32) {
            return Err(fail("the trace id must be 32 lowercase hex digits"));
        }
        if !lower_hex(span, 16) {
            return Err(fail("the parent id must be 16 lowercase hex digits"));
        }
        if !lower_hex(flags, 2) {
            return Err(fail("the flags must be two lowercase hex digits"));
        }
        let (trace_id, span_id, flags) =
            match (u128::from_str_radix(trace, 16), u64::from_str_radix(span, 16), u8::from_str_radix(flags, 16)) {
                (Ok(t), Ok(s), Ok(f)) => (t, s, f),
                _ => return Err(fail("not hex")),
            };
        if trace_id == 0 {
            return Err(fail("the trace id must not be all zeros"));
        }
        if span_id == 0 {
            return Err(fail("the parent id must not be all zeros"));
        }
        Ok(TraceContext { trace_id, span_id, flags, state: None })
    }

    /// The message's trace context: `Ok(None)` without a `traceparent` header, `Err` when it is
    /// malformed. A `tracestate` header is carried along as it is.
    pub fn from_message(msg: &Message) -> Result<Option<TraceContext>, TraceError> {
        let Some(parent) = msg.header("traceparent") else { return Ok(None) };
        let mut context = TraceContext::parse(parent)?;
        context.state = msg.header("tracestate").map(str::to_owned);
        Ok(Some(context))
    }

    /// Start a new trace (for work that arrives without one), ids derived from `seed`.
    pub fn root(seed: &str) -> TraceContext {
        let trace_id = crate::ids::hash128(&["trace", seed]).max(1);
        TraceContext { trace_id, span_id: derive_span(trace_id, seed), flags: 0x01, state: None }
    }

    /// The span of the work on this message: same trace, flags and state, a new span id derived
    /// from `work` (e.g. the message id), so the same work always gets the same span.
    pub fn child_of(&self, work: &str) -> TraceContext {
        TraceContext { span_id: derive_span(self.trace_id, work), ..self.clone() }
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// This span's id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// Whether the caller records this trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }

    /// The `tracestate` carried along, if any.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The `traceparent` value naming this span as the parent of what it publishes.
    pub fn traceparent(&self) -> String {
        self.to_string()
    }

    /// `traceparent` and, when present, `tracestate`: the headers to put on each publish.
    pub fn headers(&self) -> Vec<Header> {
        let mut headers = vec![("traceparent".to_owned(), self.traceparent())];
        if let Some(state) = &self.state {
            headers.push(("tracestate".to_owned(), state.clone()));
        }
        headers
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

fn derive_span(trace_id: u128, work: &str) -> u64 {
    let bits = crate::ids::hash128(&[trace_id.to_be_bytes().as_slice(), work.as_bytes()]);
    // Never zero: an all-zero span id is invalid.
    ((bits >> 64) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_writes_back() {
        let trace = TraceContext::parse(PARENT).expect("valid");
        assert_eq!(trace.to_string(), PARENT);
        assert_eq!((trace.trace_id().as_str(), trace.span_id().as_str()), ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"));
        assert!(trace.sampled());
        assert!(!TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").expect("valid").sampled());
        // A future version may add fields; its first four are read.
        let future = TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").expect("v1");
        assert_eq!(future.to_string(), PARENT);
    }

    #[test]
    fn refuses_malformed_headers() {
        for (header, reason) in [
            ("", "expected `version-traceid-parentid-flags`"),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "the version must be two lowercase hex digits other than `ff`"),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "the trace id must be 32 lowercase hex digits"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "the trace id must not be all zeros"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "the parent id must not be all zeros"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "the flags must be two lowercase hex digits"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "version 00 has exactly four fields"),
        ] {
            assert_eq!(TraceContext::parse(header), Err(TraceError { header: header.to_owned(), reason }), "{header}");
        }
    }

    #[test]
    fn children_keep_the_trace_and_derive_their_span() {
        let msg = Message::builder("a").header("traceparent", PARENT).header("tracestate", "vendor=1").build();
        let parent = TraceContext::from_message(&msg).expect("valid").expect("present");
        let child = parent.child_of("msg_1");
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child, parent.child_of("msg_1"), "same work, same span");
        assert_ne!(child.span_id(), parent.child_of("msg_2").span_id());
        assert_eq!(child.headers(), [("traceparent".to_owned(), child.traceparent()), ("tracestate".to_owned(), "vendor=1".to_owned())]);
        assert_eq!(TraceContext::from_message(&Message::builder("a").build()), Ok(None));
        let root = TraceContext::root("msg_1");
        assert_eq!(root, TraceContext::root("msg_1"));
        assert!(TraceContext::parse(&root.traceparent()).is_ok());
    }
}
