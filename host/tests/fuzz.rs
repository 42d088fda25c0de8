//! The host's side of the ABI, fuzzed end to end through the public plugin API
//! (no NATS): modules that hand the host attacker-chosen bytes as outcomes,
//! publishes, log lines and init results, random valid modules (`wasm-smith`),
//! some shaped like plugins, and mutated module files. Nothing panics, every
//! failure is an error with a message, every call ends in bounded time, the
//! host's answers agree with the ABI (docs/ABI.md), and nothing a plugin does
//! puts a control character into the host's log.
//!
//! `SWITCHYARD_FUZZ_CASES` sets the number of cases of the cheap properties
//! (one loaded module, many calls); those that load a module per case run a
//! quarter of it. A small default keeps `make test` quick; `make fuzz` runs
//! many, in release mode. The heap is capped (see [`HEAP_LIMIT`]): a host that
//! reserved far more than a plugin's bytes are worth aborts this binary.

use std::alloc::System;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cap::Cap;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestCaseResult, TestRunner};
use switchyard::config::Isolation;
use switchyard::plugin::{CallError, Handled, Instance, LoadError, Plugin, PluginSpec, Pool, Runtime};
use switchyard_abi::{Header, Message, Outcome, Publish, decode, encode, encode_message_into, header, subject, unpack};

/// The whole process's heap, wasmtime's compiler included (linear memories are
/// mapped, not allocated): twice what these tests were seen to need, half of
/// what a thousand nested length prefixes once made the decoder reserve.
const HEAP_LIMIT: usize = 512 << 20;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, HEAP_LIMIT);

/// Cases of the cheap properties when `SWITCHYARD_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 256;

/// What one call or load may take at most, debug build on a busy machine
/// included. Calls run under [`CALL_TIMEOUT`] (or out of fuel first).
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// The plugins' time limit per call.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// The server's `max_payload` as the runtime is told it.
const MAX_PAYLOAD: usize = 2048;

/// The plugins' publish allow-list.
const ALLOW: &str = "out.>";

/// `cases / share` cases (at least one), where `cases` comes from `SWITCHYARD_FUZZ_CASES`.
fn config(share: u32) -> Config {
    let cases = std::env::var("SWITCHYARD_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_CASES);
    // Failures are reported with their shrunk input; regressions are kept as plain tests.
    Config { failure_persistence: None, ..Config::with_cases((cases / share).max(1)) }
}

/// Run a property, failing the test with the shrunk input.
fn check<S: Strategy>(config: Config, strategy: S, test: impl Fn(S::Value) -> TestCaseResult) {
    let mut runner = TestRunner::new(config);
    if let Err(err) = runner.run(&strategy, test) {
        panic!("{err}");
    }
}

// ---- the host, without NATS ----

/// A wasm runtime, an async runtime to drive it, and a directory for module files.
struct Host {
    tokio: tokio::runtime::Runtime,
    runtime: Runtime,
    dir: tempfile::TempDir,
    files: AtomicUsize,
}

impl Host {
    fn new() -> Self {
        watch_the_log();
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let runtime = Runtime::new(None).expect("wasm runtime");
        runtime.set_max_payload(MAX_PAYLOAD);
        Self { tokio, runtime, dir: tempfile::tempdir().expect("temp dir"), files: AtomicUsize::new(0) }
    }

    fn spec(&self, wasm: &[u8]) -> PluginSpec {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        let path: PathBuf = self.dir.path().join(format!("plugin-{n}.wasm"));
        std::fs::write(&path, wasm).expect("write module");
        PluginSpec {
            name: "fuzz".into(),
            path,
            memory: 16 << 20,
            timeout: CALL_TIMEOUT,
            fuel: None,
            isolation: Isolation::Pooled,
            publish: vec![ALLOW.into()],
            env: Vec::new(),
            config: vec![0x80], // an empty map
            rollout: Default::default(),
        }
    }

    /// Load a plugin, within [`TIME_LIMIT`]; a refusal must say why.
    fn load(&self, spec: PluginSpec) -> Result<Result<(Arc<Plugin>, Instance), LoadError>, TestCaseError> {
        let started = Instant::now();
        let loaded = self.tokio.block_on(Plugin::load(&self.runtime, spec));
        prop_assert!(started.elapsed() < TIME_LIMIT, "loading took {:?}", started.elapsed());
        if let Err(err) = &loaded {
            let text = err.to_string();
            prop_assert!(text.starts_with("plugin `fuzz`: ") && text.len() > "plugin `fuzz`: ".len(), "{text:?}");
        }
        Ok(loaded)
    }

    /// A pool of a module that must load.
    fn pool(&self, wasm: &[u8]) -> Pool {
        let (plugin, first) = self.tokio.block_on(Plugin::load(&self.runtime, self.spec(wasm))).expect("the module loads");
        Pool::new(plugin, first, 1)
    }

    /// One message through the pool, within [`TIME_LIMIT`]; a failure must say why.
    fn call(&self, pool: &Pool, msg: &Message) -> Result<Result<Handled, CallError>, TestCaseError> {
        let started = Instant::now();
        let result = self.tokio.block_on(pool.call(msg)).result;
        prop_assert!(started.elapsed() < TIME_LIMIT, "the call took {:?}", started.elapsed());
        if let Err(err) = &result {
            prop_assert!(!err.to_string().trim().is_empty(), "an error without a message: {err:?}");
        }
        no_control_characters_logged()?;
        Ok(result)
    }
}

// ---- the host's log ----

/// Log events that held a control character (other than a tab) or ran long.
static BAD_LOG_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Longest event line: 1 KiB of plugin text, escaped (a control character
/// becomes up to 10), and the host's own fields.
const MAX_LOG_LINE: usize = 16 << 10;

/// Every thread's log events, at every level, each checked as it is written:
/// plugin text (log lines, stdout, reasons) must not break a line or send an
/// escape sequence.
fn watch_the_log() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| EventWriter(Vec::new()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

/// Collects one event's line, checked when dropped.
struct EventWriter(Vec<u8>);

impl std::io::Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0);
        let body = line.strip_suffix('\n').unwrap_or(&line);
        if body.chars().any(|c| c.is_control() && c != '\t') || line.len() > MAX_LOG_LINE {
            let mut bad = BAD_LOG_LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            bad.push(body.chars().take(300).collect());
        }
    }
}

