//! The sandbox against hand-written modules: each misbehaves in one exact way,
//! and the host must name the failure without trapping itself.

use std::time::{Duration, Instant};

use switchyard_abi::{Delivery, Message, Outcome, Publish, status};

use super::{CallError, Plugin, PluginSpec, Pool, Runtime};
use crate::config::Isolation;

/// A module around one `switchyard_handle` body. Offset 16 holds the encoded
/// `{"kind":"ack"}` (10 bytes); `ACK` is its packed pointer/length.
fn module(handle_body: &str) -> Vec<u8> {
    module_with_data(handle_body, "")
}

/// [`module`] with more data segments.
fn module_with_data(handle_body: &str, data: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          (import "switchyard" "publish" (func $publish (param i32 i32) (result i32)))
          (import "switchyard" "log" (func $log (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "\81\a4kind\a3ack")
          {data}
          (func (export "switchyard_abi_version") (result i32) i32.const 1)
          (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
          (func (export "switchyard_handle") (param i32 i32) (result i64) {handle_body}))"#
    );
    wat::parse_str(wat).expect("valid wat")
}

const ACK: &str = "i64.const 68719476746"; // (16 << 32) | 10

fn spec(dir: &std::path::Path, bytes: &[u8]) -> PluginSpec {
    let path = dir.join("plugin.wasm");
    std::fs::write(&path, bytes).expect("write module");
    PluginSpec {
        name: "test".into(),
        path,
        memory: 16 * 1024 * 1024,
        timeout: Duration::from_millis(200),
        fuel: None,
        isolation: Default::default(),
        publish: vec!["out.>".into()],
        kv: Vec::new(),
        request: Vec::new(),
        env: Vec::new(),
        config: switchyard_abi::encode(&toml::Table::new()).expect("encode"),
        rollout: Default::default(),
    }
}

async fn call(spec: PluginSpec) -> Result<Outcome, CallError> {
    let runtime = Runtime::new(None).expect("runtime");
    let (_, mut instance) = Plugin::load(&runtime, spec).await.expect("load");
    instance.handle(&Message { subject: "in.x".into(), ..Message::default() }).await.map(|h| h.outcome)
}

#[tokio::test]
async fn a_compiled_module_is_cached_by_content_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let runtime = Runtime::new(Some(cache.clone())).expect("runtime");
    let (first, _) = Plugin::load(&runtime, spec(dir.path(), &module(ACK))).await.expect("load");
    let artifacts = || std::fs::read_dir(&cache).expect("cache dir").count();
    assert_eq!(artifacts(), 1);
    let (second, mut instance) = Plugin::load(&runtime, spec(dir.path(), &module(ACK))).await.expect("reload");
    assert_eq!(first.hash, second.hash);
    assert_eq!(artifacts(), 1, "the second load used the artifact");
    let handled = instance.handle(&Message::default()).await.expect("handle");
    assert_eq!(handled.outcome, Outcome::Ack);
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let result = call(spec(dir.path(), &module("(loop $spin (br $spin)) i64.const 0"))).await;
    assert!(matches!(result, Err(CallError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// A guest blocked in a host function (here WASI `poll_oneoff` sleeping 3 s) runs
/// no wasm, so the epoch deadline never fires: the timer around the call must.
#[tokio::test]
async fn a_wasi_sleep_is_stopped_at_the_deadline() {
    // One clock subscription at 4096: relative, 3 s (tag 0 = clock at +8, clock id
    // 1 = monotonic at +16, timeout in ns at +24).
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "\81\a4kind\a3ack")
      (func (export "switchyard_abi_version") (result i32) i32.const 1)
      (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
      (func (export "switchyard_handle") (param i32 i32) (result i64)
        (i32.store8 (i32.const 4104) (i32.const 0))
        (i32.store (i32.const 4112) (i32.const 1))
        (i64.store (i32.const 4120) (i64.const 3000000000))
        (drop (call $poll (i32.const 4096) (i32.const 8192) (i32.const 1) (i32.const 8256)))
        i64.const 68719476746))"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let result = call(spec(dir.path(), &wat::parse_str(wat).expect("valid wat"))).await;
    assert!(matches!(result, Err(CallError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// A trap raised by a host function keeps its cause, not only "error while
/// executing at wasm backtrace".
#[tokio::test]
async fn proc_exit_is_reported_as_such() {
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "switchyard_abi_version") (result i32) i32.const 1)
      (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
      (func (export "switchyard_handle") (param i32 i32) (result i64) (call $exit (i32.const 3)) i64.const 0))"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let result = call(spec(dir.path(), &wat::parse_str(wat).expect("valid wat"))).await;
    let err = result.expect_err("proc_exit ends the call");
    assert_eq!(err.to_string(), "called proc_exit(3)");
}

/// The host's log lines written on this thread until the guard is dropped.
fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A plugin logging in a loop writes its per-call budget, then one line saying
/// how much was held back.
#[tokio::test]
async fn a_log_flood_is_cut_to_the_budget_and_counted() {
    let (captured, _guard) = capture_logs();
    let body = r#"(local $i i32)
        (loop $again
          (drop (call $log (i32.const 2) (i32.const 300) (i32.const 5)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 250))))
        i64.const 68719476746"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let result = call(spec(dir.path(), &module_with_data(body, r#"(data (i32.const 300) "flood")"#))).await;
    assert!(matches!(result, Ok(Outcome::Ack)), "{result:?}");
    let log = captured.text();
    assert_eq!(log.lines().filter(|l| l.contains(" flood")).count(), 100, "{log}");
    assert!(log.contains("150 log line(s) suppressed"), "{log}");
}

/// What the guest printed without a final newline is logged when its call ends,
/// not lost (or glued to the next call's first line).
#[tokio::test]
async fn a_last_line_without_its_newline_is_logged_at_the_end_of_the_call() {
    let (captured, _guard) = capture_logs();
    // fd_write(1, one iovec at 256 -> "no newline" at 300, written count at 512).
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "\81\a4kind\a3ack")
      (data (i32.const 300) "no newline")
      (func (export "switchyard_abi_version") (result i32) i32.const 1)
      (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
      (func (export "switchyard_handle") (param i32 i32) (result i64)
        (i32.store (i32.const 256) (i32.const 300))
        (i32.store (i32.const 260) (i32.const 10))
        (drop (call $write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 512)))
        i64.const 68719476746))"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let result = call(spec(dir.path(), &wat::parse_str(wat).expect("valid wat"))).await;
    assert!(matches!(result, Ok(Outcome::Ack)), "{result:?}");
    let log = captured.text();
    assert!(log.contains("no newline") && log.contains("stream=\"stdout\""), "{log}");
}

#[tokio::test]
async fn fuel_bounds_the_instructions_of_a_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = spec(dir.path(), &module("(loop $spin (br $spin)) i64.const 0"));
    spec.fuel = Some(100_000);
    spec.timeout = Duration::from_secs(30);
    assert!(matches!(call(spec).await, Err(CallError::OutOfFuel(100_000))));
}

#[tokio::test]
async fn growing_past_the_memory_cap_is_a_memory_limit_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let body = format!("(drop (memory.grow (i32.const 1000))) {ACK}");
    let result = call(spec(dir.path(), &module(&body))).await;
    assert!(matches!(result, Err(CallError::MemoryLimit(16_777_216))), "{result:?}");
}

