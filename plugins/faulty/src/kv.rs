//! The `kv` and `request` keys of a message: calls through the host (key-value
//! operations run in order, or one request), their results the payload of the
//! reply and publishes, so a test sees what the host answered.
//!
//! Each operation is an object: `{"op": "get" | "put" | "create" | "update" | "delete" | "keys",
//! "bucket": "B", "key": "k", "value": "text", "revision": 3, "prefix": "p"}`. Each result is
//! `{"value": "text", "revision": 3}` (get), `{"revision": 4}` (writes), `{"keys": [...]}`,
//! `{"deleted": true}`, `{"missing": true}` (get of a key without a value) or `{"error": "conflict" |
//! "not_allowed" | "unavailable" | "invalid" | "limit" | "too_large" | "other"}`. When any operation found the
//! store unavailable, the message is retried instead, as a plugin's `?` would make it.

use serde_json::{Map, Value, json};
use switchyard_sdk::prelude::*;

/// Whether any operation found the store unavailable (the handler then retries the message).
pub(crate) fn unavailable(results: &Value) -> bool {
    results.as_array().is_some_and(|results| results.iter().any(|r| r["error"] == "unavailable"))
}

/// Run `ops`; the results, as a JSON array.
pub(crate) fn run(ops: &[Value], ctx: &Context) -> Value {
    Value::Array(ops.iter().map(|op| one(op.as_object(), ctx)).collect())
}

fn one(op: Option<&Map<String, Value>>, ctx: &Context) -> Value {
    let field = |name: &str| op.and_then(|op| op.get(name)).and_then(Value::as_str).unwrap_or_default();
    let bucket = match ctx.kv(field("bucket")) {
        Ok(bucket) => bucket,
        Err(err) => return error(&err),
    };
    let (key, value) = (field("key"), field("value"));
    let result = match field("op") {
        "get" => bucket.get(key).map(|entry| match entry {
            Some(entry) => json!({"value": String::from_utf8_lossy(&entry.value), "revision": entry.revision}),
            None => json!({"missing": true}),
        }),
        "put" => bucket.put(key, value).map(|revision| json!({"revision": revision})),
        "create" => bucket.create(key, value).map(|revision| json!({"revision": revision})),
        "update" => {
            let revision = op.and_then(|op| op.get("revision")).and_then(Value::as_u64).unwrap_or_default();
            bucket.update(key, value, revision).map(|revision| json!({"revision": revision}))
        }
        "delete" => bucket.delete(key).map(|()| json!({"deleted": true})),
        "keys" => bucket.keys(field("prefix")).map(|keys| json!({"keys": keys})),
        other => return json!({"error": format!("unknown op `{other}`")}),
    };
    result.unwrap_or_else(|err| error(&err))
}

/// Send the request `spec` describes; the reply, or why none came.
pub(crate) fn request(spec: &Value, ctx: &mut Context) -> Value {
    let subject = spec["subject"].as_str().unwrap_or_default();
    let payload = spec["payload"].as_str().unwrap_or_default().as_bytes().to_vec();
    let timeout = spec["timeout_ms"].as_u64().map(std::time::Duration::from_millis);
    match ctx.request_with(subject, Vec::new(), payload, timeout) {
        Ok(reply) => json!({"reply": String::from_utf8_lossy(&reply.payload)}),
        Err(err) => json!({"error": match err {
            RequestError::NoResponders(_) => "no_responders",
            RequestError::TimedOut(_) => "timed_out",
            RequestError::NotAllowed(_) => "not_allowed",
            RequestError::Unavailable => "unavailable",
            _ => "other",
        }}),
    }
}

fn error(err: &KvError) -> Value {
    let kind = match err {
        KvError::Conflict => "conflict",
        KvError::NotAllowed(_) => "not_allowed",
        KvError::Unavailable => "unavailable",
        KvError::InvalidKey => "invalid",
        KvError::LimitExceeded => "limit",
        KvError::TooLarge => "too_large",
        _ => "other",
    };
    json!({"error": kind})
}
