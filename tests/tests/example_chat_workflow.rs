//! examples/chat-workflow end to end, on its runtime.toml (queue-group workers) and its
//! jetstream.toml (WORKFLOW_REQUESTS): response chunks reach each named pod in order, carrying the
//! request's correlation id and trace context; the session broadcast when no pod is named; error
//! chunks; two hosts sharing the queue group handle each request once; per-pod health and invalid
//! requests over request/reply.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use serde_json::{Value, json};
use switchyard_tests::examples::{self, header, json, next_n, sample, sample_json, stored_header};
use switchyard_tests::js::{count, messages, pending, quiet};
use switchyard_tests::{NatsServer, eventually, within};

const EXAMPLE: &str = "chat-workflow";
const WAIT: Duration = Duration::from_secs(20);
const SUBJECT: &str = "chat.workflow.execute.sess_456";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";
/// What the stand-in model answers to the sample request, word by word.
const ANSWER: &str = "You said: What is the weather today?";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, *value);
    }
    map
}

fn traced(pods: &str) -> HeaderMap {
    headers(&[("Chat-Reply-Pods", pods), ("traceparent", &format!("00-{TRACE_ID}-{PARENT_SPAN}-01")), ("tracestate", "vendor=abc")])
}

/// One pod's view of an answer: chunk ids in arrival order, chunks concatenated, the last chunk,
/// and the checks every chunk must pass (correlation, trace).
fn check_answer(chunks: &[async_nats::Message], correlation: &str) -> (Vec<u64>, String, Value) {
    let bodies: Vec<Value> = chunks.iter().map(|m| json(&m.payload)).collect();
    let first_span = header(&chunks[0], "traceparent").to_owned();
    for (msg, body) in chunks.iter().zip(&bodies) {
        assert_eq!(body["correlation_id"], correlation, "every chunk carries the correlation id");
        assert_eq!(header(msg, "traceparent"), first_span, "one span for the whole answer");
        assert_eq!(header(msg, "content-type"), "application/json");
    }
    let ids = bodies.iter().filter_map(|b| b["chunk_id"].as_u64()).collect();
    let text = bodies.iter().filter_map(|b| b["chunk"].as_str()).collect();
    (ids, text, bodies.last().cloned().unwrap_or_default())
}

