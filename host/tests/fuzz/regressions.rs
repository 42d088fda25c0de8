//! Problems the fuzzing found, kept as regression tests.

use super::*;
use crate::abi_calls::ECHOING_INIT;

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
