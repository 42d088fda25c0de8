//! `workflow-worker`: the workflow service of the chat architecture.
//!
//! It takes a `WorkflowRequest` from `chat.workflow.execute.{session_id}` (a queue group in
//! `runtime.toml`, the `WORKFLOW_REQUESTS` work queue in `jetstream.toml`) and streams the answer
//! as `ResponseChunk`s:
//!
//! - to `chat.pod.{pod}.response` for each pod named in the `Chat-Reply-Pods` header, chunk by
//!   chunk in order (the host sends one call's publishes in the order they were made);
//! - or, when no pod is named, to the session broadcast `chat.session.{session_id}.broadcast`,
//!   the seed's fallback for when the registry of active pods is unknown.
//!
//! Every chunk carries the request's `correlation_id` and the trace: `traceparent` naming this
//! worker's span (a child of the request's `traceparent`, or a new trace when it has none) and
//! the request's `tracestate`. A request made with a reply subject (`switchyard req`) is answered
//! with a summary once the chunks are out.
//!
//! ```toml
//! [plugins.workflow-worker.config]
//! models = ["gpt-4", "claude-3-5-sonnet"]   # what the stand-in model pretends to be
//! echo_prefix = "You said:"
//! ```

mod chunks;
mod request;

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

pub use chunks::{ResponseChunk, respond};
pub use request::{REPLY_PODS, WorkflowRequest};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    models: Vec<String>,
    echo_prefix: String,
}

/// The reply to a request made with `switchyard req`: where the answer went.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    message_id: &'a str,
    correlation_id: &'a str,
    chunks: usize,
    delivered_to: &'a [String],
    traceparent: String,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    if settings.models.is_empty() {
        return Err("`models` must name at least one model".to_owned());
    }
    Ok(())
}

/// The subject a worker answers health checks on.
const HEALTH: &str = "chat.workflow.health";

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    // The pods' health checks ask the workers too (`chat.workflow.health`).
    if msg.subject == HEALTH {
        return Ok(Outcome::reply_json(&serde_json::json!({"status": "ok", "models": settings.models}))?);
    }
    let request = request::read(msg)?;
    let pods = request::reply_pods(msg)?;
    let parent = TraceContext::from_message(msg).unwrap_or_else(|e| {
        // A broken trace header must not cost the user their answer: start a new trace.
        ctx.warn(format!("{e}; starting a new trace"));
        None
    });
    let span = match parent {
        Some(parent) => parent.child_of(&request.message_id),
        None => TraceContext::root(&request.message_id),
    };
    let targets: Vec<String> = if pods.is_empty() {
        vec![format!("chat.session.{}.broadcast", request.session_id)]
    } else {
        pods.iter().map(|pod| format!("chat.pod.{pod}.response")).collect()
    };

    let chunks = respond(&request, &settings.models, &settings.echo_prefix, Timestamp::now());
    for chunk in &chunks {
        for subject in &targets {
            let publish = Publish::json(subject.as_str(), chunk)?.with_headers(span.headers());
            ctx.send(publish).or_reject_with(format!("publishing to `{subject}`"))?;
        }
    }
    ctx.info(format!(
        "message {} of session {}: {} chunk(s) to {} (trace {})",
        request.message_id,
        request.session_id,
        chunks.len(),
        targets.join(", "),
        span.trace_id()
    ));
    if msg.reply.is_none() {
        return Ok(Outcome::Ack);
    }
    let summary = Summary {
        message_id: &request.message_id,
        correlation_id: &request.correlation_id,
        chunks: chunks.len(),
        delivered_to: &targets,
        traceparent: span.traceparent(),
    };
    Ok(Outcome::reply_json(&summary)?)
}

#[cfg(test)]
mod tests;