#[tokio::test]
async fn chunks_reach_each_pod_in_order_with_correlation_and_trace() {
    let checked = examples::check(EXAMPLE, "runtime.toml");
    assert!(checked.contains("ok (2 plugin(s), 3 route(s), 0 stream(s))"), "{checked}");
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let mut pod1 = client.subscribe("chat.pod.pod-1.response").await.expect("subscribe");
    let mut pod2 = client.subscribe("chat.pod.pod-2.response").await.expect("subscribe");
    let mut broadcast = client.subscribe("chat.session.*.broadcast").await.expect("subscribe");
    client.flush().await.expect("flush");

    client.publish_with_headers(SUBJECT, traced("pod-1,pod-2"), sample(EXAMPLE, "workflow-request.json").into()).await.expect("publish");
    for (pod, sub) in [("pod-1", &mut pod1), ("pod-2", &mut pod2)] {
        let chunks = next_n(sub, 8, WAIT, &format!("the answer on {pod}")).await;
        let (ids, text, last) = check_answer(&chunks, "corr_xyz");
        assert_eq!(ids, (0..8).collect::<Vec<u64>>(), "{pod}: chunks in order");
        assert_eq!(text, ANSWER);
        assert_eq!(last["is_final"], true);
        assert_eq!(last["chunk_type"], "metadata");
        assert_eq!(last["metadata"], json!({"model": "gpt-4", "tokens_used": 7, "finish_reason": "stop"}));
        let first = json(&chunks[0].payload);
        assert_eq!((first["session_id"].as_str(), first["message_id"].as_str()), (Some("sess_456"), Some("msg_abc123")));
        assert_eq!(first["chunk_type"], "content");
        // The worker's span: same trace, its own span id, sampled; the vendor state carried along.
        let traceparent = header(&chunks[0], "traceparent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE_ID, "01"), "{traceparent}");
        assert!(parts[2].len() == 16 && parts[2] != PARENT_SPAN, "a child span: {traceparent}");
        assert_eq!(header(&chunks[0], "tracestate"), "vendor=abc");
    }
    assert!(quiet(&mut broadcast, Duration::from_millis(200)).await.is_empty(), "pods known: no broadcast");
    assert!(quiet(&mut pod1, Duration::from_millis(100)).await.is_empty(), "each chunk once");
    host.stop().await;
}

#[tokio::test]
async fn without_pods_the_session_broadcast_carries_the_answer_and_errors_reach_the_user() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let mut broadcast = client.subscribe("chat.session.sess_456.broadcast").await.expect("subscribe");
    let mut pods = client.subscribe("chat.pod.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    client.publish(SUBJECT, sample(EXAMPLE, "workflow-request.json").into()).await.expect("publish");
    let chunks = next_n(&mut broadcast, 8, WAIT, "the broadcast answer").await;
    let (ids, text, _) = check_answer(&chunks, "corr_xyz");
    assert_eq!((ids, text.as_str()), ((0..8).collect::<Vec<u64>>(), ANSWER));
    let traceparent = header(&chunks[0], "traceparent");
    assert!(!traceparent.contains(TRACE_ID) && traceparent.starts_with("00-"), "no trace given: a new one, {traceparent}");

    // An unavailable model: one error chunk to the pod, the request is done.
    let pod = headers(&[("Chat-Reply-Pods", "pod-1")]);
    client.publish_with_headers(SUBJECT, pod, sample(EXAMPLE, "workflow-request-unknown-model.json").into()).await.expect("publish");
    let error = next_n(&mut pods, 1, WAIT, "the error chunk").await;
    assert_eq!(error[0].subject.as_str(), "chat.pod.pod-1.response");
    let chunk = json(&error[0].payload);
    assert_eq!((chunk["chunk_type"].as_str(), chunk["is_final"].as_bool()), (Some("error"), Some(true)));
    assert_eq!(
        chunk["error"],
        json!({"code": "model_unavailable", "message": "model `claude-9` is not available (available: gpt-4, gpt-4o-mini, claude-3-5-sonnet)"})
    );
    assert_eq!(chunk["correlation_id"], "corr_uvw");
    assert!(quiet(&mut broadcast, Duration::from_millis(200)).await.is_empty());
    host.stop().await;
}

#[tokio::test]
async fn two_hosts_in_the_queue_group_handle_each_request_once() {
    const REQUESTS: usize = 20;
    let nats = NatsServer::start();
    let first = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let second = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let mut pod1 = client.subscribe("chat.pod.pod-1.response").await.expect("subscribe");
    client.flush().await.expect("flush");

    for i in 0..REQUESTS {
        let mut request = sample_json(EXAMPLE, "workflow-request.json");
        request["message_id"] = json!(format!("msg_{i}"));
        let payload = serde_json::to_vec(&request).expect("json");
        client.publish_with_headers(SUBJECT, headers(&[("Chat-Reply-Pods", "pod-1")]), payload.into()).await.expect("publish");
    }
    let chunks = next_n(&mut pod1, REQUESTS * 8, WAIT, "every answer").await;
    let mut answers: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for chunk in &chunks {
        let body = json(&chunk.payload);
        let id = body["message_id"].as_str().unwrap_or_default().to_owned();
        answers.entry(id).or_default().push(body["chunk_id"].as_u64().unwrap_or(u64::MAX));
    }
    assert_eq!(answers.len(), REQUESTS);
    for (id, ids) in &answers {
        assert_eq!(ids, &(0..8).collect::<Vec<u64>>(), "{id}: once, in order");
    }
    assert!(quiet(&mut pod1, Duration::from_millis(300)).await.is_empty(), "no request handled twice");
    let handled = |host: &switchyard_tests::Host| host.output().matches("of session sess_456").count();
    let (a, b) = (handled(&first), handled(&second));
    assert_eq!(a + b, REQUESTS, "each request logged by exactly one host");
    assert!(a > 0 && b > 0, "the queue group spread the work: {a} and {b}");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn pod_health_and_invalid_requests_over_request_reply() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());

    let health = within(WAIT, "the health reply", client.request("chat.pod.pod-1.health", "".into())).await.expect("reply");
    let body = json(&health.payload);
    assert_eq!((body["pod_id"].as_str(), body["status"].as_str()), (Some("pod-1"), Some("healthy")));
    assert_eq!(body["dependencies"], json!({"chat.workflow.health": "ok"}), "it asked the workers");

    // A request with a reply subject gets a summary of where the answer went.
    let ask = client.request_with_headers(SUBJECT, traced("pod-7"), sample(EXAMPLE, "workflow-request.json").into());
    let summary = json(&within(WAIT, "the summary", ask).await.expect("reply").payload);
    assert_eq!(summary["chunks"], 8);
    assert_eq!(summary["delivered_to"], json!(["chat.pod.pod-7.response"]));
    assert!(summary["traceparent"].as_str().is_some_and(|t| t.contains(TRACE_ID)), "{summary}");

    // An invalid request is refused: an error reply now, and a dead letter with the reason.
    let ask = client.request(SUBJECT, sample(EXAMPLE, "workflow-request-invalid.json").into());
    let refused = within(WAIT, "the error reply", ask).await.expect("reply");
    let reason = header(&refused, "Nats-Service-Error");
    let expected = "message validation failed: `message` is required; \
                    `context.ai_provider` must be one of `openai`, `anthropic`, `custom`, found `skynet`; \
                    `context.temperature` must be within 0..=2, found 3.5";
    assert_eq!(reason, expected);
    eventually(WAIT, "the dead letter", || async { (count(&js, "SWITCHYARD_DLQ").await == 1).then_some(()) }).await;
    let letter = &messages(&js, "SWITCHYARD_DLQ").await[0];
    assert_eq!(stored_header(letter, "Switchyard-Route"), "workflow-workers");
    assert_eq!(stored_header(letter, "Switchyard-Reason"), expected);
    assert_eq!(stored_header(letter, "Switchyard-Delivery-Count"), "1", "rejected, not retried");
    host.stop().await;
}

