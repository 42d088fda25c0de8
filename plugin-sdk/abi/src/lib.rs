//! Wire types of the Switchyard plugin ABI (v1), shared by the host and the SDK.
//!
//! Everything that crosses the wasm boundary is defined here once and encoded as
//! MessagePack with named fields (`rmp_serde::to_vec_named`), so a plugin written in
//! any language can produce and read it. Payload bytes are MessagePack `bin`
//! (via `serde_bytes`), never an array of integers. `docs/ABI.md` is the prose
//! version of this file.

use serde::{Deserialize, Serialize};

pub mod batch;
mod bounded;
pub mod kv;
pub mod subject;

/// The ABI version this crate describes. A module whose `switchyard_abi_version`
/// export returns anything else is refused by the host.
pub const ABI_VERSION: u32 = 1;

/// Name of the import module that holds the host functions.
pub const IMPORT_MODULE: &str = "switchyard";

/// Export and import names, in one place so host and SDK cannot drift apart; their
/// signatures are in [`functions`].
pub mod names {
    /// `() -> i32`: the ABI version the module was built against.
    pub const ABI_VERSION: &str = "switchyard_abi_version";
    /// `(len: i32) -> i32`: allocate `len` bytes in guest memory, return the pointer.
    pub const ALLOC: &str = "switchyard_alloc";
    /// `(ptr: i32, len: i32)`: free a buffer returned by `switchyard_alloc`.
    pub const FREE: &str = "switchyard_free";
    /// `(ptr: i32, len: i32) -> i64`: optional; configure the plugin; 0 = accepted,
    /// otherwise a packed ptr/len of a UTF-8 refusal message.
    pub const INIT: &str = "switchyard_init";
    /// `(ptr: i32, len: i32) -> i64`: handle one encoded [`crate::Message`]; returns a
    /// packed ptr/len of an encoded [`crate::Outcome`].
    pub const HANDLE: &str = "switchyard_handle";
    /// `() -> i32`: optional; the [`crate::features`] the module understands.
    pub const FEATURES: &str = "switchyard_abi_features";
    /// `(ptr: i32, len: i32) -> i64`: optional ([`crate::features::BATCH`]); handle a
    /// MessagePack array of messages; returns a packed ptr/len of an array of outcomes.
    pub const HANDLE_BATCH: &str = "switchyard_handle_batch";
    /// Host import `(index: i32) -> i32`: during `switchyard_handle_batch`, the guest
    /// now handles message `index` (0, 1, 2 … in order).
    pub const BEGIN_MESSAGE: &str = "begin_message";
    /// Host import `(ptr: i32, len: i32) -> i32`: buffer one encoded [`crate::Publish`].
    pub const PUBLISH: &str = "publish";
    /// Host import `(level: i32, ptr: i32, len: i32) -> i32`: log a UTF-8 line.
    pub const LOG: &str = "log";
    /// Host import `(bucket_ptr, bucket_len, key_ptr, key_len) -> i64`: read a key; the length of
    /// an encoded [`crate::KvEntry`] to fetch with `take_result`, or a negative status.
    pub const KV_GET: &str = "kv_get";
    /// Host import `(bucket…, key…, value_ptr, value_len) -> i64`: write a key; its new revision.
    pub const KV_PUT: &str = "kv_put";
    /// Host import, as `kv_put`, only when the key has no value: else `status::CONFLICT`.
    pub const KV_CREATE: &str = "kv_create";
    /// Host import `(bucket…, key…, value…, revision: i64) -> i64`: write a key only if its
    /// revision is still `revision` (compare and set): else `status::CONFLICT`.
    pub const KV_UPDATE: &str = "kv_update";
    /// Host import `(bucket…, key…) -> i64`: delete a key; 0.
    pub const KV_DELETE: &str = "kv_delete";
    /// Host import `(bucket…, prefix…) -> i64`: the length of an encoded array of the keys that
    /// start with the prefix (sorted, at most [`crate::MAX_KV_KEYS`]), to fetch with `take_result`.
    pub const KV_KEYS: &str = "kv_keys";
    /// Host import `(ptr: i32, len: i32) -> i64`: send an encoded [`crate::Request`] and wait for
    /// its reply; the length of an encoded [`crate::Reply`] to fetch with `take_result`.
    pub const REQUEST: &str = "request";
    /// Host import `(ptr: i32, len: i32) -> i32`: copy the result of the last call that left one
    /// (`len` must be its length) into guest memory.
    pub const TAKE_RESULT: &str = "take_result";
    /// The exported linear memory the host reads and writes.
    pub const MEMORY: &str = "memory";
}