fn no_control_characters_logged() -> TestCaseResult {
    let bad = BAD_LOG_LINES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    prop_assert!(bad.is_empty(), "the host logged plugin text unescaped: {:?}", *bad);
    Ok(())
}

// ---- modules that hand the host chosen bytes ----

/// A module that finds the payload of the message it is handed and runs
/// `body` with `$at` and `$n` = the payload's address and length. It asks for
/// positional messages: for `message(payload)` that is `96 a1 73 c0 90`, the
/// payload as `bin`, then `01 c0` (checked by `the_payload_is_where_the_modules_look`).
/// `$status` turns a host function's status code into a `reject` outcome whose
/// reason is the code (see [`status_of`]).
fn module(body: &str) -> Vec<u8> {
    let table: String = (0..=10)
        .map(|i| {
            let reason = if i == 10 { "other".to_owned() } else { (-i).to_string() };
            let encoded = encode(&Outcome::Reject { reason }).expect("encodes");
            let len = u32::try_from(encoded.len()).expect("short").to_le_bytes();
            format!("(data (i32.const {}) \"{}{}\")", 256 + 32 * i, escape(&len), escape(&encoded))
        })
        .collect();
    let wat = format!(
        r#"(module
          (import "switchyard" "publish" (func $publish (param i32 i32) (result i32)))
          (import "switchyard" "log" (func $log (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          {table}
          (func (export "switchyard_abi_version") (result i32) i32.const 1)
          (func (export "switchyard_abi_features") (result i32) i32.const 1)
          (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
          (func $pack (param $ptr i32) (param $len i32) (result i64)
            (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
          (func $status (param $rc i32) (result i64)
            (local $i i32) (local $at i32)
            (local.set $i (i32.sub (i32.const 0) (local.get $rc)))
            (if (i32.gt_u (local.get $i) (i32.const 10)) (then (local.set $i (i32.const 10))))
            (local.set $at (i32.add (i32.const 256) (i32.mul (local.get $i) (i32.const 32))))
            (call $pack (i32.add (local.get $at) (i32.const 4)) (i32.load (local.get $at))))
          (func (export "switchyard_handle") (param $msg i32) (param $len i32) (result i64)
            (local $marker i32) (local $at i32) (local $n i32) (local $mode i32)
            (local.set $marker (i32.load8_u offset=5 (local.get $msg)))
            (local.set $at (i32.add (local.get $msg)
              (select (i32.const 7)
                (select (i32.const 8) (i32.const 10) (i32.eq (local.get $marker) (i32.const 0xc5)))
                (i32.eq (local.get $marker) (i32.const 0xc4)))))
            (local.set $n (i32.sub (i32.sub (i32.add (local.get $msg) (local.get $len)) (i32.const 2)) (local.get $at)))
            {body}))"#
    );
    wat::parse_str(wat).expect("valid wat")
}

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Returns the payload as its outcome.
const OUTCOME: &str = "(call $pack (local.get $at) (local.get $n))";
/// Publishes the payload; returns the status.
const PUBLISH: &str = "(call $status (call $publish (local.get $at) (local.get $n)))";
/// Logs the payload after its first 4 bytes at the level they hold; returns the status.
const LOG: &str =
    "(call $status (call $log (i32.load (local.get $at)) (i32.add (local.get $at) (i32.const 4)) (i32.sub (local.get $n) (i32.const 4))))";
/// The payload holds a mode byte and raw arguments: 0, an i64 returned as the
/// packed outcome; 1, `publish(i32, i32)`; 2, `log(i32, i32, i32)`.
const RAW: &str = "(local.set $mode (i32.load8_u (local.get $at)))
    (if (i32.eqz (local.get $mode)) (then (return (i64.load offset=1 (local.get $at)))))
    (if (i32.eq (local.get $mode) (i32.const 1))
      (then (return (call $status (call $publish (i32.load offset=1 (local.get $at)) (i32.load offset=5 (local.get $at)))))))
    (call $status (call $log (i32.load offset=1 (local.get $at)) (i32.load offset=5 (local.get $at)) (i32.load offset=9 (local.get $at))))";

/// The bytes of guest memory (one page).
const MEMORY: u64 = 65536;

fn message(payload: &[u8]) -> Message {
    Message { subject: "s".into(), payload: payload.to_vec(), ..Message::default() }
}

/// The status code a `$status` outcome carries.
fn status_of(result: Result<Handled, CallError>) -> Result<(i32, Vec<Publish>), TestCaseError> {
    match result {
        Ok(Handled { outcome: Outcome::Reject { reason }, publishes }) => {
            let code = reason.parse().map_err(|_| TestCaseError::fail(format!("status out of range: {reason}")))?;
            Ok((code, publishes))
        }
        other => Err(TestCaseError::fail(format!("the module answered without a status: {other:?}"))),
    }
}

// ---- strategies ----

fn text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z0-9._>* -]{0,12}", 1 => any::<String>()]
}

fn subject_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&["out.a", "out.a.b", "out", "out.*", "out.>", "out..a", "other.x", "", "out.a b", "out.\n"][..])
            .prop_map(str::to_owned),
        2 => "out\\.[a-z]{1,5}",
        1 => text(),
    ]
}

