//! The functions a plugin imports from the `switchyard` module.
//!
//! The guest is untrusted: every pointer/length pair is bounds-checked against its
//! memory, every byte decoded defensively, and every failure returned as a
//! negative status code. Nothing here panics or traps on bad guest input.

use switchyard_abi::{IMPORT_MODULE, Publish, level, names, status};
use wasmtime::{Caller, Extern, Linker};

use super::state::{HostState, MAX_PUBLISH_BYTES_PER_CALL, MAX_PUBLISHES_PER_CALL};
use crate::config::subject;

/// Longest log line kept from a plugin; the rest is cut.
const MAX_LOG_LINE: usize = 8 * 1024;

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, names::PUBLISH, publish)?;
    linker.func_wrap(IMPORT_MODULE, names::LOG, log)?;
    Ok(())
}

/// Copy `len` bytes at `ptr` out of the guest's exported memory.
fn guest_bytes(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Result<Vec<u8>, i32> {
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
    let Ok(msg) = switchyard_abi::decode::<Publish>(&bytes) else {
        return status::BAD_ENCODING;
    };
    let state = caller.data_mut();
    check_publish(state, &msg).unwrap_or_else(|| {
        state.publish_bytes += msg.payload.len();
        if let Some(buffer) = state.publishes.as_mut() {
            buffer.push(msg);
        }
        status::OK
    })
}

/// The reason a publish is refused, if it is.
fn check_publish(state: &HostState, msg: &Publish) -> Option<i32> {
    let Some(buffered) = state.publishes.as_ref() else {
        return Some(status::UNAVAILABLE);
    };
    if !subject::is_valid_subject(&msg.subject, false) {
        return Some(status::INVALID_SUBJECT);
    }
    if !state.allow.iter().any(|pattern| subject::matches(pattern, &msg.subject)) {
        return Some(status::NOT_ALLOWED);
    }
    if buffered.len() >= MAX_PUBLISHES_PER_CALL || state.publish_bytes + msg.payload.len() > MAX_PUBLISH_BYTES_PER_CALL {
        return Some(status::LIMIT_EXCEEDED);
    }
    None
}

fn log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) -> i32 {
    if !(level::ERROR..=level::TRACE).contains(&level) {
        return status::BAD_ARGUMENT;
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
    let text = String::from_utf8(bytes).unwrap_or_default();
    let state = caller.data_mut();
    let plugin = &*state.plugin;
    match level {
        level::ERROR => {
            tracing::error!(target: "switchyard::plugin", plugin, "{text}");
            state.last_error = Some(text);
        }
        level::WARN => tracing::warn!(target: "switchyard::plugin", plugin, "{text}"),
        level::INFO => tracing::info!(target: "switchyard::plugin", plugin, "{text}"),
        level::DEBUG => tracing::debug!(target: "switchyard::plugin", plugin, "{text}"),
        _ => tracing::trace!(target: "switchyard::plugin", plugin, "{text}"),
    }
    status::OK
}