/// The ABI's functions as data: name and wasm signature of every export and import. The
/// host's loader checks modules against this table and the SDK's macros generate the exports
/// and import declarations from it, so a signature is written once, here (and, in prose, in
/// `docs/ABI.md`).
pub mod functions {
    use super::names;

    /// A wasm value type of an ABI signature (the ABI uses no others).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ValType {
        I32,
        I64,
    }

    use ValType::{I32, I64};

    /// One function of the ABI.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Function {
        pub name: &'static str,
        pub params: &'static [ValType],
        pub results: &'static [ValType],
        /// For an export: the host refuses a module without it. Imports are never required: a
        /// module imports only what it uses.
        pub required: bool,
    }

    pub const ABI_VERSION: Function = Function { name: names::ABI_VERSION, params: &[], results: &[I32], required: true };
    pub const ALLOC: Function = Function { name: names::ALLOC, params: &[I32], results: &[I32], required: true };
    pub const FREE: Function = Function { name: names::FREE, params: &[I32, I32], results: &[], required: false };
    pub const HANDLE: Function = Function { name: names::HANDLE, params: &[I32, I32], results: &[I64], required: true };
    pub const INIT: Function = Function { name: names::INIT, params: &[I32, I32], results: &[I64], required: false };
    pub const FEATURES: Function = Function { name: names::FEATURES, params: &[], results: &[I32], required: false };
    pub const HANDLE_BATCH: Function = Function { name: names::HANDLE_BATCH, params: &[I32, I32], results: &[I64], required: false };
    pub const PUBLISH: Function = Function { name: names::PUBLISH, params: &[I32, I32], results: &[I32], required: false };
    pub const LOG: Function = Function { name: names::LOG, params: &[I32, I32, I32], results: &[I32], required: false };
    pub const BEGIN_MESSAGE: Function = Function { name: names::BEGIN_MESSAGE, params: &[I32], results: &[I32], required: false };
    pub const KV_GET: Function = Function { name: names::KV_GET, params: &[I32, I32, I32, I32], results: &[I64], required: false };
    pub const KV_PUT: Function =
        Function { name: names::KV_PUT, params: &[I32, I32, I32, I32, I32, I32], results: &[I64], required: false };
    pub const KV_CREATE: Function =
        Function { name: names::KV_CREATE, params: &[I32, I32, I32, I32, I32, I32], results: &[I64], required: false };
    pub const KV_UPDATE: Function =
        Function { name: names::KV_UPDATE, params: &[I32, I32, I32, I32, I32, I32, I64], results: &[I64], required: false };
    pub const KV_DELETE: Function = Function { name: names::KV_DELETE, params: &[I32, I32, I32, I32], results: &[I64], required: false };
    pub const KV_KEYS: Function = Function { name: names::KV_KEYS, params: &[I32, I32, I32, I32], results: &[I64], required: false };
    pub const REQUEST: Function = Function { name: names::REQUEST, params: &[I32, I32], results: &[I64], required: false };
    pub const TAKE_RESULT: Function = Function { name: names::TAKE_RESULT, params: &[I32, I32], results: &[I32], required: false };

    /// What a module exports (besides `memory`), in the order `docs/ABI.md` lists them.
    pub const EXPORTS: [Function; 7] = [ABI_VERSION, ALLOC, FREE, HANDLE, INIT, FEATURES, HANDLE_BATCH];
    /// The host functions of module [`crate::IMPORT_MODULE`].
    pub const IMPORTS: [Function; 11] =
        [PUBLISH, LOG, BEGIN_MESSAGE, KV_GET, KV_PUT, KV_CREATE, KV_UPDATE, KV_DELETE, KV_KEYS, REQUEST, TAKE_RESULT];
}