#[tokio::test]
async fn host_functions_refuse_bad_pointers_without_trapping() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Trap (unreachable) unless each call returns the expected status code.
    let body = format!(
        "(if (i32.ne (call $publish (i32.const -16) (i32.const 100)) (i32.const -1)) (then unreachable))
         (if (i32.ne (call $publish (i32.const 16) (i32.const 10)) (i32.const -2)) (then unreachable))
         (if (i32.ne (call $log (i32.const 9) (i32.const 16) (i32.const 1)) (i32.const -7)) (then unreachable))
         (if (i32.ne (call $log (i32.const 3) (i32.const 65530) (i32.const 100)) (i32.const -1)) (then unreachable))
         {ACK}"
    );
    assert_eq!(call(spec(dir.path(), &module(&body))).await.expect("no trap"), Outcome::Ack);
}

#[tokio::test]
async fn an_outcome_outside_memory_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let result = call(spec(dir.path(), &module("i64.const -1"))).await;
    assert!(matches!(result, Err(CallError::BadOutcome(_))), "{result:?}");
}

#[tokio::test]
async fn deadlines_still_fire_after_the_runtime_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(None).expect("runtime");
    let (_, mut instance) = Plugin::load(&runtime, spec(dir.path(), &module("(loop $spin (br $spin)) i64.const 0"))).await.expect("load");
    drop(runtime);
    let result = instance.handle(&Message::default()).await;
    assert!(matches!(result, Err(CallError::Timeout(_))), "{result:?}");
}