fn header_pair() -> impl Strategy<Value = Header> {
    let name = prop_oneof![4 => "[A-Za-z-]{1,10}", 1 => Just("Nats-Msg-Id".to_owned()), 1 => text()];
    let value = prop_oneof![4 => "[ -~]{0,20}", 1 => text()];
    (name, value)
}

fn bytes_up_to(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn publish() -> impl Strategy<Value = Publish> {
    (subject_text(), vec(header_pair(), 0..3), prop_oneof![3 => bytes_up_to(64), 1 => bytes_up_to(2 * MAX_PAYLOAD)])
        .prop_map(|(subject, headers, payload)| Publish { subject, headers, payload })
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Ack),
        (proptest::option::of(any::<u64>()), text()).prop_map(|(delay_ms, reason)| Outcome::Retry { delay_ms, reason }),
        text().prop_map(|reason| Outcome::Reject { reason }),
        (bytes_up_to(64), vec(header_pair(), 0..3)).prop_map(|(payload, headers)| Outcome::Reply { payload, headers }),
    ]
}

/// Changes to a byte string: flip a bit, set a byte, insert bytes (some of them
/// lengths that claim far more than follows), remove or cut.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    const NASTY: [&[u8]; 5] = [b"\xdd\xff\xff\xff\xff", b"\xdf\x7f\xff\xff\xff", b"\xc6\xff\xff\xff\xf0", b"\xc1", b"\x91\x91\x91\x91"];
    for &(at, op, byte) in edits {
        let len = bytes.len();
        let i = if len == 0 { 0 } else { at % len };
        match op % 6 {
            0 if len > 0 => bytes[i] ^= 1 << (byte % 8),
            1 if len > 0 => bytes[i] = byte,
            2 => bytes.insert(i, byte),
            3 => drop(bytes.splice(i..i, NASTY[usize::from(byte) % NASTY.len()].iter().copied())),
            4 if len > 0 => drop(bytes.remove(i)),
            5 => bytes.truncate(i),
            _ => {}
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4)
}

