//! Conversions between async-nats messages and the ABI's wire types.

use std::str::FromStr;

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use switchyard_abi::{Delivery, Header, Message};

/// A core NATS message as the plugin sees it.
pub fn from_core(msg: &async_nats::Message) -> Message {
    Message {
        // `as_str`, not `to_string`: the latter goes through the formatter.
        subject: msg.subject.as_str().to_owned(),
        reply: msg.reply.as_ref().map(|r| r.as_str().to_owned()),
        headers: msg.headers.as_ref().map(headers_of).unwrap_or_default(),
        payload: msg.payload.to_vec(),
        attempt: 1,
        delivery: None,
    }
}

/// A JetStream message as the plugin sees it. The NATS reply subject of a
/// JetStream delivery is the ack subject, so it is not passed on.
pub fn from_jetstream(msg: &async_nats::jetstream::Message, max_deliver: i64) -> Message {
    let (attempt, delivery) = match msg.info() {
        Ok(info) => (
            u64::try_from(info.delivered).unwrap_or(1),
            Some(Delivery {
                max_deliver,
                stream: info.stream.to_owned(),
                consumer: info.consumer.to_owned(),
                stream_sequence: info.stream_sequence,
                timestamp_unix_nanos: info.published.unix_timestamp_nanos(),
            }),
        ),
        Err(_) => (1, None),
    };
    Message {
        subject: msg.subject.as_str().to_owned(),
        reply: None,
        headers: msg.headers.as_ref().map(headers_of).unwrap_or_default(),
        payload: msg.payload.to_vec(),
        attempt,
        delivery,
    }
}

/// Headers as the plugin sees them, in a stable order.
pub(crate) fn headers_of(map: &HeaderMap) -> Vec<Header> {
    let mut headers: Vec<Header> =
        map.iter().flat_map(|(name, values)| values.iter().map(move |v| (name.to_string(), v.to_string()))).collect();
    // HeaderMap iterates in hash order; sort so plugins see a stable order.
    headers.sort();
    headers
}

/// Headers from a plugin, checked: a name or value NATS cannot carry is an error
/// naming it, never a panic.
pub(crate) fn header_map(headers: &[Header]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_str(name).map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header `{name}`"))?;
        map.append(name, value);
    }
    Ok(map)
}