/// A spinning plugin's call moves to the guest threads: the thread that made
/// the call (here the test's only runtime thread, as a host worker would be)
/// goes on running its other tasks at full speed meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn a_spinning_plugin_leaves_the_callers_thread_free() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(None).expect("runtime");
    let mut spec = spec(dir.path(), &module("(loop $spin (br $spin)) i64.const 0"));
    spec.timeout = Duration::from_millis(400);
    let (plugin, first) = Plugin::load(&runtime, spec).await.expect("load");
    let pool = Pool::new(plugin, first, 1);
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let result = pool.call(&Message::default()).await.result;
    ticker.abort();
    assert!(matches!(result, Err(CallError::Timeout(_))), "{result:?}");
    // Sharing the thread with the guest, the ticker would run once per epoch
    // tick (10 ms): about 40 times in 400 ms. Beside it, every 1–2 ms.
    let ran = ticks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(ran > 120, "the ticker ran {ran} times in 400 ms: the guest held its thread");
}

/// Traps when it has handled a message before in this instance (it marks its
/// memory), so it shows whether instances are shared between messages.
const ONCE_PER_INSTANCE: &str = "(if (i32.ne (i32.load (i32.const 64)) (i32.const 0)) (then unreachable))
     (i32.store (i32.const 64) (i32.const 1))";

async fn outcomes(isolation: Isolation, calls: usize) -> Vec<bool> {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(None).expect("runtime");
    let mut spec = spec(dir.path(), &module(&format!("{ONCE_PER_INSTANCE} {ACK}")));
    spec.isolation = isolation;
    let (plugin, first) = Plugin::load(&runtime, spec).await.expect("load");
    let pool = Pool::new(plugin, first, 1);
    let mut ok = Vec::new();
    for _ in 0..calls {
        ok.push(pool.call(&Message::default()).await.result.is_ok());
    }
    ok
}

#[tokio::test]
async fn pooled_instances_keep_state_between_messages() {
    assert_eq!(outcomes(Isolation::Pooled, 2).await, [true, false]);
}

#[tokio::test]
async fn fresh_isolation_gives_every_message_a_new_instance() {
    assert_eq!(outcomes(Isolation::Fresh, 5).await, [true; 5]);
}

/// A module that publishes `publish` (encoded at offset 256) once per message
/// and traps unless the host answers `expected`.
fn publishing_module(publish: &Publish, expected: i32) -> Vec<u8> {
    let bytes = switchyard_abi::encode(publish).expect("encode");
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    let body = format!(
        "(if (i32.ne (call $publish (i32.const 256) (i32.const {})) (i32.const {expected})) (then unreachable)) {ACK}",
        bytes.len()
    );
    module_with_data(&body, &format!("(data (i32.const 256) \"{escaped}\")"))
}

#[tokio::test]
async fn a_publish_over_max_payload_is_refused_once_the_runtime_knows_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(None).expect("runtime");
    let big = Publish { subject: "out.a".into(), headers: Vec::new(), payload: vec![b'x'; 2000] };
    let (_, mut instance) = Plugin::load(&runtime, spec(dir.path(), &publishing_module(&big, status::TOO_LARGE))).await.expect("load");
    // Loaded before the limit was known: the limit still applies.
    runtime.set_max_payload(1999);
    let handled = instance.handle(&Message::default()).await.expect("TOO_LARGE, no trap");
    assert!(handled.publishes.is_empty(), "a refused publish is not buffered");
}

#[tokio::test]
async fn the_publishes_of_a_jetstream_message_carry_its_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(None).expect("runtime");
    runtime.set_max_payload(1 << 20);
    let publish = Publish { subject: "out.a".into(), headers: Vec::new(), payload: b"x".to_vec() };
    let (_, mut instance) = Plugin::load(&runtime, spec(dir.path(), &publishing_module(&publish, status::OK))).await.expect("load");
    let delivery = Delivery { stream: "JOBS".into(), stream_sequence: 42, ..Delivery::default() };
    let handled = instance.handle(&Message { delivery: Some(delivery), ..Message::default() }).await.expect("handle");
    assert_eq!(handled.publishes[0].headers, [("Nats-Msg-Id".to_owned(), "JOBS:42:0".to_owned())]);
    let core = instance.handle(&Message::default()).await.expect("handle");
    assert!(core.publishes[0].headers.is_empty(), "a core message's publishes carry no id");
}

