//! The seed's `ResponseChunk`, and the stand-in model that produces them.
//!
//! A plugin cannot call an AI provider (no network), so the "model" echoes: it answers
//! `<echo_prefix> <message>`, one word per chunk (later words with their leading space, as
//! streaming APIs send them), at most `max_tokens` chunks, then a final `metadata` chunk with the
//! finish reason. A model that is not configured gets a single `error` chunk: the user sees the
//! error, and the request is done (not retried).

use serde::Serialize;
use switchyard_sdk::prelude::*;

use crate::request::WorkflowRequest;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseChunk<'a> {
    pub session_id: &'a str,
    pub message_id: &'a str,
    pub chunk_id: u32,
    pub chunk: String,
    pub chunk_type: &'static str,
    pub is_final: bool,
    pub metadata: ChunkMetadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ChunkError>,
    pub timestamp: Timestamp,
    pub correlation_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkMetadata<'a> {
    pub model: &'a str,
    pub tokens_used: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkError {
    pub code: &'static str,
    pub message: String,
}

/// Every chunk of the answer to `request`, in order.
pub fn respond<'a>(request: &'a WorkflowRequest, models: &[String], echo_prefix: &str, now: Timestamp) -> Vec<ResponseChunk<'a>> {
    let model = request.context.model.as_str();
    let chunk = |chunk_id: u32, chunk: String, chunk_type, tokens_used, finish_reason: Option<&'static str>| ResponseChunk {
        session_id: &request.session_id,
        message_id: &request.message_id,
        chunk_id,
        chunk,
        chunk_type,
        is_final: finish_reason.is_some(),
        metadata: ChunkMetadata { model, tokens_used, finish_reason },
        error: None,
        timestamp: now,
        correlation_id: &request.correlation_id,
    };
    if !models.iter().any(|m| m == model) {
        let mut error = chunk(0, String::new(), "error", 0, Some("error"));
        error.error = Some(ChunkError {
            code: "model_unavailable",
            message: format!("model `{model}` is not available (available: {})", models.join(", ")),
        });
        return vec![error];
    }
    let answer = format!("{echo_prefix} {}", request.message);
    let words: Vec<&str> = answer.split_whitespace().collect();
    let limit = usize::try_from(request.context.max_tokens).unwrap_or(usize::MAX);
    let mut chunks: Vec<ResponseChunk<'a>> = words
        .iter()
        .take(limit)
        .enumerate()
        .map(|(i, word)| {
            let text = if i == 0 { (*word).to_owned() } else { format!(" {word}") };
            chunk(i as u32, text, "content", i as u32 + 1, None)
        })
        .collect();
    let used = chunks.len() as u32;
    let reason = if words.len() > limit { "length" } else { "stop" };
    chunks.push(chunk(used, String::new(), "metadata", used, Some(reason)));
    chunks
}