/// Optional ABI features, bits of what `switchyard_abi_features` returns. A
/// module without that export gets none of them; unknown bits are ignored.
pub mod features {
    /// The module decodes a [`crate::Message`] (and its `delivery`) given as
    /// MessagePack *arrays* in field order instead of maps with named keys, as
    /// serde-derived decoders do: the guest then skips decoding and checking
    /// every field name on every message.
    pub const POSITIONAL_MESSAGE: u32 = 1;
    /// The module exports `switchyard_handle_batch`: the host may hand it several
    /// messages in one call (those it already holds; it never waits to fill a
    /// batch). See `docs/ABI.md`.
    pub const BATCH: u32 = 2;
}

/// What `kv_get` leaves for `take_result`: a key's value and its revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub revision: u64,
}

/// The most keys `kv_keys` returns.
pub const MAX_KV_KEYS: usize = 1000;

/// Encode a message for a module, positionally if it said it decodes that.
pub fn encode_message_into(buf: &mut Vec<u8>, msg: &Message, positional: bool) -> Result<(), rmp_serde::encode::Error> {
    if positional { rmp_serde::encode::write(buf, msg) } else { rmp_serde::encode::write_named(buf, msg) }
}

/// Codes returned by host functions. Zero is success; every failure is negative so a
/// guest can test `rc < 0`.
pub mod status {
    pub const OK: i32 = 0;
    /// A pointer/length pair falls outside the guest's memory.
    pub const OUT_OF_BOUNDS: i32 = -1;
    /// The bytes did not decode (bad MessagePack, bad UTF-8).
    pub const BAD_ENCODING: i32 = -2;
    /// The subject is not on the plugin's publish allow-list.
    pub const NOT_ALLOWED: i32 = -3;
    /// Too many publishes or too many bytes buffered during one call.
    pub const LIMIT_EXCEEDED: i32 = -4;
    /// The subject is not a valid NATS publish subject (empty, wildcard, whitespace).
    pub const INVALID_SUBJECT: i32 = -5;
    /// The host function is not available in this context (e.g. publish during init).
    pub const UNAVAILABLE: i32 = -6;
    /// An unknown log level.
    pub const BAD_ARGUMENT: i32 = -7;
    /// The publish (headers and payload as NATS counts them) is larger than the
    /// server's `max_payload`: no server would take it.
    pub const TOO_LARGE: i32 = -8;
    /// A header name or value NATS cannot carry (see [`crate::header`]).
    pub const INVALID_HEADER: i32 = -9;
    /// The key has no value.
    pub const NOT_FOUND: i32 = -10;
    /// `kv_create` of a key that has a value, or `kv_update` with a revision that is no longer the
    /// key's: someone else wrote it first.
    pub const CONFLICT: i32 = -11;
    /// The key-value store did not answer (its server down, a timeout): try again later.
    pub const STORE_UNAVAILABLE: i32 = -12;
    /// A request found nobody subscribed to its subject.
    pub const NO_RESPONDERS: i32 = -13;
    /// A request got no reply within its timeout (or before the call's own deadline).
    pub const TIMED_OUT: i32 = -14;

    /// A short human name for a status code, for error messages on both sides.
    pub fn describe(code: i32) -> &'static str {
        match code {
            OK => "ok",
            OUT_OF_BOUNDS => "pointer or length out of bounds",
            BAD_ENCODING => "bytes did not decode",
            NOT_ALLOWED => "subject not on the publish allow-list",
            LIMIT_EXCEEDED => "publish limit exceeded",
            INVALID_SUBJECT => "invalid subject",
            UNAVAILABLE => "not available here",
            BAD_ARGUMENT => "bad argument",
            TOO_LARGE => "larger than the server's max_payload",
            INVALID_HEADER => "invalid header name or value",
            NOT_FOUND => "no such key",
            CONFLICT => "the key was written by someone else first",
            STORE_UNAVAILABLE => "the key-value store is unavailable",
            NO_RESPONDERS => "no responders",
            TIMED_OUT => "timed out",
            _ => "unknown status",
        }
    }
}

/// Log levels accepted by the `log` import.
pub mod level {
    pub const ERROR: i32 = 1;
    pub const WARN: i32 = 2;
    pub const INFO: i32 = 3;
    pub const DEBUG: i32 = 4;
    pub const TRACE: i32 = 5;
}

