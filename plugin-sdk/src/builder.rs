//! [`MessageBuilder`]: concise construction of a [`Message`] for tests.

use serde::Serialize;
use switchyard_abi::{Delivery, Message};

/// Builds a [`Message`]; start with `Message::builder(subject)` (from [`crate::MessageExt`]).
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the message"]
pub struct MessageBuilder {
    msg: Message,
}

impl MessageBuilder {
    pub fn new(subject: impl Into<String>) -> Self {
        Self { msg: Message { subject: subject.into(), ..Message::default() } }
    }

    /// Raw payload bytes.
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.msg.payload = payload.into();
        self
    }

    /// A UTF-8 payload.
    pub fn text(self, text: &str) -> Self {
        self.payload(text.as_bytes())
    }

    /// A JSON payload.
    ///
    /// # Panics
    /// When `value` cannot be written as JSON (a map with non-string keys, a failing
    /// `Serialize` impl): a test's input is wrong, so failing loudly is the useful outcome.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.payload(bytes),
            Err(e) => panic!("message builder: value does not encode as json: {e}"),
        }
    }

    /// A MessagePack payload (named fields).
    ///
    /// # Panics
    /// When `value` cannot be written as MessagePack.
    pub fn msgpack<T: Serialize + ?Sized>(self, value: &T) -> Self {
        match rmp_serde::to_vec_named(value) {
            Ok(bytes) => self.payload(bytes),
            Err(e) => panic!("message builder: value does not encode as messagepack: {e}"),
        }
    }

    /// Append a header (names may repeat).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.msg.headers.push((name.into(), value.into()));
        self
    }

    /// Set the reply subject, making the message a request.
    pub fn reply(mut self, inbox: impl Into<String>) -> Self {
        self.msg.reply = Some(inbox.into());
        self
    }

    /// Set the delivery attempt (1 = first delivery).
    pub fn attempt(mut self, attempt: u64) -> Self {
        self.msg.attempt = attempt;
        self
    }

    /// Mark the message as a JetStream delivery with full delivery facts.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.msg.delivery = Some(delivery);
        self
    }

    /// Mark the message as a JetStream delivery of `stream` at `sequence` (other facts defaulted).
    pub fn jetstream(self, stream: impl Into<String>, sequence: u64) -> Self {
        self.delivery(Delivery {
            max_deliver: -1,
            stream: stream.into(),
            consumer: "mock".to_owned(),
            stream_sequence: sequence,
            timestamp_unix_nanos: 0,
        })
    }

    pub fn build(self) -> Message {
        self.msg
    }
}

#[cfg(test)]
mod tests {
    use crate::MessageExt;
    use switchyard_abi::Message;

    #[test]
    fn builds_every_field() {
        let msg = Message::builder("orders.new").text("x").header("k", "v").reply("_INBOX.1").attempt(3).jetstream("ORDERS", 42).build();
        assert_eq!(msg.subject, "orders.new");
        assert_eq!(msg.payload, b"x");
        assert_eq!(msg.headers, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(msg.reply.as_deref(), Some("_INBOX.1"));
        assert_eq!(msg.attempt, 3);
        let delivery = msg.delivery.expect("jetstream");
        assert_eq!((delivery.stream.as_str(), delivery.stream_sequence), ("ORDERS", 42));
        assert_eq!(Message::builder("a").build().attempt, 1, "first attempt by default");
    }
}
