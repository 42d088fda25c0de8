//! The ABI's decoder, fuzzed: random bytes, random MessagePack shaped like the
//! wire types, and mutations of valid encodings, decoded as every wire type.
//! Nothing panics, every failure has a message, and decoding costs time and
//! memory bounded by the input's length; every valid value survives a round trip.
//!
//! `SWITCHYARD_FUZZ_CASES` sets the number of cases (a small default keeps
//! `make test` quick; `make fuzz` runs many, in release mode). The memory bound
//! is enforced by the allocator: a decode that allocates past its budget aborts
//! this test binary with "memory allocation of N bytes failed".

use std::alloc::System;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cap::Cap;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use switchyard_abi::{Delivery, Header, MAX_DEPTH, Message, Outcome, Publish, decode, encode, encode_message_into};

/// Counts every allocation, so a decode can be held to a budget.
#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Cases per property when `SWITCHYARD_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 256;

/// The longest a decode of one (at most a few KiB) input may take, debug build
/// on a busy machine included: the real cost is microseconds.
const TIME_LIMIT: Duration = Duration::from_secs(2);

fn config() -> Config {
    let cases = std::env::var("SWITCHYARD_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_CASES);
    // Failures are reported with their shrunk input; regressions are kept as tests below.
    Config { failure_persistence: None, ..Config::with_cases(cases) }
}

/// The tests of this binary one at a time: a budget is a limit on the whole
/// process's heap, so nothing else may allocate much while one is set.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Heap a decode of `len` bytes may use: what the decoded value and serde's
/// buffering need (tens of bytes per input byte), and room for the test harness.
fn budget(len: usize) -> usize {
    128 * len + (1 << 20)
}

/// Run `decode` with the heap limited to [`budget`] more bytes than are in use.
fn within_budget<R>(len: usize, decode: impl FnOnce() -> R) -> R {
    HEAP.set_limit(HEAP.allocated() + budget(len)).expect("a limit above what is allocated");
    let result = decode();
    HEAP.set_limit(usize::MAX).expect("no limit");
    result
}

/// Decode `bytes` as `T` within the time and memory bounds. A value that
/// decodes must encode and decode back to itself; a failure must say why.
fn decodes_sanely<T>(bytes: &[u8]) -> Result<Option<T>, TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let started = Instant::now();
    let result = within_budget(bytes.len(), || decode::<T>(bytes));
    let took = started.elapsed();
    prop_assert!(took < TIME_LIMIT, "decoding {} bytes took {took:?}", bytes.len());
    match result {
        Ok(value) => {
            let again = encode(&value).map_err(|err| TestCaseError::fail(format!("{value:?} does not encode: {err}")))?;
            let back = decode::<T>(&again).map_err(|err| TestCaseError::fail(format!("{value:?} does not decode back: {err}")))?;
            prop_assert_eq!(&back, &value);
            Ok(Some(value))
        }
        Err(err) => {
            prop_assert!(!err.to_string().trim().is_empty(), "an error without a message: {err:?}");
            Ok(None)
        }
    }
}

/// Every wire type, and the positional form of a message.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    decodes_sanely::<Outcome>(bytes)?;
    decodes_sanely::<Publish>(bytes)?;
    decodes_sanely::<Delivery>(bytes)?;
    if let Some(msg) = decodes_sanely::<Message>(bytes)? {
        let mut positional = Vec::new();
        encode_message_into(&mut positional, &msg, true).map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(decode::<Message>(&positional).map_err(|err| TestCaseError::fail(err.to_string()))?, msg);
    }
    Ok(())
}

// ---- values of the wire types ----

/// Mostly plausible text, sometimes any unicode at all (control characters included).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z0-9._>*-]{0,12}", 1 => any::<String>()]
}

fn headers() -> impl Strategy<Value = Vec<Header>> {
    vec((text(), text()), 0..4)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..300)
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (any::<i64>(), text(), text(), any::<u64>(), prop_oneof![any::<i64>().prop_map(i128::from), any::<i128>()]).prop_map(
        |(max_deliver, stream, consumer, stream_sequence, timestamp_unix_nanos)| Delivery {
            max_deliver,
            stream,
            consumer,
            stream_sequence,
            timestamp_unix_nanos,
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    (text(), proptest::option::of(text()), headers(), payload(), any::<u64>(), proptest::option::of(delivery()))
        .prop_map(|(subject, reply, headers, payload, attempt, delivery)| Message { subject, reply, headers, payload, attempt, delivery })
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Ack),
        (proptest::option::of(any::<u64>()), text()).prop_map(|(delay_ms, reason)| Outcome::Retry { delay_ms, reason }),
        text().prop_map(|reason| Outcome::Reject { reason }),
        (payload(), headers()).prop_map(|(payload, headers)| Outcome::Reply { payload, headers }),
    ]
}

