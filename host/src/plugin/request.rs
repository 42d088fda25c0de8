//! Requests to other services through the host: the `request` import sends a
//! core NATS request to a subject on the plugin's `request` allow-list and
//! waits for the reply, at most until the call's own deadline, so a slow
//! service cannot stretch a call past the plugin's `timeout`.

use std::time::Instant;

use async_nats::RequestErrorKind;
use switchyard_abi::{IMPORT_MODULE, Reply, Request, header, names, status};
use wasmtime::{Caller, Linker};

use super::guest_threads;
use super::host_fns::guest_bytes;
use super::nats::leave_result;
use super::state::{HostState, MAX_CALLS_PER_MESSAGE};
use crate::config::subject;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(IMPORT_MODULE, names::REQUEST, |mut caller, (ptr, len): (i32, i32)| {
        Box::new(async move {
            let started = Instant::now();
            let returned = guest_threads::host_io(request(&mut caller, ptr, len)).await;
            let state = caller.data();
            state.nats.count_request(&state.plugin, returned, started.elapsed());
            returned
        })
    })?;
    Ok(())
}

async fn request(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> i64 {
    match send(caller, ptr, len).await {
        Ok(reply) => leave_result(caller, &reply),
        Err(code) => i64::from(code),
    }
}

async fn send(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Result<Reply, i32> {
    let bytes = guest_bytes(caller, ptr, len)?;
    let request: Request = switchyard_abi::decode(&bytes).map_err(|_| status::BAD_ENCODING)?;
    if !subject::is_valid_subject(&request.subject, false) {
        return Err(status::INVALID_SUBJECT);
    }
    let state = caller.data_mut();
    if state.shadow {
        return Err(status::UNAVAILABLE);
    }
    if !state.request_allow.iter().any(|pattern| subject::matches(pattern, &request.subject)) {
        return Err(status::NOT_ALLOWED);
    }
    if header::problem(&request.headers).is_some() {
        return Err(status::INVALID_HEADER);
    }
    if state.calls >= MAX_CALLS_PER_MESSAGE {
        return Err(status::LIMIT_EXCEEDED);
    }
    state.calls += 1;
    if let Some(reply) = state.nats.responder(&request.subject) {
        return reply.map(|payload| Reply { headers: Vec::new(), payload });
    }
    let client = state.nats.client().ok_or(status::UNAVAILABLE)?;
    // Never past the call's deadline: what is left of it, or less if asked.
    let left = state.deadline.saturating_duration_since(Instant::now());
    let wait = match request.timeout_ms {
        0 => left,
        ms => left.min(std::time::Duration::from_millis(ms)),
    };
    let headers = crate::route::convert_headers(&request.headers).map_err(|_| status::INVALID_HEADER)?;
    let sent = client.request_with_headers(request.subject, headers, request.payload.into());
    match tokio::time::timeout(wait, sent).await {
        Ok(Ok(reply)) => {
            Ok(Reply { headers: reply.headers.as_ref().map(crate::route::headers_of).unwrap_or_default(), payload: reply.payload.to_vec() })
        }
        Ok(Err(err)) if err.kind() == RequestErrorKind::NoResponders => Err(status::NO_RESPONDERS),
        Ok(Err(err)) if err.kind() == RequestErrorKind::TimedOut => Err(status::TIMED_OUT),
        Ok(Err(_)) => Err(status::UNAVAILABLE),
        Err(_) => Err(status::TIMED_OUT),
    }
}
