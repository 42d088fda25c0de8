//! The worker under the SDK's mock host: chunk order and content, pods and the broadcast fallback,
//! correlation and trace propagation, refusals.

use serde_json::{Value, json};
use switchyard_sdk::testing::{Handled, MockHost};

use super::*;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn host() -> MockHost {
    MockHost::new()
        .allow("chat.pod.*.response")
        .allow("chat.session.*.broadcast")
        .config(json!({"models": ["gpt-4"], "echo_prefix": "You said:"}))
        .init(init)
        .expect("config accepted")
}

fn request(model: &str, max_tokens: u32) -> Value {
    json!({"message_id": "msg_abc123", "session_id": "sess_456", "user_id": "user_789",
           "message": "What is the weather today?",
           "context": {"ai_provider": "openai", "model": model, "temperature": 0.7, "max_tokens": max_tokens},
           "timestamp": "2025-11-17T20:30:00Z", "correlation_id": "corr_xyz"})
}

fn sent(handled: &Handled) -> Vec<(String, Value)> {
    handled.sent().iter().map(|p| (p.subject.clone(), serde_json::from_slice(&p.payload).expect("json"))).collect()
}

#[test]
fn chunks_go_to_each_pod_in_order_with_the_trace() {
    let msg = Message::builder("chat.workflow.execute.sess_456")
        .json(&request("gpt-4", 2000))
        .header(REPLY_PODS, "pod-1, pod-2")
        .header("traceparent", PARENT)
        .header("tracestate", "vendor=abc")
        .build();
    let handled = host().call(handle, &msg);
    assert_eq!(handled.outcome, Outcome::Ack);
    let chunks = sent(&handled);
    assert_eq!(chunks.len(), 16, "7 words + the final chunk, to two pods");
    for pod in ["pod-1", "pod-2"] {
        let mine: Vec<&Value> = chunks.iter().filter(|(s, _)| *s == format!("chat.pod.{pod}.response")).map(|(_, c)| c).collect();
        let ids: Vec<u64> = mine.iter().filter_map(|c| c["chunk_id"].as_u64()).collect();
        assert_eq!(ids, (0..8).collect::<Vec<u64>>());
        let text: String = mine.iter().filter_map(|c| c["chunk"].as_str()).collect();
        assert_eq!(text, "You said: What is the weather today?");
        assert!(mine.iter().all(|c| c["correlation_id"] == "corr_xyz" && c["session_id"] == "sess_456"));
        let last = mine[7];
        assert_eq!((last["is_final"].as_bool(), last["chunk_type"].as_str()), (Some(true), Some("metadata")));
        assert_eq!(last["metadata"], json!({"model": "gpt-4", "tokens_used": 7, "finish_reason": "stop"}));
        assert_eq!(mine[1]["chunk"], " said:");
    }
    let span = TraceContext::parse(PARENT).expect("valid").child_of("msg_abc123");
    for publish in handled.sent() {
        let header = |name: &str| publish.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(header("traceparent"), Some(span.traceparent().as_str()));
        assert_eq!(header("tracestate"), Some("vendor=abc"));
        assert_eq!(header("content-type"), Some("application/json"));
    }
}

#[test]
fn no_pods_means_the_session_broadcast_and_max_tokens_truncates() {
    let msg = Message::builder("chat.workflow.execute.sess_456").json(&request("gpt-4", 3)).build();
    let chunks = sent(&host().call(handle, &msg));
    assert!(chunks.iter().all(|(s, _)| s == "chat.session.sess_456.broadcast"));
    let text: String = chunks.iter().filter_map(|(_, c)| c["chunk"].as_str()).collect();
    assert_eq!(text, "You said: What");
    assert_eq!(chunks[3].1["metadata"]["finish_reason"], "length");
}

#[test]
fn an_unknown_model_is_an_error_chunk_not_a_retry() {
    let msg = Message::builder("chat.workflow.execute.sess_456").json(&request("gpt-9", 10)).header(REPLY_PODS, "pod-1").build();
    let handled = host().call(handle, &msg);
    assert_eq!(handled.outcome, Outcome::Ack);
    let [(_, chunk)] = <[_; 1]>::try_from(sent(&handled)).expect("one chunk");
    assert_eq!(chunk["chunk_type"], "error");
    assert_eq!(chunk["is_final"], true);
    assert_eq!(chunk["error"], json!({"code": "model_unavailable", "message": "model `gpt-9` is not available (available: gpt-4)"}));
}

#[test]
fn a_request_is_answered_with_a_summary() {
    let msg = Message::builder("chat.workflow.execute.sess_456").json(&request("gpt-4", 2000)).reply("_INBOX.1").build();
    let handled = host().call(handle, &msg);
    let Outcome::Reply { payload, .. } = &handled.outcome else { panic!("{:?}", handled.outcome) };
    let summary: Value = serde_json::from_slice(payload).expect("json");
    assert_eq!(summary["chunks"], 8);
    assert_eq!(summary["delivered_to"], json!(["chat.session.sess_456.broadcast"]));
    assert_eq!(summary["traceparent"], TraceContext::root("msg_abc123").traceparent(), "no trace given: a new one");
}

#[test]
fn bad_requests_are_rejected() {
    let wrong_session = Message::builder("chat.workflow.execute.sess_999").json(&request("gpt-4", 10)).build();
    assert_eq!(
        host().call(handle, &wrong_session).outcome,
        Outcome::reject("subject `chat.workflow.execute.sess_999` is for session `sess_999` but the request is for `sess_456`")
    );
    let mut bad = request("gpt-4", 0);
    bad["context"]["ai_provider"] = json!("skynet");
    let handled = host().call(handle, &Message::builder("chat.workflow.execute.sess_456").json(&bad).build());
    assert_eq!(
        handled.outcome,
        Outcome::reject(
            "message validation failed: `context.ai_provider` must be one of `openai`, `anthropic`, `custom`, found `skynet`; \
             `context.max_tokens` must be within 1..=32000, found 0"
        )
    );
    let pods = Message::builder("chat.workflow.execute.sess_456").json(&request("gpt-4", 10)).header(REPLY_PODS, "pod.1").build();
    let Outcome::Reject { reason } = host().call(handle, &pods).outcome else { panic!("rejected") };
    assert!(reason.contains("`Chat-Reply-Pods` must be usable as a subject token"), "{reason}");
}

#[test]
fn a_broken_traceparent_starts_a_new_trace() {
    let msg = Message::builder("chat.workflow.execute.sess_456").json(&request("gpt-4", 1)).header("traceparent", "garbage").build();
    let handled = host().call(handle, &msg);
    assert_eq!(handled.outcome, Outcome::Ack);
    assert!(handled.logged(Level::Warn, "invalid traceparent `garbage`"));
    let traceparent = handled.sent()[0].headers.iter().find(|(k, _)| k == "traceparent").map(|(_, v)| v.clone());
    assert_eq!(traceparent, Some(TraceContext::root("msg_abc123").traceparent()));
}
