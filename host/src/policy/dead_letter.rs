//! Dead letters: a failed message copied, payload intact, into the dead-letter
//! stream with headers that say where it came from and why it failed.

use std::str::FromStr;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};
use switchyard_abi::Message;

use crate::plugin::Plugin;
use crate::telemetry::trace::MessageTrace;

/// Header names carried by every dead letter.
pub(crate) mod headers {
    pub(crate) const SUBJECT: &str = "Switchyard-Original-Subject";
    pub(crate) const ROUTE: &str = "Switchyard-Route";
    pub(crate) const PLUGIN: &str = "Switchyard-Plugin";
    pub(crate) const PLUGIN_HASH: &str = "Switchyard-Plugin-Hash";
    pub(crate) const REASON: &str = "Switchyard-Reason";
    pub(crate) const DELIVERIES: &str = "Switchyard-Delivery-Count";
    pub(crate) const STREAM: &str = "Switchyard-Stream";
    pub(crate) const SEQUENCE: &str = "Switchyard-Stream-Sequence";
    /// `true` when the original was a core request, so a replay sends it as one.
    pub(crate) const REQUEST: &str = "Switchyard-Request";
}

/// Publishes dead letters to `<prefix>.<route>` and waits for the stream's ack.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetters {
    js: jetstream::Context,
    prefix: String,
}

/// One message on its way to the dead-letter stream.
#[derive(Debug)]
pub(crate) struct DeadLetter<'a> {
    pub route: &'a str,
    pub plugin: &'a Plugin,
    pub message: &'a Message,
    /// The host's span for the message: the letter names it as its parent.
    pub trace: Option<&'a MessageTrace>,
    pub reason: &'a str,
}

impl DeadLetters {
    pub(crate) fn new(js: jetstream::Context, prefix: &str) -> Self {
        Self { js, prefix: prefix.to_owned() }
    }

    /// Store the dead letter; `Ok` only once the stream has acknowledged it.
    pub(crate) async fn send(&self, letter: DeadLetter<'_>) -> anyhow::Result<()> {
        let msg = letter.message;
        let mut map = HeaderMap::new();
        for (name, value) in &msg.headers {
            if letter.trace.is_none() || !name.eq_ignore_ascii_case("traceparent") {
                insert(&mut map, name, value);
            }
        }
        if let Some(trace) = letter.trace {
            insert(&mut map, "traceparent", &trace.traceparent());
        }
        insert(&mut map, headers::SUBJECT, &msg.subject);
        insert(&mut map, headers::ROUTE, letter.route);
        insert(&mut map, headers::PLUGIN, &letter.plugin.spec.name);
        insert(&mut map, headers::PLUGIN_HASH, &letter.plugin.hash);
        insert(&mut map, headers::REASON, letter.reason);
        insert(&mut map, headers::DELIVERIES, &msg.attempt.to_string());
        if msg.reply.is_some() {
            insert(&mut map, headers::REQUEST, "true");
        }
        if let Some(delivery) = &msg.delivery {
            insert(&mut map, headers::STREAM, &delivery.stream);
            insert(&mut map, headers::SEQUENCE, &delivery.stream_sequence.to_string());
        }
        let mut publish = PublishMessage::build().payload(msg.payload.clone().into()).headers(map);
        if let Some(delivery) = &msg.delivery {
            // A redelivery of the same failed message must not dead-letter it twice.
            publish = publish.message_id(format!("dlq:{}:{}", delivery.stream, delivery.stream_sequence));
        }
        let subject = format!("{}.{}", self.prefix, letter.route);
        self.js.send_publish(subject, publish).await?.await?;
        Ok(())
    }
}

/// Insert a header, cleaning what NATS headers cannot carry (line breaks) and
/// skipping what cannot be made valid, so a reason text never breaks the letter.
pub(crate) fn insert(map: &mut HeaderMap, name: &str, value: &str) {
    let clean: String = value.chars().map(|c| if c.is_control() { ' ' } else { c }).take(1024).collect();
    if let (Ok(name), Ok(value)) = (async_nats::HeaderName::from_str(name), async_nats::HeaderValue::from_str(&clean)) {
        map.append(name, value);
    }
}
