//! Traces across a chain of two plugins, neither of which touches the SDK's
//! `TraceContext`: the host continues the sender's `traceparent`, exports a
//! span per message over OTLP/HTTP to a collector in the test, and links the
//! second plugin's span to the first's. JSON log lines carry the trace id, on
//! the host's lines about a message and on the plugin's own.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use switchyard_tests::host::preamble;
use switchyard_tests::js::{header, messages};
use switchyard_tests::otlp::{Collector, Span};
use switchyard_tests::{Host, NatsServer, eventually, plugin, within};

const WAIT: Duration = Duration::from_secs(60);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_SPAN: &str = "00f067aa0ba902b7";

/// `first` (on chain.first) publishes the message on to chain.second, where
/// `second` acks it. Both are the faulty plugin, configured to do just that.
fn config(url: &str, collector: &str) -> String {
    format!(
        r#"{}
[telemetry]
log_format = "json"

[telemetry.otlp]
endpoint = "{collector}"
batch_delay = "100ms"

[plugins.first]
path = "{faulty}"
publish = ["chain.>"]
config = {{ publish = ["chain.second"], log_calls = true }}

[plugins.second]
path = "{faulty}"

[[routes]]
name = "first"
plugin = "first"
subjects = ["chain.first"]

[[routes]]
name = "second"
plugin = "second"
subjects = ["chain.second"]

[plugins.broken]
path = "{faulty}"
config = {{ action = "trap" }}

[[routes]]
name = "broken"
plugin = "broken"
subjects = ["broken"]
retry = {{ attempts = 1 }}
"#,
        preamble(url),
        faulty = plugin("faulty").display()
    )
}

/// The two spans of one trace, once both arrived: (first, second).
async fn chain(collector: &Collector, trace: impl Fn(&Span) -> bool) -> (Span, Span) {
    eventually(WAIT, "both spans of the chain at the collector", || async {
        let spans: Vec<Span> = collector.spans().into_iter().filter(|s| trace(s)).collect();
        let first = spans.iter().find(|s| s.attributes.get("switchyard.route").map(String::as_str) == Some("first"))?;
        let second = spans.iter().find(|s| s.attributes.get("switchyard.route").map(String::as_str) == Some("second"))?;
        Some((first.clone(), second.clone()))
    })
    .await
}

/// (trace id, span id, parent span id) of the span of `route` in the test trace.
async fn collector_span(collector: &Collector, route: &str) -> (String, String, String) {
    eventually(WAIT, "the span at the collector", || async {
        let span = collector
            .spans()
            .into_iter()
            .find(|s| s.trace_id == TRACE && s.attributes.get("switchyard.route").map(String::as_str) == Some(route))?;
        Some((span.trace_id, span.span_id, span.parent_span_id))
    })
    .await
}

#[tokio::test]
async fn a_trace_continues_through_a_chain_of_two_plugins() {
    let nats = NatsServer::start();
    let collector = Collector::start().await;
    let host = Host::start(&config(nats.url(), collector.url())).await;
    let client = nats.client().await;

    // A request that arrives with a trace: its reply names the host's span.
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", format!("00-{TRACE}-{SENDER_SPAN}-01").as_str());
    let reply = within(WAIT, "the reply", client.request_with_headers("chain.first", headers, "x".into())).await.expect("reply");
    let reply_parent =
        reply.headers.as_ref().and_then(|h| h.get("traceparent")).map(|v| v.to_string()).expect("a traceparent on the reply");

    let (first, second) = chain(&collector, |s| s.trace_id == TRACE).await;
    assert_eq!(first.parent_span_id, SENDER_SPAN, "the host's span is a child of the sender's");
    assert_eq!(second.parent_span_id, first.span_id, "the second plugin's span is a child of the first's: {first:?} {second:?}");
    assert_eq!(reply_parent, format!("00-{TRACE}-{}-01", first.span_id));
    assert_eq!(first.name, "process first");
    assert_eq!(first.service, "switchyard");
    for (key, value) in [("switchyard.plugin", "first"), ("messaging.destination.name", "chain.first"), ("switchyard.outcome", "reply")] {
        assert_eq!(first.attributes.get(key).map(String::as_str), Some(value), "{key}: {first:?}");
    }
    assert_eq!(second.attributes.get("switchyard.outcome").map(String::as_str), Some("ack"));
    assert_eq!(second.attributes.get("switchyard.attempt").map(String::as_str), Some("1"));
    assert_eq!(first.attributes.get("switchyard.plugin.version").map(String::len), Some(12), "{first:?}");

    // A message without a trace starts one; the chain still shares it.
    within(WAIT, "a publish", client.publish("chain.first", "y".into())).await.expect("publish");
    let (first, second) = chain(&collector, |s| s.trace_id != TRACE).await;
    assert_eq!(first.parent_span_id, "", "a root span");
    assert_eq!(second.trace_id, first.trace_id);
    assert_eq!(second.parent_span_id, first.span_id);

    // A plugin that traps: the host's line about it names the message.
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", format!("00-{TRACE}-{SENDER_SPAN}-01").as_str());
    let reply = within(WAIT, "the error reply", client.request_with_headers("broken", headers, "z".into())).await.expect("reply");
    assert!(reply.headers.as_ref().and_then(|h| h.get("traceparent")).is_some_and(|v| v.as_str().contains(TRACE)), "{reply:?}");
    // Its dead letter names the host's span, in the same trace.
    let letters = messages(&jetstream::new(client.clone()), "SWITCHYARD_DLQ").await;
    let (_, span, _) = collector_span(&collector, "broken").await;
    assert_eq!(letters.len(), 1);
    assert_eq!(header(&letters[0], "traceparent"), format!("00-{TRACE}-{span}-01"));

    // Log lines are JSON objects, and a plugin's line carries the message's trace id.
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
    let line = output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"].as_str().is_some_and(|m| m.contains("faulty: call chain.first")) && line["trace_id"] == TRACE)
        .unwrap_or_else(|| panic!("no JSON log line of the traced call:\n{output}"));
    assert_eq!(line["subject"], "chain.first", "{line}");
    assert_eq!(line["plugin"], "first", "{line}");
    assert_eq!(line["version"].as_str().map(str::len), Some(12), "{line}");
    let line = output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"].as_str().is_some_and(|m| m.contains("the instance was discarded")))
        .unwrap_or_else(|| panic!("no JSON log line of the trap:\n{output}"));
    assert_eq!(line["level"], "WARN", "{line}");
    for (key, value) in [("route", "broken"), ("plugin", "broken"), ("subject", "broken"), ("trace_id", TRACE)] {
        assert_eq!(line[key], value, "{key}: {line}");
    }
    assert_eq!(line["attempt"], 1, "{line}");
}
