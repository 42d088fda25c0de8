//! Typed access to a [`Message`]: payload as JSON, MessagePack or text, headers by name.

use serde::Deserialize;
use switchyard_abi::Message;

use crate::MessageBuilder;

/// Why a payload could not be read or written in the requested format.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not valid json: {0}")]
    Json(serde_json::Error),
    /// Valid JSON, but not of the type asked for (a missing field, a string
    /// where a number belongs).
    #[error("payload does not match the expected shape: {0}")]
    JsonShape(serde_json::Error),
    #[error("payload is not valid messagepack: {0}")]
    MsgPack(rmp_serde::decode::Error),
    #[error("payload is not utf-8: {0}")]
    Utf8(std::str::Utf8Error),
    #[error("value does not encode as json: {0}")]
    EncodeJson(serde_json::Error),
    #[error("value does not encode as messagepack: {0}")]
    EncodeMsgPack(rmp_serde::encode::Error),
}

/// Helpers on [`Message`] (the type lives in the ABI crate, so they come as a trait; it is in
/// the prelude).
pub trait MessageExt: sealed::Sealed {
    /// Start building a message, for tests: `Message::builder("orders.new").json(&v).build()`.
    fn builder(subject: impl Into<String>) -> MessageBuilder;

    /// The payload parsed as JSON.
    fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, PayloadError>;

    /// The payload parsed as MessagePack.
    fn msgpack<'a, T: Deserialize<'a>>(&'a self) -> Result<T, PayloadError>;

    /// The payload as UTF-8 text.
    fn text(&self) -> Result<&str, PayloadError>;

    /// The first value of header `name`, compared case-insensitively (as HTTP-style headers are).
    fn header(&self, name: &str) -> Option<&str>;

    /// Every value of header `name`, in order, compared case-insensitively.
    fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a;

    /// True when this is not the first delivery: a handler with side effects outside NATS should
    /// make them idempotent (see `delivery` for the JetStream stream sequence to key on).
    fn is_redelivery(&self) -> bool;
}

impl MessageExt for Message {
    fn builder(subject: impl Into<String>) -> MessageBuilder {
        MessageBuilder::new(subject)
    }

    fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, PayloadError> {
        serde_json::from_slice(&self.payload).map_err(|err| match err.classify() {
            serde_json::error::Category::Data => PayloadError::JsonShape(err),
            _ => PayloadError::Json(err),
        })
    }

    fn msgpack<'a, T: Deserialize<'a>>(&'a self) -> Result<T, PayloadError> {
        rmp_serde::from_slice(&self.payload).map_err(PayloadError::MsgPack)
    }

    fn text(&self) -> Result<&str, PayloadError> {
        std::str::from_utf8(&self.payload).map_err(PayloadError::Utf8)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn is_redelivery(&self) -> bool {
        self.attempt > 1
    }
}

pub(crate) mod sealed {
    /// The extension traits are for the ABI types only, so new methods are not breaking changes.
    pub trait Sealed {}
    impl Sealed for switchyard_abi::Message {}
    impl Sealed for switchyard_abi::Outcome {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn payload_helpers() {
        let msg = Message::builder("a").json(&json!({"n": 1})).build();
        assert_eq!(msg.json::<Value>().expect("json")["n"], 1);
        assert_eq!(msg.text().expect("utf-8"), r#"{"n":1}"#);
        let err = msg.msgpack::<Vec<u8>>().expect_err("json is not a msgpack array");
        assert!(err.to_string().starts_with("payload is not valid messagepack"), "{err}");

        let packed = Message::builder("a").msgpack(&("x", 2)).build();
        assert_eq!(packed.msgpack::<(String, u8)>().expect("msgpack"), ("x".to_owned(), 2));

        let binary = Message::builder("a").payload(vec![0xff, 0xfe]).build();
        assert!(binary.text().expect_err("not utf-8").to_string().starts_with("payload is not utf-8"));
        assert!(binary.json::<Value>().expect_err("not json").to_string().starts_with("payload is not valid json"));
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Price {
            amount: u64,
            currency: String,
        }
        let wrong = Message::builder("s").text(r#"{"amount": 5}"#).build();
        let err = wrong.json::<Price>().expect_err("no currency").to_string();
        assert!(err.starts_with("payload does not match the expected shape: missing field `currency`"), "{err}");
    }

    #[test]
    fn borrowed_json_fields() {
        #[derive(serde::Deserialize)]
        struct Borrowed<'a> {
            name: &'a str,
        }
        let msg = Message::builder("a").text(r#"{"name":"ada"}"#).build();
        assert_eq!(msg.json::<Borrowed<'_>>().expect("json").name, "ada");
    }

    #[test]
    fn headers_are_case_insensitive_and_repeatable() {
        let msg = Message::builder("a").header("Trace-Id", "1").header("x", "a").header("TRACE-ID", "2").build();
        assert_eq!(msg.header("trace-id"), Some("1"));
        assert_eq!(msg.headers_all("Trace-ID").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(msg.header("absent"), None);
        assert!(!msg.is_redelivery());
        assert!(Message::builder("a").attempt(2).build().is_redelivery());
    }
}