fn publish() -> impl Strategy<Value = Publish> {
    (text(), headers(), payload()).prop_map(|(subject, headers, payload)| Publish { subject, headers, payload })
}

/// A valid encoding of some wire value, as the host or the SDK writes it.
fn valid_encoding() -> impl Strategy<Value = Vec<u8>> {
    let encoded = |result: Result<Vec<u8>, rmp_serde::encode::Error>| result.expect("a wire value encodes");
    prop_oneof![
        outcome().prop_map(move |o| encoded(encode(&o))),
        publish().prop_map(move |p| encoded(encode(&p))),
        message().prop_map(move |m| encoded(encode(&m))),
        message().prop_map(|m| {
            let mut buf = Vec::new();
            encode_message_into(&mut buf, &m, true).expect("a message encodes");
            buf
        }),
        delivery().prop_map(move |d| encoded(encode(&d))),
    ]
}

// ---- arbitrary MessagePack ----

/// A MessagePack value, with the width of each length chosen at random.
#[derive(Debug, Clone)]
enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    F32(f32),
    F64(f64),
    Str(String, Width),
    Bin(Vec<u8>, Width),
    Ext(i8, Vec<u8>),
    Array(Vec<Value>, Width),
    Map(Vec<(Value, Value)>, Width),
    /// Bytes of any kind, in place of a value.
    Junk(Vec<u8>),
}

/// The smallest encoding of a length, or a wider one (all are valid MessagePack).
#[derive(Debug, Clone, Copy)]
enum Width {
    Smallest,
    Bits16,
    Bits32,
}

/// The names the wire types use, as keys and as `kind` values.
const NAMES: [&str; 18] = [
    "kind",
    "ack",
    "retry",
    "reject",
    "reply",
    "delay_ms",
    "reason",
    "payload",
    "headers",
    "subject",
    "attempt",
    "delivery",
    "max_deliver",
    "stream",
    "consumer",
    "stream_sequence",
    "timestamp_unix_nanos",
    "",
];

fn width() -> impl Strategy<Value = Width> {
    prop_oneof![6 => Just(Width::Smallest), 1 => Just(Width::Bits16), 1 => Just(Width::Bits32)]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![4 => proptest::sample::select(&NAMES[..]).prop_map(str::to_owned), 1 => text()]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![any::<i64>(), -40_i64..300].prop_map(Value::Int),
        any::<u64>().prop_map(Value::Uint),
        any::<f32>().prop_map(Value::F32),
        any::<f64>().prop_map(Value::F64),
        (name(), width()).prop_map(|(s, w)| Value::Str(s, w)),
        (vec(any::<u8>(), 0..40), width()).prop_map(|(b, w)| Value::Bin(b, w)),
        (any::<i8>(), vec(any::<u8>(), 0..20)).prop_map(|(t, b)| Value::Ext(t, b)),
        vec(any::<u8>(), 1..6).prop_map(Value::Junk),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            (vec(inner.clone(), 0..8), width()).prop_map(|(items, w)| Value::Array(items, w)),
            (vec((name().prop_map(|n| Value::Str(n, Width::Smallest)), inner.clone()), 0..8), width())
                .prop_map(|(entries, w)| Value::Map(entries, w)),
            (vec((inner.clone(), inner), 0..4), width()).prop_map(|(entries, w)| Value::Map(entries, w)),
        ]
    })
}

impl Value {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Nil => out.push(0xc0),
            Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Value::Int(n) => match *n {
                -32..=0x7f => out.push(*n as u8),
                _ => {
                    out.push(0xd3);
                    out.extend_from_slice(&n.to_be_bytes());
                }
            },
            Value::Uint(n) => {
                out.push(0xcf);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Value::F32(x) => {
                out.push(0xca);
                out.extend_from_slice(&x.to_be_bytes());
            }
            Value::F64(x) => {
                out.push(0xcb);
                out.extend_from_slice(&x.to_be_bytes());
            }
            Value::Str(s, w) => {
                length(out, s.len(), *w, (0xa0, 31), [0xd9, 0xda, 0xdb]);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bin(b, w) => {
                length(out, b.len(), *w, (0, 0), [0xc4, 0xc5, 0xc6]);
                out.extend_from_slice(b);
            }
            Value::Ext(ty, data) => {
                length(out, data.len(), Width::Smallest, (0, 0), [0xc7, 0xc8, 0xc9]);
                out.push(*ty as u8);
                out.extend_from_slice(data);
            }
            Value::Array(items, w) => {
                length(out, items.len(), *w, (0x90, 15), [0xdc, 0xdc, 0xdd]);
                items.iter().for_each(|item| item.encode(out));
            }
            Value::Map(entries, w) => {
                length(out, entries.len(), *w, (0x80, 15), [0xde, 0xde, 0xdf]);
                for (key, value) in entries {
                    key.encode(out);
                    value.encode(out);
                }
            }
            Value::Junk(bytes) => out.extend_from_slice(bytes),
        }
    }
}

