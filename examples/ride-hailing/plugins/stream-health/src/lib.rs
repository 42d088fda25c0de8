//! `stream-health`: the seed's stream health check. For each stream it asks JetStream for the
//! stream's info (`$JS.API.STREAM.INFO.<name>`, a read-only request through the host, as the
//! seed's `js.StreamInfo` does) and reports
//!
//! ```json
//! {"status": "ok", "service": "ride-hailing", "checked_at": "…",
//!  "streams": [{"name": "LOCATION", "status": "ok", "messages": 0, "consumers": 1}, …]}
//! ```
//!
//! A stream JetStream does not have is `"missing"`, one it did not answer for in time is
//! `"unreachable"`, a name outside the configuration is `"unknown"`; any of them makes the status
//! `"degraded"`.
//!
//! Two ways in: a request on a core subject is answered with the report (`{"streams": [...]}`
//! asks about some streams only), and a tick of a timer route publishes it to `report`.
//!
//! ```toml
//! [plugins.stream-health]
//! request = ["$JS.API.STREAM.INFO.*"]
//! publish = ["health.streams"]
//! config = { service = "ride-hailing", streams = ["LOCATION", "MATCH", "RIDE", "USER"], report = "health.streams" }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

/// How long one stream's info may take before the stream counts as unreachable.
const ASK_FOR: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    service: String,
    streams: Vec<String>,
    /// Where a tick's report is published.
    report: String,
}

/// An optional request body: which streams to report.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    streams: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct Health<'a> {
    status: &'a str,
    service: &'a str,
    checked_at: Timestamp,
    streams: Vec<StreamHealth<'a>>,
}

#[derive(Debug, Serialize)]
struct StreamHealth<'a> {
    name: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumers: Option<u64>,
}

/// The parts of JetStream's stream info answer the report uses.
#[derive(Debug, Deserialize)]
struct StreamInfo {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    state: Option<StreamState>,
}

#[derive(Debug, Deserialize)]
struct StreamState {
    messages: u64,
    consumer_count: u64,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    if settings.streams.is_empty() {
        return Err("`streams` must name at least one stream".to_owned());
    }
    Ok(())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    if msg.subject.starts_with("switchyard.tick.") {
        let names: Vec<&str> = settings.streams.iter().map(String::as_str).collect();
        let health = check(ctx, settings, &names);
        ctx.publish_json(&settings.report, &health).or_reject_with("publishing the report")?;
        return Ok(Outcome::Ack);
    }
    if msg.reply.is_none() {
        // A plain publish has no one to answer; nothing to do.
        return Ok(Outcome::Ack);
    }
    let request: Request = if msg.payload.iter().all(u8::is_ascii_whitespace) { Request::default() } else { msg.json()? };
    let names: Vec<&str> = match &request.streams {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => settings.streams.iter().map(String::as_str).collect(),
    };
    Ok(Outcome::reply_json(&check(ctx, settings, &names))?)
}