/// A module that handles batches of two: `body` runs in `switchyard_handle_batch`
/// with `$begin` (the `begin_message` import) and `$publish` at hand; offset
/// 512 holds the array of two acks, `TWO_ACKS` its packed pointer/length.
fn batch_module(body: &str, publish: &Publish) -> Vec<u8> {
    let bytes = switchyard_abi::encode(publish).expect("encode");
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    let wat = format!(
        r#"(module
          (import "switchyard" "publish" (func $publish (param i32 i32) (result i32)))
          (import "switchyard" "begin_message" (func $begin (param i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "\81\a4kind\a3ack")
          (data (i32.const 256) "{escaped}")
          (data (i32.const 512) "\92\81\a4kind\a3ack\81\a4kind\a3ack")
          (func (export "switchyard_abi_version") (result i32) i32.const 1)
          (func (export "switchyard_abi_features") (result i32) i32.const 2)
          (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
          (func (export "switchyard_handle") (param i32 i32) (result i64) {ACK})
          (func (export "switchyard_handle_batch") (param i32 i32) (result i64) {body}))"#
    );
    wat::parse_str(wat).expect("valid wat")
}

const TWO_ACKS: &str = "i64.const 2199023255573"; // (512 << 32) | 21

/// `publish` once, trapping unless the host says OK.
fn publish_once(publish: &Publish) -> String {
    let len = switchyard_abi::encode(publish).expect("encode").len();
    format!("(if (i32.ne (call $publish (i32.const 256) (i32.const {len})) (i32.const 0)) (then unreachable))")
}

/// `begin_message(index)`, trapping unless the host answers `expected`.
fn begin(index: i32, expected: i32) -> String {
    format!("(if (i32.ne (call $begin (i32.const {index})) (i32.const {expected})) (then unreachable))")
}

async fn batch_of_two(body: &str) -> Result<Vec<super::Handled>, CallError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(None).expect("runtime");
    let publish = Publish { subject: "out.a".into(), headers: Vec::new(), payload: b"x".to_vec() };
    let (plugin, first) = Plugin::load(&runtime, spec(dir.path(), &batch_module(body, &publish))).await.expect("load");
    let pool = Pool::new(plugin, first, 1);
    let job = |sequence| Message {
        delivery: Some(Delivery { stream: "JOBS".into(), stream_sequence: sequence, ..Delivery::default() }),
        ..Message::default()
    };
    let (a, b) = (job(7), job(8));
    let calls = pool.call_batch(&[&a, &b], &[None, None]).await.expect("a batch call");
    calls.map(|(calls, _)| calls.into_iter().map(|call| call.result.expect("each message handled")).collect())
}

#[tokio::test]
async fn each_message_of_a_batch_gets_its_own_publishes_and_ids() {
    let publish = Publish { subject: "out.a".into(), headers: Vec::new(), payload: b"x".to_vec() };
    let once = publish_once(&publish);
    // Message 0 publishes once, message 1 twice; an index out of order is refused.
    let body =
        format!("{} {once} {} {} {once} {once} {TWO_ACKS}", begin(0, status::OK), begin(0, status::BAD_ARGUMENT), begin(1, status::OK));
    let handled = batch_of_two(&body).await.expect("the batch call");
    let ids = |h: &super::Handled| h.publishes.iter().map(|p| p.headers[0].1.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&handled[0]), ["JOBS:7:0"]);
    assert_eq!(ids(&handled[1]), ["JOBS:8:0", "JOBS:8:1"]);
    assert!(handled.iter().all(|h| h.outcome == Outcome::Ack));
}

#[tokio::test]
async fn a_batch_whose_messages_were_not_all_begun_fails_whole() {
    let err = batch_of_two(&format!("{} {TWO_ACKS}", begin(0, status::OK))).await.expect_err("refused");
    assert_eq!(err.to_string(), "broke the ABI: began 1 of the batch's 2 messages");
    let err = batch_of_two(&format!("{} {} {ACK}", begin(0, status::OK), begin(1, status::OK))).await.expect_err("refused");
    assert!(err.to_string().contains("outcome"), "one outcome, not an array of two: {err}");
}