#[tokio::test]
async fn the_jetstream_variant_streams_the_same_answer() {
    let checked = examples::check(EXAMPLE, "jetstream.toml");
    assert!(checked.contains("ok (2 plugin(s), 2 route(s), 1 stream(s))"), "{checked}");
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "jetstream.toml", &nats).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut pod1 = client.subscribe("chat.pod.pod-1.response").await.expect("subscribe");
    client.flush().await.expect("flush");

    let ack = js.publish_with_headers(SUBJECT, traced("pod-1"), sample(EXAMPLE, "workflow-request.json").into()).await.expect("publish");
    assert_eq!(ack.await.expect("stored").stream, "WORKFLOW_REQUESTS");
    let chunks = next_n(&mut pod1, 8, WAIT, "the answer").await;
    let (ids, text, last) = check_answer(&chunks, "corr_xyz");
    assert_eq!((ids, text.as_str()), ((0..8).collect::<Vec<u64>>(), ANSWER));
    assert_eq!(last["is_final"], true);
    assert!(header(&chunks[0], "traceparent").contains(TRACE_ID));

    js.publish(SUBJECT, sample(EXAMPLE, "workflow-request-invalid.json").into()).await.expect("publish").await.expect("stored");
    eventually(WAIT, "the dead letter", || async { (count(&js, "SWITCHYARD_DLQ").await == 1).then_some(()) }).await;
    eventually(WAIT, "the work queue to drain", || async {
        (count(&js, "WORKFLOW_REQUESTS").await == 0 && pending(&js, "WORKFLOW_REQUESTS", "workflow-processor").await == (0, 0))
            .then_some(())
    })
    .await;
    let letter = &messages(&js, "SWITCHYARD_DLQ").await[0];
    assert_eq!(stored_header(letter, "Switchyard-Stream"), "WORKFLOW_REQUESTS");
    assert_eq!(stored_header(letter, "Switchyard-Route"), "workflow-processor");
    assert!(stored_header(letter, "Switchyard-Reason").starts_with("message validation failed: `message` is required"));
    assert!(quiet(&mut pod1, Duration::from_millis(200)).await.is_empty(), "nothing streamed for it");
    host.stop().await;
}