/// Valid encodings, mutated ones and plain random bytes, from `valid`.
fn wire_bytes<T: serde::Serialize + std::fmt::Debug + 'static>(valid: BoxedStrategy<T>) -> impl Strategy<Value = Vec<u8>> {
    let encoded = |value: T| encode(&value).expect("encodes");
    prop_oneof![
        3 => valid.clone().prop_map(encoded),
        3 => (valid.prop_map(encoded), edits()).prop_map(|(bytes, edits)| mutate(bytes, &edits)),
        1 => bytes_up_to(64),
    ]
}

// ---- the properties ----

/// Guard for the modules above: the payload is where they look for it, for
/// payloads with 8 and 16-bit lengths, and the plumbing answers as expected.
#[test]
fn the_payload_is_where_the_modules_look() {
    for len in [0, 1, 255, 256, 4000] {
        let payload = vec![7; len];
        let mut encoded = Vec::new();
        encode_message_into(&mut encoded, &message(&payload), true).expect("encodes");
        let header = if len < 256 { 2 } else { 3 };
        assert_eq!(encoded[..5], *b"\x96\xa1s\xc0\x90");
        assert_eq!(encoded[5 + header..encoded.len() - 2], *payload);
        assert_eq!(encoded[encoded.len() - 2..], *b"\x01\xc0");
    }
    let host = Host::new();
    let pool = host.pool(&module(OUTCOME));
    let ack = encode(&Outcome::Ack).expect("encodes");
    let handled = host.tokio.block_on(pool.call(&message(&ack))).result.expect("acked");
    assert_eq!(handled.outcome, Outcome::Ack);
    let pool = host.pool(&module(PUBLISH));
    let publish = Publish { subject: "out.a".into(), ..Publish::default() };
    let handled = host.tokio.block_on(pool.call(&message(&encode(&publish).expect("encodes")))).result.expect("a status");
    assert_eq!(handled.outcome, Outcome::Reject { reason: "0".into() });
    assert_eq!(handled.publishes, [publish]);
}

/// Outcome bytes: the host's answer is the ABI decoder's (the ack shortcut
/// included), and an outcome that does not decode is a `BadOutcome`.
#[test]
fn outcome_bytes_are_decoded_as_the_abi_says() {
    let host = Host::new();
    let pool = host.pool(&module(OUTCOME));
    check(config(1), wire_bytes(outcome().boxed()), |bytes| {
        let result = host.call(&pool, &message(&bytes))?;
        match (decode::<Outcome>(&bytes), result) {
            (Ok(expected), Ok(handled)) => prop_assert_eq!(handled.outcome, expected),
            (Err(_), Err(CallError::BadOutcome(why))) => prop_assert!(!why.is_empty()),
            (expected, got) => prop_assert!(false, "the ABI decodes {expected:?}, the host answered {got:?}"),
        }
        Ok(())
    });
}

/// Regression: an outcome or a publish nested a thousand levels deep (1 KiB)
/// overflowed the stack of the thread decoding it in a debug build (the test
/// suite's host), which aborts the process: every route of the host with it.
/// And a thousand nested array headers claiming four billion items each (5 KiB)
/// made the host reserve a gigabyte. Both are refused now, cheaply.
#[test]
fn deeply_nested_bytes_from_a_plugin_are_refused() {
    let host = Host::new();
    let outcomes = host.pool(&module(OUTCOME));
    let publishes = host.pool(&module(PUBLISH));
    for marker in [&b"\x91"[..], b"\x81\xa1k", b"\xdd\xff\xff\xff\xff"] {
        let mut outcome = b"\x82\xa4kind\xa3ack\xa1x".to_vec();
        let mut publish = b"\x82\xa7subject\xa5out.a\xa1x".to_vec();
        for _ in 0..1000 {
            outcome.extend_from_slice(marker);
            publish.extend_from_slice(marker);
        }
        outcome.push(0xc0);
        publish.push(0xc0);
        let result = host.tokio.block_on(outcomes.call(&message(&outcome))).result;
        assert!(matches!(result, Err(CallError::BadOutcome(_))), "{result:?}");
        let (code, _) = status_of(host.tokio.block_on(publishes.call(&message(&publish))).result).expect("a status");
        assert_eq!(code, -2, "not a publish");
    }
}