/// A NATS header: name and value. A name may appear more than once.
pub type Header = (String, String);

/// What NATS can carry in a header, and how many bytes a message counts against
/// the server's `max_payload`. The host checks publishes with these when the
/// plugin makes them, and the SDK's mock host applies the same rules.
pub mod header {
    use crate::Header;

    /// The header a JetStream stream deduplicates on.
    pub const MSG_ID: &str = "Nats-Msg-Id";

    /// Why `name` cannot be a header name, or `None` when it can. Names travel
    /// as `name: value` lines, so a colon, a space or a control character
    /// would end or split the line; async-nats refuses the same set.
    pub fn name_problem(name: &str) -> Option<&'static str> {
        if name.is_empty() {
            return Some("a header name must not be empty");
        }
        if name.chars().any(|c| !c.is_ascii_graphic() || c == ':') {
            return Some("a header name may hold only printable ascii characters other than `:`");
        }
        None
    }

    /// Why `value` cannot be a header value, or `None` when it can. CR and LF
    /// would end the header line (and could smuggle in a protocol line); NUL
    /// is the third character RFC 9110 calls invalid in a field value.
    pub fn value_problem(value: &str) -> Option<&'static str> {
        value.contains(['\r', '\n', '\0']).then_some("a header value must not contain cr, lf or nul")
    }

    /// The first header NATS cannot carry, described for an error message.
    pub fn problem(headers: &[Header]) -> Option<String> {
        headers.iter().find_map(|(name, value)| {
            if let Some(why) = name_problem(name) {
                return Some(format!("invalid header name {name:?}: {why}"));
            }
            value_problem(value).map(|why| format!("invalid value for header `{name}`: {why}"))
        })
    }

    /// The bytes NATS counts against `max_payload` for a message with these
    /// headers and a payload of `payload_len` bytes: without headers the
    /// payload alone (a plain `PUB`), with them the `NATS/1.0` header block
    /// too (an `HPUB`, whose total size the server checks).
    pub fn wire_size(headers: &[Header], payload_len: usize) -> usize {
        if headers.is_empty() {
            return payload_len;
        }
        let lines: usize = headers.iter().map(|(name, value)| name.len() + value.len() + ": \r\n".len()).sum();
        "NATS/1.0\r\n".len() + lines + "\r\n".len() + payload_len
    }
}

/// One message handed to `switchyard_handle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub subject: String,
    #[serde(default)]
    pub reply: Option<String>,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(with = "serde_bytes", default)]
    pub payload: Vec<u8>,
    /// 1 on the first attempt, 2 on the first retry, … For JetStream this is the
    /// server's delivery count; for core NATS it counts the host's in-process retries.
    #[serde(default = "first_attempt")]
    pub attempt: u64,
    /// Present for JetStream deliveries, absent for core NATS.
    #[serde(default)]
    pub delivery: Option<Delivery>,
}

fn first_attempt() -> u64 {
    1
}

impl Default for Message {
    fn default() -> Self {
        Self { subject: String::new(), reply: None, headers: Vec::new(), payload: Vec::new(), attempt: 1, delivery: None }
    }
}

/// JetStream delivery facts, so handlers can be idempotent on redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Delivery {
    /// The maximum number of deliveries the consumer allows (-1 when unbounded).
    pub max_deliver: i64,
    pub stream: String,
    pub consumer: String,
    pub stream_sequence: u64,
    /// Publish time of the message in the stream, Unix nanoseconds. On the wire a plain
    /// MessagePack integer (see [`nanos_as_int`]).
    #[serde(serialize_with = "nanos_as_int::serialize")]
    pub timestamp_unix_nanos: i128,
}

/// rmp-serde writes an `i128` as a 16-byte `bin`, which no other MessagePack library reads as
/// a number. Every timestamp until the year 2262 fits an `i64`, so write that; decoding
/// accepts both forms.
mod nanos_as_int {
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(nanos: &i128, serializer: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(*nanos) {
            Ok(small) => serializer.serialize_i64(small),
            Err(_) => serializer.serialize_i128(*nanos),
        }
    }
}

