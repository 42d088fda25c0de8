//! The host's span for each message, in W3C Trace Context terms. The host
//! continues the message's `traceparent` (same trace, the sender's span as
//! parent) or starts a trace, gives the plugin a `traceparent` naming the
//! host's span, and puts it on every publish, reply and dead letter, so a
//! chain of plugins shares one trace even when none of them touches the
//! SDK's `TraceContext`. Ids are made here, whether or not spans are exported
//! (`otlp.rs`): propagation never depends on a collector being configured.

use std::time::SystemTime;

use switchyard_abi::{Header, Message};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The span of one delivery of one message.
#[derive(Debug, Clone)]
pub struct MessageTrace {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The sender's span, when the message came with a valid `traceparent`.
    pub parent: Option<[u8; 8]>,
    pub flags: u8,
    pub state: Option<String>,
    pub started: SystemTime,
}

impl MessageTrace {
    /// The span for `msg`: a child of its `traceparent`, or a new trace. The
    /// message's `traceparent` is replaced by this span's, so what the plugin
    /// sees (and a dead letter keeps) names the host's span as parent.
    pub fn begin(msg: &mut Message) -> MessageTrace {
        let parent = header(&msg.headers, TRACEPARENT).and_then(parse);
        let state = header(&msg.headers, TRACESTATE).map(str::to_owned);
        let (trace_id, parent, flags) = match parent {
            Some((trace_id, span_id, flags)) => (trace_id, Some(span_id), flags),
            None => (nonzero(|| fastrand::u128(..).to_be_bytes()), None, 0x01),
        };
        let trace = MessageTrace {
            trace_id,
            span_id: nonzero(|| fastrand::u64(..).to_be_bytes()),
            parent,
            flags,
            state,
            started: SystemTime::now(),
        };
        set(&mut msg.headers, TRACEPARENT, trace.traceparent());
        trace
    }

    /// `00-<trace id>-<span id>-<flags>`, naming this span as the parent.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", hex(&self.trace_id), hex(&self.span_id), self.flags)
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

/// The trace id of a message the host has begun (`MessageTrace::begin` set
/// its `traceparent`), for log lines; empty for one it has not.
pub fn trace_id(headers: &[Header]) -> &str {
    header(headers, TRACEPARENT).and_then(|value| value.get(3..35)).unwrap_or_default()
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn set(headers: &mut Vec<Header>, name: &str, value: String) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value));
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

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
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

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn message(headers: &[(&str, &str)]) -> Message {
        Message { headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(), ..Message::default() }
    }

    #[test]
    fn a_traceparent_is_continued_and_replaced_by_the_hosts_span() {
        let mut msg = message(&[("traceparent", PARENT), ("tracestate", "vendor=1")]);
        let trace = MessageTrace::begin(&mut msg);
        assert_eq!(hex(&trace.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace.parent.map(|p| hex(&p)).as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(trace_id(&msg.headers), "4bf92f3577b34da6a3ce929d0e0e4736");
        let seen = header(&msg.headers, "traceparent").expect("set");
        assert_eq!(seen, trace.traceparent());
        assert!(seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && !seen.contains("00f067aa0ba902b7"), "{seen}");
        let mut out = vec![];
        trace.stamp(&mut out);
        assert_eq!(out, vec![("traceparent".into(), trace.traceparent()), ("tracestate".into(), "vendor=1".into())]);
        let mut own = vec![("traceparent".to_owned(), PARENT.to_owned())];
        trace.stamp(&mut own);
        assert_eq!(own.len(), 1, "a plugin's own traceparent is kept");
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
            let mut msg = message(&[("traceparent", bad)]);
            let trace = MessageTrace::begin(&mut msg);
            assert_eq!(trace.parent, None, "{bad}");
            assert_ne!(trace.trace_id, [0; 16]);
            assert_eq!(msg.headers.len(), 1, "the bad header is replaced: {bad}");
        }
        let mut msg = message(&[]);
        let trace = MessageTrace::begin(&mut msg);
        assert_eq!(parse(&trace.traceparent()), Some((trace.trace_id, trace.span_id, 1)));
    }
}