/// What `publish` answers, in the order docs/ABI.md gives (the call is made
/// inside `handle`, for a core message, so neither -6 nor a message id).
fn expected_publish(bytes: &[u8]) -> (i32, Option<Publish>) {
    let Ok(msg) = decode::<Publish>(bytes) else { return (-2, None) };
    let code = if !subject::is_valid_subject(&msg.subject, false) {
        -5
    } else if !subject::matches(ALLOW, &msg.subject) {
        -3
    } else if header::problem(&msg.headers).is_some() {
        -9
    } else if header::wire_size(&msg.headers, msg.payload.len()) > MAX_PAYLOAD {
        -8
    } else {
        return (0, Some(msg));
    };
    (code, None)
}

#[test]
fn publish_bytes_get_the_documented_status() {
    let host = Host::new();
    let pool = host.pool(&module(PUBLISH));
    check(config(1), wire_bytes(publish().boxed()), |bytes| {
        let (code, publishes) = status_of(host.call(&pool, &message(&bytes))?)?;
        let (expected, buffered) = expected_publish(&bytes);
        prop_assert_eq!(code, expected);
        prop_assert_eq!(publishes, buffered.into_iter().collect::<Vec<_>>());
        Ok(())
    });
}

/// Log lines: an unknown level is `-7`; otherwise invalid UTF-8 is `-2` and
/// the rest `0` (or `0` regardless once over the rate budget, when the line is
/// counted, not read). What is logged holds no control character.
/// Log lines that would forge a line or send an escape sequence, or are cut.
const NASTY_LINES: &[&[u8]] = &[b"line\nERROR forged", b"\x1b[31mred", b"a\r\nb", b"caf\xc3", b"nul\0"];

#[test]
fn log_calls_get_the_documented_status() {
    let host = Host::new();
    let pool = host.pool(&module(LOG));
    let level = prop_oneof![4 => 1_i32..=5, 1 => any::<i32>()];
    let line = prop_oneof![
        3 => text().prop_map(String::into_bytes),
        1 => bytes_up_to(64),
        1 => proptest::sample::select(NASTY_LINES).prop_map(<[u8]>::to_vec),
        1 => (0_usize..10_000, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n).into_bytes()),
    ];
    check(config(1), (level, line), |(level, line)| {
        let mut payload = level.to_le_bytes().to_vec();
        payload.extend_from_slice(&line);
        let (code, _) = status_of(host.call(&pool, &message(&payload))?)?;
        // The host reads 8 KiB at most; a character split by the cut is dropped.
        let valid_text = match std::str::from_utf8(&line[..line.len().min(8192)]) {
            Ok(_) => true,
            Err(err) => line.len() > 8192 && err.error_len().is_none(),
        };
        if !(1..=5).contains(&level) {
            prop_assert_eq!(code, -7);
        } else if valid_text {
            prop_assert_eq!(code, 0);
        } else {
            prop_assert!(code == -2 || code == 0, "status {code} for invalid UTF-8");
        }
        Ok(())
    });
}

/// Raw pointers and lengths: outside memory, `publish` and `log` answer `-1`
/// and an outcome is a `BadOutcome` naming it; inside, whatever the bytes are.
#[test]
fn raw_pointers_are_checked_against_guest_memory() {
    let host = Host::new();
    let pool = host.pool(&module(RAW));
    let word = || prop_oneof![any::<i32>(), 0_i32..70_000, 65_000_i32..65_540, -8_i32..8];
    check(config(1), (0_u8..3, word(), word(), word()), |(mode, a, b, c)| {
        let mut payload = vec![mode];
        if mode == 0 {
            payload.extend_from_slice(&(i64::from(a) << 32 | i64::from(b as u32)).to_le_bytes());
        } else {
            [a, b, c].iter().for_each(|word| payload.extend_from_slice(&word.to_le_bytes()));
        }
        let inside = |ptr: i32, len: u32| u64::from(ptr as u32) + u64::from(len) <= MEMORY;
        let result = host.call(&pool, &message(&payload))?;
        match mode {
            0 => {
                let (ptr, len) = unpack((i64::from(a) << 32 | i64::from(b as u32)) as u64);
                if !inside(ptr as i32, len) {
                    let failed = matches!(&result, Err(CallError::BadOutcome(why)) if why.contains("outside guest memory"));
                    prop_assert!(failed, "{result:?}");
                }
            }
            1 => {
                let (code, _) = status_of(result)?;
                if inside(a, b as u32) {
                    prop_assert!([0, -2, -3, -5, -8, -9].contains(&code), "status {code}");
                } else {
                    prop_assert_eq!(code, -1);
                }
            }
            _ => {
                let (code, _) = status_of(result)?;
                if !(1..=5).contains(&a) {
                    prop_assert_eq!(code, -7);
                } else if inside(b, c.min(8192) as u32) {
                    prop_assert!(code == 0 || code == -2, "status {code}");
                } else {
                    prop_assert!(code == -1 || code == 0, "status {code}");
                }
            }
        }
        Ok(())
    });
}

