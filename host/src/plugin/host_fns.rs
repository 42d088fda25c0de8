//! The functions a plugin imports from the `switchyard` module.
//!
//! The guest is untrusted: every pointer/length pair is bounds-checked against its
//! memory, every byte decoded defensively, and every failure returned as a
//! negative status code. Nothing here panics or traps on bad guest input.

use switchyard_abi::{IMPORT_MODULE, Publish, header, level, names, status};
use wasmtime::{Caller, Extern, Linker};

use super::state::{HostState, MAX_PUBLISH_BYTES_PER_CALL, MAX_PUBLISHES_PER_CALL, NotBegun};
use crate::config::subject;

/// Longest log line kept from a plugin; the rest is cut.
const MAX_LOG_LINE: usize = 8 * 1024;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, names::PUBLISH, publish)?;
    linker.func_wrap(IMPORT_MODULE, names::LOG, log)?;
    linker.func_wrap(IMPORT_MODULE, names::BEGIN_MESSAGE, begin_message)?;
    linker.func_wrap(IMPORT_MODULE, names::TAKE_RESULT, super::nats::take_result)?;
    super::kv::add_to_linker(linker)?;
    super::request::add_to_linker(linker)
}

/// Copy `len` bytes at `ptr` out of the guest's exported memory.
pub(super) fn guest_bytes(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Result<Vec<u8>, i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Err(status::UNAVAILABLE);
    };
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let end = start.checked_add(len).ok_or(status::OUT_OF_BOUNDS)?;
    memory.data(&caller).get(start..end).map(<[u8]>::to_vec).ok_or(status::OUT_OF_BOUNDS)
}

fn publish(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> i32 {
    let bytes = match guest_bytes(&mut caller, ptr, len) {
        Ok(bytes) => bytes,
        Err(code) => return code,
    };
    let Ok(mut msg) = switchyard_abi::decode::<Publish>(&bytes) else {
        return status::BAD_ENCODING;
    };
    let state = caller.data_mut();
    let Some(buffered) = state.publishes.as_ref().map(Vec::len) else {
        return status::UNAVAILABLE;
    };
    if let Some(code) = refusal(&state.allow, &msg) {
        return code;
    }
    // Numbered before the size check: the id is part of what NATS counts.
    stamp_msg_id(&state.msg_id_prefix, buffered, &mut msg);
    if let Some(code) = oversize(&msg, state.max_payload.get()) {
        return code;
    }
    if buffered >= MAX_PUBLISHES_PER_CALL || state.publish_bytes + msg.payload.len() > MAX_PUBLISH_BYTES_PER_CALL {
        return status::LIMIT_EXCEEDED;
    }
    state.publish_bytes += msg.payload.len();
    if let Some(buffer) = state.publishes.as_mut() {
        buffer.push(msg);
    }
    status::OK
}

/// Why NATS, or the plugin's allow-list, would refuse `msg`, if either would.
/// Checked now so the plugin learns it from `publish`, not after its Ack.
fn refusal(allow: &[String], msg: &Publish) -> Option<i32> {
    if !subject::is_valid_subject(&msg.subject, false) {
        return Some(status::INVALID_SUBJECT);
    }
    if !allow.iter().any(|pattern| subject::matches(pattern, &msg.subject)) {
        return Some(status::NOT_ALLOWED);
    }
    header::problem(&msg.headers).map(|_| status::INVALID_HEADER)
}

/// Give the `n`th publish of a JetStream message (`prefix` = `<stream>:<sequence>`)
/// its `Nats-Msg-Id`, so a redelivery publishes nothing twice into a stream —
/// unless the plugin named its own id (an event id, say). Core subjects get it
/// too: a subscriber can dedupe on it the same way.
fn stamp_msg_id(prefix: &str, n: usize, msg: &mut Publish) {
    if prefix.is_empty() || msg.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(header::MSG_ID)) {
        return;
    }
    msg.headers.push((header::MSG_ID.to_owned(), format!("{prefix}:{n}")));
}

/// `TOO_LARGE` when headers and payload exceed the server's `max_payload`
/// (when known): the client would refuse to send it, and the server would
/// close the connection on it.
fn oversize(msg: &Publish, max_payload: Option<usize>) -> Option<i32> {
    let size = header::wire_size(&msg.headers, msg.payload.len());
    max_payload.is_some_and(|max| size > max).then_some(status::TOO_LARGE)
}

/// During a batch call, message `index` begins: it gets its own publish
/// buffer, message id numbering, log fields, deadline and fuel.
fn begin_message(mut caller: Caller<'_, HostState>, index: i32) -> i32 {
    match caller.data_mut().begin_message(index) {
        Ok(fuel) => {
            if let Some(fuel) = fuel {
                // Only fails on an engine without fuel, which a fuel plugin never uses.
                let _ = caller.set_fuel(fuel);
            }
            status::OK
        }
        Err(NotBegun::NoBatch) => status::UNAVAILABLE,
        Err(NotBegun::OutOfOrder) => status::BAD_ARGUMENT,
    }
}