/// What the handler decided about a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Done: acknowledge; buffered publishes are sent.
    Ack,
    /// Try again later; buffered publishes are dropped. `delay_ms` overrides the
    /// route's backoff schedule for this attempt.
    Retry {
        #[serde(default)]
        delay_ms: Option<u64>,
        #[serde(default)]
        reason: String,
    },
    /// Never going to work: dead-letter now; buffered publishes are dropped.
    Reject {
        #[serde(default)]
        reason: String,
    },
    /// Answer the request (like Ack, plus a reply to the message's reply subject).
    Reply {
        #[serde(with = "serde_bytes", default)]
        payload: Vec<u8>,
        #[serde(default)]
        headers: Vec<Header>,
    },
}

/// A message the handler asks the host to publish once the outcome is Ack or Reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Publish {
    pub subject: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(with = "serde_bytes", default)]
    pub payload: Vec<u8>,
}

/// A request the handler sends through the host (`request` import), waiting for its reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Request {
    pub subject: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(with = "serde_bytes", default)]
    pub payload: Vec<u8>,
    /// How long to wait for the reply; 0 = until the call's deadline. Never past it.
    #[serde(default)]
    pub timeout_ms: u64,
}

/// The reply to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(with = "serde_bytes", default)]
    pub payload: Vec<u8>,
}

/// Encode a wire value the way the ABI requires (MessagePack, named fields).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

/// Deepest nesting of arrays and maps that [`decode`] accepts (the wire types nest
/// three deep: a map, its headers, a pair). Decoding recurses once per level, a few
/// KiB of stack each in a debug build: without a limit, bytes from the other side
/// of the boundary could overflow the decoding thread's stack and abort the process.
pub const MAX_DEPTH: usize = 32;

/// Decode a wire value. The bytes may come from the other side of the boundary and
/// be hostile: what they cost to decode is bounded by their length (see
/// [`MAX_DEPTH`] and `bounded::check_claims`).
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, rmp_serde::decode::Error> {
    bounded::check_claims(bytes)?;
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
    deserializer.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut deserializer)
}

/// Pack a guest pointer and length into the `i64` that `handle` and `init` return.
pub fn pack(ptr: u32, len: u32) -> u64 {
    (u64::from(ptr) << 32) | u64::from(len)
}