/// Accepts an empty config, returns `ff` + 8 bytes as its packed result, and
/// refuses anything else with the config's own bytes.
const ECHOING_INIT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_abi_version") (result i32) i32.const 1)
  (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "switchyard_handle") (param i32 i32) (result i64) i64.const 0)
  (func (export "switchyard_init") (param $ptr i32) (param $len i32) (result i64)
    (if (i32.eqz (local.get $len)) (then (return (i64.const 0))))
    (if (i32.and (i32.eq (local.get $len) (i32.const 9)) (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 0xff)))
      (then (return (i64.load offset=1 (local.get $ptr)))))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len)))))"#;

/// An `init` that refuses with the bytes of its config (any bytes: the host
/// does not look), or returns a raw packed location: the load fails with the
/// text (invalid UTF-8 replaced) or names a location outside memory; 0 accepts.
#[test]
fn init_results_refuse_the_plugin_with_their_text() {
    let host = Host::new();
    let wasm = wat::parse_str(ECHOING_INIT).expect("valid wat");
    let config_bytes = prop_oneof![
        1 => Just(Vec::new()),
        3 => text().prop_map(String::into_bytes),
        2 => bytes_up_to(600),
        2 => prop_oneof![any::<u64>(), 0_u64..=70_000, (0_u64..70_000).prop_map(|ptr| ptr << 32 | 16)]
            .prop_map(|packed| [&[0xff][..], &packed.to_le_bytes()].concat()),
    ];
    check(config(4), config_bytes, |bytes| {
        let spec = PluginSpec { config: bytes.clone(), ..host.spec(&wasm) };
        let loaded = host.load(spec)?;
        if bytes.is_empty() {
            prop_assert!(loaded.is_ok(), "{:?}", loaded.err());
            return Ok(());
        }
        if bytes.len() == 9 && bytes[0] == 0xff {
            let packed = u64::from_le_bytes(bytes[1..].try_into().expect("8 bytes"));
            let (ptr, len) = unpack(packed);
            match loaded {
                Ok(_) => prop_assert_eq!(packed, 0),
                Err(LoadError::InitRefused { .. }) => prop_assert!(u64::from(ptr) + u64::from(len) <= MEMORY),
                Err(LoadError::Call { call: CallError::BadOutcome(why), .. }) => prop_assert!(why.contains("outside guest memory")),
                Err(other) => prop_assert!(false, "{other}"),
            }
            return Ok(());
        }
        match loaded {
            // The refusal's text, escaped (no control character but a tab reaches a log) and cut at 1 KiB.
            Err(LoadError::InitRefused { reason, .. }) => {
                let text = String::from_utf8_lossy(&bytes);
                let control = |c: char| c.is_control() && c != '\t';
                prop_assert!(!reason.chars().any(control), "{reason:?}");
                if !text.chars().any(control) && text.len() <= 1024 {
                    prop_assert_eq!(reason, text);
                }
            }
            other => prop_assert!(false, "expected a refusal, got {:?}", other.map(|_| ())),
        }
        Ok(())
    });
}

/// A small module that loads, to mutate: it logs the payload.
fn logging_module() -> Vec<u8> {
    module("(call $status (call $log (i32.const 3) (local.get $at) (local.get $n)))")
}

/// Module files with bytes flipped, inserted, removed or cut: refused with a
/// message, or (when the change is harmless) loaded and callable.
#[test]
fn mutated_module_files_are_refused_or_work() {
    let host = Host::new();
    let original = logging_module();
    check(config(4), (edits(), bytes_up_to(32)), |(edits, payload)| {
        let wasm = mutate(original.clone(), &edits);
        if let Ok((plugin, first)) = host.load(host.spec(&wasm))? {
            let pool = Pool::new(plugin, first, 1);
            let _outcome_or_error = host.call(&pool, &message(&payload))?;
        }
        Ok(())
    });
}

// ---- random modules (wasm-smith) ----