fn log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) -> i32 {
    if !(level::ERROR..=level::TRACE).contains(&level) {
        return status::BAD_ARGUMENT;
    }
    if !caller.data().log_budget.allow() {
        // Over budget: counted, reported once when the call ends.
        return status::OK;
    }
    let truncated = len > MAX_LOG_LINE as i32;
    let mut bytes = match guest_bytes(&mut caller, ptr, len.min(MAX_LOG_LINE as i32)) {
        Ok(bytes) => bytes,
        Err(code) => return code,
    };
    if let Err(err) = std::str::from_utf8(&bytes) {
        // Cutting a long line may split a character: keep what precedes it.
        if !(truncated && err.error_len().is_none()) {
            return status::BAD_ENCODING;
        }
        bytes.truncate(err.valid_up_to());
    }
    let text = super::printable(&String::from_utf8(bytes).unwrap_or_default());
    let state = caller.data_mut();
    let (plugin, version) = (&*state.plugin, &*state.version);
    let message = &state.message;
    let (subject, stream_sequence) = (message.subject.as_str(), message.stream_sequence);
    let trace_id = message.trace_id.map(tracing::field::display);
    match level {
        level::ERROR => {
            tracing::error!(target: "switchyard::plugin", plugin, version, subject, stream_sequence, trace_id, "{text}");
            state.last_error = Some(text);
        }
        level::WARN => tracing::warn!(target: "switchyard::plugin", plugin, version, subject, stream_sequence, trace_id, "{text}"),
        level::INFO => tracing::info!(target: "switchyard::plugin", plugin, version, subject, stream_sequence, trace_id, "{text}"),
        level::DEBUG => tracing::debug!(target: "switchyard::plugin", plugin, version, subject, stream_sequence, trace_id, "{text}"),
        _ => tracing::trace!(target: "switchyard::plugin", plugin, version, subject, stream_sequence, trace_id, "{text}"),
    }
    status::OK
}

#[cfg(test)]
mod tests {
    use switchyard_abi::{Publish, status};

    use super::{oversize, refusal, stamp_msg_id};

    fn publish(subject: &str, headers: &[(&str, &str)], payload: usize) -> Publish {
        let headers = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Publish { subject: subject.to_owned(), headers, payload: vec![b'x'; payload] }
    }

    #[test]
    fn subject_allow_list_and_headers_are_checked_in_that_order() {
        let allow = ["out.>".to_owned()];
        assert_eq!(refusal(&allow, &publish("out.a", &[("k", "v")], 1)), None);
        assert_eq!(refusal(&allow, &publish("out.*", &[], 1)), Some(status::INVALID_SUBJECT));
        assert_eq!(refusal(&allow, &publish("elsewhere", &[("bad name", "v")], 1)), Some(status::NOT_ALLOWED));
        for bad in [("bad name", "v"), ("a:b", "v"), ("", "v"), ("k", "a\r\nPUB x 0"), ("k", "nul\0")] {
            assert_eq!(refusal(&allow, &publish("out.a", &[bad], 1)), Some(status::INVALID_HEADER), "{bad:?}");
        }
    }

    #[test]
    fn size_counts_headers_and_payload_against_max_payload() {
        // "NATS/1.0\r\n" (10) + "k: v\r\n" (6) + "\r\n" (2) + 82 bytes = 100.
        let exact = publish("a", &[("k", "v")], 82);
        assert_eq!(oversize(&exact, Some(100)), None);
        assert_eq!(oversize(&exact, Some(99)), Some(status::TOO_LARGE));
        assert_eq!(oversize(&publish("a", &[], 100), Some(100)), None, "no headers: a plain PUB");
        assert_eq!(oversize(&publish("a", &[], 1 << 20), None), None, "unknown limit: not checked");
    }

    #[test]
    fn jetstream_publishes_are_numbered_unless_they_carry_an_id() {
        let mut first = publish("a", &[], 1);
        stamp_msg_id("ORDERS:7", 0, &mut first);
        assert_eq!(first.headers, [("Nats-Msg-Id".to_owned(), "ORDERS:7:0".to_owned())]);
        let mut own = publish("a", &[("nats-msg-id", "evt-1")], 1);
        stamp_msg_id("ORDERS:7", 1, &mut own);
        assert_eq!(own.headers, [("nats-msg-id".to_owned(), "evt-1".to_owned())]);
        let mut core = publish("a", &[], 1);
        stamp_msg_id("", 0, &mut core);
        assert!(core.headers.is_empty(), "a core message's publishes get no id");
    }
}