/// Split a packed `i64` into (pointer, length).
pub fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_round_trips_with_binary_payload() {
        let out = Outcome::Reply { payload: vec![1, 2, 3], headers: vec![("a".into(), "b".into())] };
        let bytes = encode(&out).expect("encode");
        // 0xc4 is MessagePack bin8: the payload must not be encoded as an int array.
        assert!(bytes.windows(2).any(|w| w == [0xc4, 3]), "payload not bin: {bytes:02x?}");
        assert_eq!(decode::<Outcome>(&bytes).expect("decode"), out);
    }

    #[test]
    fn unit_variant_is_a_tagged_map() {
        let bytes = encode(&Outcome::Ack).expect("encode");
        let value: Outcome = decode(&bytes).expect("decode");
        assert_eq!(value, Outcome::Ack);
        // {"kind": "ack"}: one-entry map (0x81)
        assert_eq!(bytes[0], 0x81);
    }

    #[test]
    fn timestamp_is_a_plain_integer_on_the_wire() {
        let delivery = Delivery { timestamp_unix_nanos: 1_700_000_000_123_456_789, ..Delivery::default() };
        let bytes = encode(&delivery).expect("encode");
        // 0xcf is MessagePack uint64, the smallest form of this positive value (an i128 would be
        // a 16-byte bin, 0xc4 0x10).
        let at = bytes.iter().position(|&b| b == 0xcf).expect("uint64 marker");
        assert_eq!(bytes[at + 1..at + 9], 1_700_000_000_123_456_789_u64.to_be_bytes());
        let negative = Delivery { timestamp_unix_nanos: -5, ..Delivery::default() };
        assert_eq!(decode::<Delivery>(&encode(&negative).expect("encode")).expect("decode"), negative);
        assert_eq!(decode::<Delivery>(&bytes).expect("decode"), delivery);
    }

    #[test]
    fn a_positional_message_decodes_like_a_named_one() {
        let msg = Message {
            subject: "orders.created".into(),
            reply: Some("_INBOX.1".into()),
            headers: vec![("k".into(), "v".into())],
            payload: b"x".to_vec(),
            attempt: 2,
            delivery: Some(Delivery {
                max_deliver: 5,
                stream: "S".into(),
                consumer: "c".into(),
                stream_sequence: 9,
                timestamp_unix_nanos: 7,
            }),
        };
        let mut positional = Vec::new();
        encode_message_into(&mut positional, &msg, true).expect("encode");
        assert_eq!(positional[0], 0x96, "an array of six fields");
        assert_eq!(decode::<Message>(&positional).expect("decode"), msg);
        let mut named = Vec::new();
        encode_message_into(&mut named, &msg, false).expect("encode");
        assert_eq!(named, encode(&msg).expect("encode"));
    }

    #[test]
    fn header_names_nats_cannot_carry_are_refused() {
        for good in ["content-type", "Nats-Msg-Id", "x_y.z~!"] {
            assert_eq!(header::name_problem(good), None, "{good}");
        }
        for bad in ["", "bad name", "a:b", "tab\there", "new\nline", "caf\u{e9}", "del\u{7f}"] {
            assert!(header::name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn header_values_with_line_breaks_or_nul_are_refused() {
        for good in ["", "a b", "tab\tok", "caf\u{e9}", "x:y"] {
            assert_eq!(header::value_problem(good), None, "{good:?}");
        }
        for bad in ["a\r\nPUB x 0", "cr\r", "lf\n", "nul\0"] {
            assert!(header::value_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn the_first_bad_header_is_named() {
        let headers: Vec<Header> =
            [("ok", "v"), ("k", "a\r\nb"), ("bad name", "v")].iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        assert_eq!(header::problem(&headers[..1]), None);
        assert_eq!(
            header::problem(&headers).as_deref(),
            Some("invalid value for header `k`: a header value must not contain cr, lf or nul")
        );
        assert_eq!(
            header::problem(&headers[2..]).as_deref(),
            Some("invalid header name \"bad name\": a header name may hold only printable ascii characters other than `:`")
        );
    }

    #[test]
    fn wire_size_counts_what_nats_counts() {
        assert_eq!(header::wire_size(&[], 5), 5, "a plain PUB: the payload alone");
        // "NATS/1.0\r\n" + "k: v\r\n" + "ab: c\r\n" + "\r\n" + payload
        let headers = vec![("k".to_owned(), "v".to_owned()), ("ab".to_owned(), "c".to_owned())];
        assert_eq!(header::wire_size(&headers, 5), 10 + 6 + 7 + 2 + 5);
    }

    #[test]
    fn the_function_table_names_every_export_and_import_once() {
        let exports: Vec<_> = functions::EXPORTS.iter().map(|f| f.name).collect();
        assert_eq!(
            exports,
            [names::ABI_VERSION, names::ALLOC, names::FREE, names::HANDLE, names::INIT, names::FEATURES, names::HANDLE_BATCH]
        );
        let imports: Vec<_> = functions::IMPORTS.iter().map(|f| f.name).collect();
        assert_eq!(&imports[..3], [names::PUBLISH, names::LOG, names::BEGIN_MESSAGE]);
        assert!(functions::IMPORTS.iter().all(|f| !f.required), "a module imports only what it uses");
        // The pointer/length pairs and the packed i64 results described in ABI.md.
        assert_eq!((functions::HANDLE.params.len(), functions::HANDLE.results), (2, &[functions::ValType::I64][..]));
    }

    #[test]
    fn pack_unpack() {
        assert_eq!(unpack(pack(0xdead_beef, 7)), (0xdead_beef, 7));
    }

    #[test]
    fn message_defaults_allow_minimal_encoding() {
        #[derive(Serialize)]
        struct Minimal<'a> {
            subject: &'a str,
        }
        let bytes = encode(&Minimal { subject: "a.b" }).expect("encode");
        let msg: Message = decode(&bytes).expect("decode");
        assert_eq!(msg.subject, "a.b");
        assert!(msg.payload.is_empty() && msg.delivery.is_none());
    }
}