/// Limits that keep generated modules small and quick to compile, with the
/// proposals this host's wasmtime supports (`any_proposal` also turns on the
/// rest, which the loader must refuse with a message).
fn smith_config(any_proposal: bool) -> wasm_smith::Config {
    wasm_smith::Config {
        max_funcs: 12,
        max_instructions: 60,
        max_types: 16,
        max_type_size: 100,
        max_globals: 8,
        max_imports: 8,
        max_exports: 12,
        max_data_segments: 4,
        max_element_segments: 4,
        max_elements: 16,
        max_tables: 2,
        max_table_elements: 1000,
        max_memories: 1,
        max_memory32_bytes: 1 << 20,
        max_memory64_bytes: 1 << 20,
        max_tags: 4,
        memory64_enabled: any_proposal,
        reference_types_enabled: any_proposal,
        gc_enabled: any_proposal,
        exceptions_enabled: any_proposal,
        threads_enabled: any_proposal,
        wide_arithmetic_enabled: any_proposal,
        custom_page_sizes_enabled: any_proposal,
        compact_imports_enabled: any_proposal,
        shared_everything_threads_enabled: false,
        custom_descriptors_enabled: false,
        ..wasm_smith::Config::default()
    }
}

fn smith(config: wasm_smith::Config, seed: &[u8]) -> Option<Vec<u8>> {
    let mut input = arbitrary::Unstructured::new(seed);
    wasm_smith::Module::new(config, &mut input).ok().map(|module| module.to_bytes())
}

/// Valid modules of any shape are refused (none exports the ABI) with a message.
#[test]
fn random_modules_are_refused_with_a_message() {
    let host = Host::new();
    check(config(4), (any::<bool>(), bytes_up_to(2048)), |(any_proposal, seed)| {
        let Some(wasm) = smith(smith_config(any_proposal), &seed) else { return Ok(()) };
        let loaded = host.load(host.spec(&wasm))?;
        prop_assert!(loaded.is_err(), "a module without the ABI's exports loaded");
        Ok(())
    });
}

