//! The host's span for each message, in W3C Trace Context terms. The host
//! continues the message's `traceparent` (same trace, the sender's span as
//! parent) or starts a trace, and puts its own span's `traceparent` on every
//! publish, reply and dead letter, so a chain of plugins shares one trace even
//! when none of them touches the SDK's `TraceContext`. Ids are made here,
//! whether or not spans are exported (`otlp.rs`): propagation never depends on
//! a collector. Nothing is formatted until something goes out or is logged:
//! the plugin sees the message's headers as they were sent.

use std::fmt;
use std::time::SystemTime;

use switchyard_abi::{Header, Message};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// A trace id, shown as 32 lowercase hex digits (in log lines, formatted only
/// when the line is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub [u8; 16]);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// The span of one delivery of one message.
#[derive(Debug, Clone)]
pub struct MessageTrace {
    pub trace_id: TraceId,
    pub span_id: [u8; 8],
    /// The sender's span, when the message came with a valid `traceparent`.
    pub parent: Option<[u8; 8]>,
    pub flags: u8,
    pub state: Option<String>,
    /// When the span began; read only when spans are exported.
    pub started: Option<SystemTime>,
}

impl MessageTrace {
    /// The span for `msg`: a child of its `traceparent`, or a new trace.
    ///
    /// A trace started here is sampled (flag `01`: exported, here and by every
    /// host downstream) with probability `sample_ratio`; a continued one keeps
    /// the sender's decision, so a trace is exported whole or not at all.
    /// `exporting`: whether spans are exported at all (the start time is read
    /// only then).
    pub fn begin(msg: &Message, sample_ratio: f64, exporting: bool) -> MessageTrace {
        let parent = header(&msg.headers, TRACEPARENT).and_then(parse);
        let (trace_id, parent, flags, state) = match parent {
            Some((trace_id, span_id, flags)) => (trace_id, Some(span_id), flags, header(&msg.headers, TRACESTATE).map(str::to_owned)),
            None => {
                let sampled = sample_ratio >= 1.0 || fastrand::f64() < sample_ratio;
                (nonzero(|| fastrand::u128(..).to_be_bytes()), None, u8::from(sampled), None)
            }
        };
        MessageTrace {
            trace_id: TraceId(trace_id),
            span_id: nonzero(|| fastrand::u64(..).to_be_bytes()),
            parent,
            flags,
            state,
            started: exporting.then(SystemTime::now),
        }
    }

    /// `00-<trace id>-<span id>-<flags>`, naming this span as the parent.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        // Writing into a String cannot fail.
        let _ = fmt::Write::write_fmt(&mut out, format_args!("00-{}-", self.trace_id));
        self.span_id.iter().for_each(|byte| {
            let _ = fmt::Write::write_fmt(&mut out, format_args!("{byte:02x}"));
        });
        let _ = fmt::Write::write_fmt(&mut out, format_args!("-{:02x}", self.flags));
        out
    }

    /// Give an outgoing message (a plugin's publish, a reply) this span as its
    /// parent, unless the plugin set a `traceparent` of its own.
    pub fn stamp(&self, headers: &mut Vec<Header>) {
        if header(headers, TRACEPARENT).is_none() {
            headers.push((TRACEPARENT.to_owned(), self.traceparent()));
            if let Some(state) = &self.state
                && header(headers, TRACESTATE).is_none()
            {
                headers.push((TRACESTATE.to_owned(), state.clone()));
            }
        }
    }
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A `traceparent` value: (trace id, parent span id, flags), or `None` when it
/// is not one (a new trace is started then, as the W3C spec asks).
fn parse(value: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four parts; a later version may add more.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let trace: [u8; 16] = unhex(trace)?.try_into().ok()?;
    let span: [u8; 8] = unhex(span)?.try_into().ok()?;
    let flags = u8::from_str_radix(flags, 16).ok().filter(|_| flags.len() == 2)?;
    (trace != [0; 16] && span != [0; 8]).then_some((trace, span, flags))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    // Lowercase only, as the spec says.
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    data_encoding::HEXLOWER.decode(text.as_bytes()).ok()
}

/// An id that is not all zeros (which W3C reserves for "invalid").
fn nonzero<const N: usize>(make: impl Fn() -> [u8; N]) -> [u8; N] {
    loop {
        let id = make();
        if id != [0; N] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        data_encoding::HEXLOWER.encode(bytes)
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn message(headers: &[(&str, &str)]) -> Message {
        Message { headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(), ..Message::default() }
    }

    #[test]
    fn a_traceparent_is_continued_by_the_hosts_span() {
        let msg = message(&[("traceparent", PARENT), ("tracestate", "vendor=1")]);
        let trace = MessageTrace::begin(&msg, 1.0, false);
        assert_eq!(trace.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.parent.map(|p| hex(&p)).as_deref(), Some("00f067aa0ba902b7"));
        let own = trace.traceparent();
        assert_eq!(own, format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", hex(&trace.span_id)));
        assert_eq!(msg.headers[0].1, PARENT, "the plugin sees the message as sent");
        let mut out = vec![];
        trace.stamp(&mut out);
        assert_eq!(out, vec![("traceparent".into(), own), ("tracestate".into(), "vendor=1".into())]);
        let mut theirs = vec![("traceparent".to_owned(), PARENT.to_owned())];
        trace.stamp(&mut theirs);
        assert_eq!(theirs.len(), 1, "a plugin's own traceparent is kept");
        assert_eq!(trace.started, None, "the clock is read only when exporting");
    }

    #[test]
    fn without_a_valid_traceparent_a_trace_starts() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            let trace = MessageTrace::begin(&message(&[("traceparent", bad)]), 1.0, true);
            assert_eq!(trace.parent, None, "{bad}");
            assert_ne!(trace.trace_id.0, [0; 16]);
            assert!(trace.started.is_some());
        }
        let trace = MessageTrace::begin(&message(&[]), 1.0, false);
        assert_eq!(parse(&trace.traceparent()), Some((trace.trace_id.0, trace.span_id, 1)));
    }

    #[test]
    fn new_traces_are_sampled_at_the_ratio_and_continued_ones_as_the_sender_decided() {
        let sampled = (0..10_000).filter(|_| MessageTrace::begin(&message(&[]), 0.1, true).flags == 1).count();
        assert!((800..1200).contains(&sampled), "{sampled} of 10,000 at 0.1");
        assert_eq!(MessageTrace::begin(&message(&[]), 0.0, true).flags, 0);
        assert_eq!(MessageTrace::begin(&message(&[("traceparent", PARENT)]), 0.0, true).flags, 1, "the sender sampled it");
        let unsampled = PARENT.replace("-01", "-00");
        let trace = MessageTrace::begin(&message(&[("traceparent", &unsampled)]), 1.0, true);
        assert_eq!(trace.flags, 0);
        assert!(trace.traceparent().ends_with("-00"));
    }
}
