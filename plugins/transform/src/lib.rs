//! `transform`: the JSON transform-and-forward reference plugin.
//!
//! The payload must be a JSON object. The plugin adds `"processed_by": "transform"`,
//! `"source_subject": <subject>` and, when the object has a string field `name`, `"name_upper"`;
//! publishes the result to `<target>.<subject>` with `content-type: application/json`; then acks,
//! or replies with the result when the message is a request. A payload that is not a JSON object
//! is rejected (dead-lettered at once: retrying the same bytes cannot help).
//!
//! ```toml
//! [plugins.transform]
//! path = "target/wasm32-wasip1/release/transform.wasm"
//! publish = ["processed.>"]                # the allow-list must cover <target>.>
//!
//! [plugins.transform.config]
//! target = "processed"                     # required
//! ```

use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_sdk::prelude::*;

const MISSING_TARGET: &str = "missing `target` (string)";

/// Parsed once, at init. Other keys are ignored, as they always were.
#[derive(Debug, Deserialize)]
struct Settings {
    target: String,
}

/// `target` is required: without it there is nowhere to forward to. Checked on the table, before
/// the SDK parses [`Settings`], to say so in the plugin's own words.
#[init]
fn init(config: &PluginConfig) -> Result<(), String> {
    match config.value("target") {
        Some(Value::String(target)) if target.is_empty() => Err("`target` must not be empty".to_owned()),
        Some(Value::String(_)) => Ok(()),
        _ => Err(MISSING_TARGET.to_owned()),
    }
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Outcome {
    let mut object = match serde_json::from_slice::<Value>(&msg.payload) {
        Ok(Value::Object(object)) => object,
        Ok(other) => return Outcome::reject(format!("payload is not a JSON object: found {}", kind(&other))),
        Err(e) => return Outcome::reject(format!("payload is not a JSON object: {e}")),
    };
    enrich(&mut object, &msg.subject);
    let result = Value::Object(object);

    let subject = format!("{}.{}", settings.target, msg.subject);
    if let Err(e) = ctx.publish_json(&subject, &result) {
        // Allow-list, subject and limit refusals repeat on every attempt: dead-letter the message
        // (it can be replayed once the configuration is fixed) instead of retrying in vain.
        return Outcome::reject(format!("cannot forward to `{subject}`: {e}"));
    }
    if msg.reply.is_none() {
        return Outcome::Ack;
    }
    // A `Value` always encodes as JSON; should it not, the forward above still stands.
    Outcome::reply_json(&result).unwrap_or(Outcome::Ack)
}

/// The fields this plugin adds.
fn enrich(object: &mut Map<String, Value>, subject: &str) {
    let upper = object.get("name").and_then(Value::as_str).map(str::to_uppercase);
    object.insert("processed_by".to_owned(), Value::from("transform"));
    object.insert("source_subject".to_owned(), Value::from(subject));
    if let Some(upper) = upper {
        object.insert("name_upper".to_owned(), Value::from(upper));
    }
}

/// The JSON type of a value, for the reject reason.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_sdk::testing::MockHost;

    fn host() -> MockHost {
        MockHost::new().allow("processed.>").config(json!({"target": "processed"})).init(init).expect("accepted")
    }

    #[test]
    fn enriches_and_forwards_then_acks() {
        let msg = Message::builder("orders.new").json(&json!({"id": 7, "name": "ada"})).build();
        let handled = host().call(handle, &msg);
        assert_eq!(handled.outcome, Outcome::Ack);
        let [sent] = handled.sent() else { panic!("expected one publish, got {:?}", handled.publishes) };
        assert_eq!(sent.subject, "processed.orders.new");
        assert_eq!(sent.headers, [("content-type".to_owned(), "application/json".to_owned())]);
        let body: Value = serde_json::from_slice(&sent.payload).expect("json");
        assert_eq!(body, json!({"id": 7, "name": "ada", "name_upper": "ADA", "processed_by": "transform", "source_subject": "orders.new"}));
    }

    #[test]
    fn requests_get_the_result_as_reply() {
        let msg = Message::builder("orders.new").json(&json!({"id": 1})).reply("_INBOX.9").build();
        let handled = host().call(handle, &msg);
        let Outcome::Reply { payload, headers } = &handled.outcome else { panic!("{:?}", handled.outcome) };
        let body: Value = serde_json::from_slice(payload).expect("json");
        assert_eq!(body["processed_by"], "transform");
        assert!(body.get("name_upper").is_none());
        assert_eq!(headers, &[("content-type".to_owned(), "application/json".to_owned())]);
        assert_eq!(handled.sent().len(), 1);
    }

    #[test]
    fn non_objects_are_rejected() {
        for (payload, expected) in [
            ("[1,2]", "payload is not a JSON object: found an array"),
            ("not json", "payload is not a JSON object: expected ident at line 1 column 2"),
        ] {
            let handled = host().call(handle, &Message::builder("orders.new").text(payload).build());
            assert_eq!(handled.outcome, Outcome::reject(expected));
            assert!(handled.publishes.is_empty());
        }
    }

    #[test]
    fn init_requires_a_string_target() {
        for config in [json!({}), json!({"target": 3})] {
            let refused = MockHost::new().config(config).init(init).expect_err("refused");
            assert_eq!(refused, MISSING_TARGET);
        }
        let refused = MockHost::new().config(json!({"target": ""})).init(init).expect_err("refused");
        assert_eq!(refused, "`target` must not be empty");
    }

    #[test]
    fn forbidden_target_is_a_reject_naming_the_subject() {
        let host = MockHost::new().config(json!({"target": "elsewhere"})).init(init).expect("accepted");
        let handled = host.call(handle, &Message::builder("a").json(&json!({})).build());
        assert_eq!(
            handled.outcome,
            Outcome::reject("cannot forward to `elsewhere.a`: subject `elsewhere.a` is not on the publish allow-list")
        );
    }
}