/// A length prefix: a fix marker (`fix.0 | len` when `len <= fix.1`) or the
/// 8, 16 or 32-bit marker of `markers`.
fn length(out: &mut Vec<u8>, len: usize, width: Width, fix: (u8, usize), markers: [u8; 3]) {
    let len32 = u32::try_from(len).expect("small test values");
    match width {
        Width::Smallest if fix.0 != 0 && len <= fix.1 => out.push(fix.0 | len as u8),
        Width::Smallest if len <= 0xff && markers[0] != markers[1] => out.extend_from_slice(&[markers[0], len as u8]),
        Width::Smallest | Width::Bits16 if len <= 0xffff => {
            out.push(markers[1]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(markers[2]);
            out.extend_from_slice(&len32.to_be_bytes());
        }
    }
}

fn msgpack() -> impl Strategy<Value = Vec<u8>> {
    value().prop_map(|value| {
        let mut out = Vec::new();
        value.encode(&mut out);
        out
    })
}

// ---- mutations ----

/// Byte strings a decoder should be wary of: lengths claiming far more than
/// follows, reserved and odd markers, deep nesting.
const NASTY: [&[u8]; 12] = [
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xdc\xff\xff",
    b"\xde\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xc9\xff\xff\xff\xff\x01",
    b"\xc1",
    b"\xd8\x05",
    b"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91",
    b"\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k\x81\xa1k",
    b"\xa4kind\xa3ack",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Nasty(usize, usize),
    Remove(usize, usize),
    Truncate(usize),
    Repeat(usize, usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0_u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set(at, byte)),
        (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 0..NASTY.len()).prop_map(|(at, which)| Mutation::Nasty(at, which)),
        (any::<usize>(), 1_usize..8).prop_map(|(at, len)| Mutation::Remove(at, len)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1_usize..16, 1_u8..64).prop_map(|(at, len, times)| Mutation::Repeat(at, len, times)),
    ]
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        let at = |at: usize, len: usize| if len == 0 { 0 } else { at % len };
        let len = bytes.len();
        match self {
            Mutation::Flip(i, bit) if len > 0 => bytes[at(*i, len)] ^= 1 << bit,
            Mutation::Set(i, byte) if len > 0 => bytes[at(*i, len)] = *byte,
            Mutation::Insert(i, new) => drop(bytes.splice(at(*i, len + 1)..at(*i, len + 1), new.iter().copied())),
            Mutation::Nasty(i, which) => drop(bytes.splice(at(*i, len + 1)..at(*i, len + 1), NASTY[*which].iter().copied())),
            Mutation::Remove(i, n) if len > 0 => {
                let start = at(*i, len);
                bytes.drain(start..(start + n).min(len));
            }
            Mutation::Truncate(i) => bytes.truncate(at(*i, len + 1)),
            Mutation::Repeat(i, n, times) if len > 0 => {
                let start = at(*i, len);
                let piece = bytes[start..(start + n).min(len)].to_vec();
                let copies: Vec<u8> = piece.iter().copied().cycle().take(piece.len() * usize::from(*times)).collect();
                bytes.splice(start..start, copies);
            }
            _ => {}
        }
    }
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (prop_oneof![3 => valid_encoding(), 1 => msgpack()], vec(mutation(), 1..5)).prop_map(|(mut bytes, mutations)| {
        mutations.iter().for_each(|m| m.apply(&mut bytes));
        bytes
    })
}