/// Ask JetStream about each of `names` that the configuration lists.
fn check<'a>(ctx: &mut Context, settings: &'a Settings, names: &[&'a str]) -> Health<'a> {
    let streams: Vec<StreamHealth<'a>> = names
        .iter()
        .map(|&name| match settings.streams.iter().any(|s| s == name) {
            true => ask(ctx, name),
            false => StreamHealth { name, status: "unknown", messages: None, consumers: None },
        })
        .collect();
    let status = if streams.iter().all(|s| s.status == "ok") { "ok" } else { "degraded" };
    Health { status, service: &settings.service, checked_at: Timestamp::now(), streams }
}

fn ask<'a>(ctx: &mut Context, name: &'a str) -> StreamHealth<'a> {
    let answer = ctx.request_with(&format!("$JS.API.STREAM.INFO.{name}"), Vec::new(), Vec::new(), Some(ASK_FOR));
    let info = answer.ok().map(|reply| serde_json::from_slice::<StreamInfo>(&reply.payload));
    let (status, state) = match info {
        Some(Ok(StreamInfo { error: None, state: Some(state) })) => ("ok", Some(state)),
        Some(Ok(StreamInfo { error: Some(_), .. })) => ("missing", None),
        // No reply in time, or one that is not stream info.
        _ => ("unreachable", None),
    };
    StreamHealth { name, status, messages: state.as_ref().map(|s| s.messages), consumers: state.as_ref().map(|s| s.consumer_count) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    const STREAMS: [&str; 4] = ["LOCATION", "MATCH", "RIDE", "USER"];

    /// JetStream answers for every stream but `USER`.
    fn host() -> MockHost {
        let host = MockHost::new()
            .config(json!({"service": "ride-hailing", "streams": STREAMS, "report": "health.streams"}))
            .init(init)
            .expect("accepted")
            .allow("health.streams");
        let info = |n: u64| json!({"type": "io.nats.jetstream.api.v1.stream_info_response", "state": {"messages": n, "consumer_count": 1}});
        let missing = json!({"error": {"code": 404, "err_code": 10059, "description": "stream not found"}});
        host.responder("$JS.API.STREAM.INFO.LOCATION", info(0).to_string())
            .responder("$JS.API.STREAM.INFO.MATCH", info(2).to_string())
            .responder("$JS.API.STREAM.INFO.RIDE", info(0).to_string())
            .responder("$JS.API.STREAM.INFO.USER", missing.to_string())
    }

    fn reply(handled: &switchyard_sdk::testing::Handled) -> Value {
        let Outcome::Reply { payload, .. } = &handled.outcome else { panic!("{:?}", handled.outcome) };
        serde_json::from_slice(payload).expect("json")
    }

    #[test]
    fn reports_each_stream_as_jetstream_answers() {
        let health = reply(&host().call(handle, &Message::builder("health.check.streams").reply("_INBOX.1").build()));
        assert_eq!(health["status"], "degraded");
        assert_eq!(health["service"], "ride-hailing");
        assert_eq!(health["streams"][1], json!({"name": "MATCH", "status": "ok", "messages": 2, "consumers": 1}));
        assert_eq!(health["streams"][3], json!({"name": "USER", "status": "missing"}));
        assert!(Timestamp::parse(health["checked_at"].as_str().unwrap_or_default()).is_ok());
    }

    #[test]
    fn a_stream_outside_the_configuration_or_unanswered_degrades_the_status() {
        let msg = Message::builder("health.check.streams").reply("_INBOX.1").json(&json!({"streams": ["RIDE", "PAYMENTS"]})).build();
        let health = reply(&host().call(handle, &msg));
        assert_eq!(health["status"], "degraded");
        assert_eq!(
            health["streams"],
            json!([{"name": "RIDE", "status": "ok", "messages": 0, "consumers": 1}, {"name": "PAYMENTS", "status": "unknown"}])
        );
        let silent = MockHost::new().config(json!({"service": "s", "streams": ["RIDE"], "report": "r"})).init(init).expect("accepted");
        let health = reply(&silent.call(handle, &Message::builder("health.check.streams").reply("_INBOX.1").build()));
        assert_eq!(health["streams"], json!([{"name": "RIDE", "status": "unreachable"}]));
        let bad = Message::builder("health.check.streams").reply("_INBOX.1").text("[").build();
        assert!(matches!(host().call(handle, &bad).outcome, Outcome::Reject { .. }));
    }

    #[test]
    fn a_tick_publishes_the_report() {
        let handled = host().call(handle, &Message::builder("switchyard.tick.stream-health-report").build());
        assert_eq!(handled.outcome, Outcome::Ack);
        let [report] = handled.sent() else { panic!("one report: {:?}", handled.sent()) };
        assert_eq!(report.subject, "health.streams");
        let health: Value = serde_json::from_slice(&report.payload).expect("json");
        assert_eq!(health["streams"].as_array().map(Vec::len), Some(4));
    }
}