/// The exports of a plugin (optional ones as chosen) for wasm-smith to give random bodies.
fn plugin_shape(init: bool, features: bool, free: bool, initialize: bool) -> Vec<u8> {
    let mut wat = String::from(
        r#"(module
        (memory (export "memory") 1)
        (func (export "switchyard_abi_version") (result i32) unreachable)
        (func (export "switchyard_alloc") (param i32) (result i32) unreachable)
        (func (export "switchyard_handle") (param i32 i32) (result i64) unreachable)"#,
    );
    if init {
        wat.push_str(r#"(func (export "switchyard_init") (param i32 i32) (result i64) unreachable)"#);
    }
    if features {
        wat.push_str(r#"(func (export "switchyard_abi_features") (result i32) unreachable)"#);
    }
    if free {
        wat.push_str(r#"(func (export "switchyard_free") (param i32 i32) unreachable)"#);
    }
    if initialize {
        wat.push_str(r#"(func (export "_initialize") unreachable)"#);
    }
    wat.push(')');
    wat::parse_str(wat).expect("valid wat")
}

/// What a plugin may import. No WASI call that sleeps or waits: it would only
/// make cases slow (every guest call is bounded by a timer too: see the test of
/// a sleep in `_initialize` at the end).
const PLUGIN_IMPORTS: &str = r#"(module
  (import "switchyard" "publish" (func (param i32 i32) (result i32)))
  (import "switchyard" "log" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#;

/// Replace the body behind export `name` by `func` (a function named `$id`),
/// working on the module's text: the export then names the new function, added
/// last so no other index moves.
fn replace_export(text: &mut String, name: &str, id: &str, func: &str) {
    let export = format!("(export \"{name}\" (func ");
    if let Some(start) = text.find(&export) {
        let end = start + text[start..].find("))").expect("an export closes") + 2;
        text.replace_range(start..end, &format!("(export \"{name}\" (func ${id}))"));
        let last = text.rfind(')').expect("a module closes");
        text.insert_str(last, &format!("\n  {func}\n"));
    }
}

#[derive(Debug, Default)]
struct Seen {
    loaded: usize,
    refused: usize,
    calls_ok: usize,
    calls_failed: usize,
}

/// Modules with the plugin's exports and random code behind them (an ABI
/// version of 1 and a sane allocator most of the time, to get further): they
/// load or are refused with a message, and every call ends, within its time
/// or fuel, with an outcome or an error with a message.
#[test]
fn random_plugins_never_break_the_host() {
    let host = Host::new();
    let imports = wat::parse_str(PLUGIN_IMPORTS).expect("valid wat");
    let seen = Mutex::new(Seen::default());
    let shape = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    let knobs = (0_u8..8, 0_u8..4, any::<bool>());
    check(config(4), (shape, knobs, bytes_up_to(3000), vec(bytes_up_to(64), 1..4)), |(shape, knobs, seed, payloads)| {
        let (init, features, free, initialize) = shape;
        let (sanity, limits, fresh) = knobs;
        let config = wasm_smith::Config {
            exports: Some(plugin_shape(init, features, free, initialize)),
            available_imports: Some(imports.clone()),
            // The exported one is made whatever this says; no other.
            max_memories: 0,
            ..smith_config(false)
        };
        let Some(wasm) = smith(config, &seed) else { return Ok(()) };
        let mut text = wasmprinter::print_bytes(&wasm).map_err(|err| TestCaseError::fail(format!("wasmprinter: {err}")))?;
        if sanity != 0 {
            replace_export(&mut text, "switchyard_abi_version", "fuzz_version", "(func $fuzz_version (result i32) i32.const 1)");
        }
        if sanity > 2 {
            replace_export(&mut text, "switchyard_alloc", "fuzz_alloc", "(func $fuzz_alloc (param i32) (result i32) i32.const 1024)");
        }
        if sanity > 4 {
            replace_export(&mut text, "switchyard_init", "fuzz_init", "(func $fuzz_init (param i32 i32) (result i64) i64.const 0)");
            replace_export(&mut text, "_initialize", "fuzz_initialize", "(func $fuzz_initialize)");
            replace_export(&mut text, "switchyard_abi_features", "fuzz_features", "(func $fuzz_features (result i32) i32.const 0)");
        }
        let wasm = wat::parse_str(&text).map_err(|err| TestCaseError::fail(format!("{err}\n{text}")))?;
        let mut spec = host.spec(&wasm);
        spec.fuel = (limits != 0).then_some(5_000_000);
        spec.isolation = if fresh { Isolation::Fresh } else { Isolation::Pooled };
        let loaded = host.load(spec)?;
        let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Ok((plugin, first)) = loaded else {
            seen.refused += 1;
            return Ok(());
        };
        seen.loaded += 1;
        let pool = Pool::new(plugin, first, 1);
        for payload in payloads {
            match host.call(&pool, &message(&payload))? {
                Ok(_) => seen.calls_ok += 1,
                Err(_) => seen.calls_failed += 1,
            }
        }
        Ok(())
    });
    eprintln!("random plugins: {:?}", seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
}

// ---- problems the fuzzing found, kept as regression tests ----

/// A plugin's error text reaches operators through `switchyard invoke` and
/// `check` and the reload report: it is printable and bounded like reject
/// reasons are (`plugin::printable`).
#[test]
fn guest_text_in_errors_is_printable_and_bounded() {
    let host = Host::new();
    let text = "x\n2026-01-01T00:00:00Z ERROR switchyard: forged\u{1b}[2J".to_owned() + &"y".repeat(60_000);
    // {"kind": text}: an unknown kind, which the decoder's error quotes.
    let mut outcome = b"\x81\xa4kind\xda".to_vec();
    outcome.extend_from_slice(&u16::try_from(text.len()).expect("fits").to_be_bytes());
    outcome.extend_from_slice(text.as_bytes());
    let call = host.tokio.block_on(host.pool(&module(OUTCOME)).call(&message(&outcome))).result.expect_err("not an outcome");
    let spec = PluginSpec { config: text.into_bytes(), ..host.spec(&wat::parse_str(ECHOING_INIT).expect("valid wat")) };
    let load = host.tokio.block_on(Plugin::load(&host.runtime, spec)).err().expect("refused");
    for err in [call.to_string(), load.to_string()] {
        let start: String = err.chars().take(120).collect();
        assert!(!err.chars().any(char::is_control) && err.len() < 4096, "{} bytes: {start:?}", err.len());
    }
}

/// `_initialize`, a start function, `switchyard_abi_version` and
/// `switchyard_abi_features` have a timer around them as `handle` and `init`
/// do: a guest blocked in a WASI sleep runs no wasm, so the epoch deadline
/// alone would not stop it.
#[test]
fn a_sleep_in_initialize_is_stopped_at_the_deadline() {
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_initialize")
        (i32.store8 (i32.const 4104) (i32.const 0))
        (i32.store (i32.const 4112) (i32.const 1))
        (i64.store (i32.const 4120) (i64.const 3000000000))
        (drop (call $poll (i32.const 4096) (i32.const 8192) (i32.const 1) (i32.const 8256))))
      (func (export "switchyard_abi_version") (result i32) i32.const 1)
      (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
      (func (export "switchyard_handle") (param i32 i32) (result i64) i64.const 0))"#;
    let host = Host::new();
    let started = Instant::now();
    let loaded = host.tokio.block_on(Plugin::load(&host.runtime, host.spec(&wat::parse_str(wat).expect("valid wat"))));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}: {:?}", started.elapsed(), loaded.err());
}