// ---- the properties ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wire_values_round_trip(outcome in outcome(), publish in publish(), message in message(), delivery in delivery()) {
        let _serial = serial();
        let bytes = encode(&outcome).expect("encodes");
        prop_assert_eq!(decode::<Outcome>(&bytes).expect("decodes"), outcome);
        let bytes = encode(&publish).expect("encodes");
        prop_assert_eq!(decode::<Publish>(&bytes).expect("decodes"), publish);
        let bytes = encode(&delivery).expect("encodes");
        prop_assert_eq!(decode::<Delivery>(&bytes).expect("decodes"), delivery);
        for positional in [false, true] {
            let mut bytes = Vec::new();
            encode_message_into(&mut bytes, &message, positional).expect("encodes");
            prop_assert_eq!(&decode::<Message>(&bytes).expect("decodes"), &message);
        }
    }

    #[test]
    fn random_bytes_are_refused_sanely(bytes in vec(any::<u8>(), 0..512)) {
        let _serial = serial();
        decode_all(&bytes)?;
    }

    #[test]
    fn random_msgpack_is_decoded_or_refused_sanely(bytes in msgpack()) {
        let _serial = serial();
        decode_all(&bytes)?;
    }

    #[test]
    fn mutated_encodings_are_decoded_or_refused_sanely(bytes in mutated()) {
        let _serial = serial();
        decode_all(&bytes)?;
    }

    /// Lengths that claim what the input does not hold, nested: each level
    /// would make serde reserve up to a megabyte.
    #[test]
    fn claimed_lengths_cost_no_more_than_the_input(depth in 1_usize..2000, which in 0_usize..6, tail in vec(any::<u8>(), 0..16)) {
        let _serial = serial();
        let mut bytes = b"\x82\xa4kind\xa3ack\xa7headers".to_vec();
        (0..depth).for_each(|_| bytes.extend_from_slice(NASTY[which]));
        bytes.extend_from_slice(&tail);
        decode_all(&bytes)?;
    }
}

/// Regression: 200 nested array32 headers claiming four billion items each
/// (1 KiB) made serde reserve a megabyte per level, 200 MiB in all; a thousand
/// levels, a gigabyte. Now refused before serde reserves anything.
#[test]
fn nested_length_claims_do_not_reserve_memory() {
    let _serial = serial();
    for marker in [&b"\xdd\xff\xff\xff\xff"[..], b"\xdf\xff\xff\xff\xff", b"\xdc\xff\xff"] {
        let mut outcome = b"\x82\xa4kind\xa3ack\xa1x".to_vec();
        let mut message = b"\x82\xa7subject\xa1s\xa7headers".to_vec();
        for _ in 0..1000 {
            outcome.extend_from_slice(marker);
            message.extend_from_slice(marker);
        }
        let err = within_budget(outcome.len(), || decode::<Outcome>(&outcome)).expect_err("refused");
        assert!(err.to_string().contains("claims"), "{err}");
        within_budget(message.len(), || decode::<Message>(&message)).expect_err("refused");
        within_budget(message.len(), || decode::<Publish>(&message)).expect_err("refused");
    }
}

/// Regression: a value nested a thousand levels deep (1 KiB of `0x91`)
/// overflowed a 2 MiB stack in a debug build (a tokio worker's, a wasm
/// fiber's), aborting the process. Decoding now stops at [`MAX_DEPTH`]; a
/// thread with a quarter of that stack decodes any depth.
#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let _serial = serial();
    let decoded = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(|| {
            let mut results = Vec::new();
            for depth in [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, 1000, 100_000] {
                for marker in [&b"\x91"[..], b"\x81\xa1k", b"\xdc\x00\x01"] {
                    let mut outcome = b"\x82\xa4kind\xa3ack\xa1x".to_vec();
                    let mut message = b"\x82\xa7subject\xa1s\xa1x".to_vec();
                    for _ in 0..depth {
                        outcome.extend_from_slice(marker);
                        message.extend_from_slice(marker);
                    }
                    outcome.push(0xc0);
                    message.push(0xc0);
                    let ok =
                        [decode::<Outcome>(&outcome).is_ok(), decode::<Message>(&message).is_ok(), decode::<Publish>(&message).is_ok()];
                    results.push((depth, ok));
                }
            }
            results
        })
        .expect("thread")
        .join()
        .expect("no stack overflow");
    for (depth, ok) in decoded {
        // The value of `x` is inside the outer map: depth + 1 levels in all.
        let expected = depth + 1 < MAX_DEPTH;
        assert_eq!(ok, [expected; 3], "nested {depth} deep");
    }
}

/// The examples of docs/ABI.md decode as documented.
#[test]
fn the_documented_encodings_decode() {
    let _serial = serial();
    let retry = b"\x83\xa4kind\xa5retry\xa8delay_ms\xcd\x01\xf4\xa6reason\xa2db";
    assert_eq!(decode::<Outcome>(retry).expect("decodes"), Outcome::Retry { delay_ms: Some(500), reason: "db".into() });
    let reply = b"\x83\xa4kind\xa5reply\xa7payload\xc4\x02hi\xa7headers\x91\x92\xa1k\xa1v";
    let expected = Outcome::Reply { payload: b"hi".to_vec(), headers: vec![("k".into(), "v".into())] };
    assert_eq!(decode::<Outcome>(reply).expect("decodes"), expected);
    let positional = b"\x96\xa1a\xc0\x90\xc4\x01x\x01\xc0";
    let msg = Message { subject: "a".into(), payload: b"x".to_vec(), ..Message::default() };
    assert_eq!(decode::<Message>(positional).expect("decodes"), msg);
}
