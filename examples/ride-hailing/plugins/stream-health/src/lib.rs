//! `stream-health`: the seed's stream health check, answered over request/reply on a core subject.
//!
//! A request (any payload, or `{"streams": ["LOCATION", …]}` to ask about some) is answered with
//!
//! ```json
//! {"status": "ok", "service": "ride-hailing", "checked_at": "…",
//!  "streams": [{"name": "LOCATION", "status": "provisioned"}, …]}
//! ```
//!
//! What it can vouch for: the host answering means it is connected to NATS, and the host created
//! every stream of its runtime.toml at start-up (it refuses to start otherwise). What it cannot:
//! that a stream still exists now — the seed calls `StreamInfo` for each stream, and a plugin has no
//! host function for that yet. A stream it does not know is reported `"unknown"` and makes the
//! status `"degraded"`.
//!
//! ```toml
//! [plugins.stream-health.config]
//! service = "ride-hailing"
//! streams = ["LOCATION", "MATCH", "RIDE", "USER"]
//! ```

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    service: String,
    streams: Vec<String>,
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
    status: &'a str,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    if settings.streams.is_empty() {
        return Err("`streams` must name at least one stream".to_owned());
    }
    Ok(())
}

#[handler]
fn handle(msg: &Message, _ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    if msg.reply.is_none() {
        // A plain publish has no one to answer; nothing to do.
        return Ok(Outcome::Ack);
    }
    let request: Request = if msg.payload.iter().all(u8::is_ascii_whitespace) { Request::default() } else { msg.json()? };
    let asked: Vec<&str> = match &request.streams {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => settings.streams.iter().map(String::as_str).collect(),
    };
    let streams: Vec<StreamHealth<'_>> = asked
        .iter()
        .map(|&name| {
            let known = settings.streams.iter().any(|s| s == name);
            StreamHealth { name, status: if known { "provisioned" } else { "unknown" } }
        })
        .collect();
    let status = if streams.iter().all(|s| s.status == "provisioned") { "ok" } else { "degraded" };
    let health = Health { status, service: &settings.service, checked_at: Timestamp::now(), streams };
    Ok(Outcome::reply_json(&health)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    fn host() -> MockHost {
        MockHost::new()
            .config(json!({"service": "ride-hailing", "streams": ["LOCATION", "MATCH", "RIDE", "USER"]}))
            .init(init)
            .expect("accepted")
    }

    fn reply(handled: &switchyard_sdk::testing::Handled) -> Value {
        let Outcome::Reply { payload, .. } = &handled.outcome else { panic!("{:?}", handled.outcome) };
        serde_json::from_slice(payload).expect("json")
    }

    #[test]
    fn reports_every_stream() {
        let health = reply(&host().call(handle, &Message::builder("health.check.streams").reply("_INBOX.1").build()));
        assert_eq!(health["status"], "ok");
        assert_eq!(health["service"], "ride-hailing");
        let names: Vec<&str> = health["streams"].as_array().expect("list").iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, ["LOCATION", "MATCH", "RIDE", "USER"]);
        assert!(Timestamp::parse(health["checked_at"].as_str().unwrap_or_default()).is_ok());
    }

    #[test]
    fn an_unknown_stream_degrades_the_status() {
        let msg = Message::builder("health.check.streams").reply("_INBOX.1").json(&json!({"streams": ["RIDE", "PAYMENTS"]})).build();
        let health = reply(&host().call(handle, &msg));
        assert_eq!(health["status"], "degraded");
        assert_eq!(health["streams"], json!([{"name": "RIDE", "status": "provisioned"}, {"name": "PAYMENTS", "status": "unknown"}]));
        let bad = Message::builder("health.check.streams").reply("_INBOX.1").text("[").build();
        assert!(matches!(host().call(handle, &bad).outcome, Outcome::Reject { .. }));
    }
}
