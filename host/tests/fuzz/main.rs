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

// The properties, by what they feed the host.
mod abi_calls;
mod random_modules;
mod regressions;

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
            kv: Vec::new(),
            request: Vec::new(),
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
