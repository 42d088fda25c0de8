//! Bytes a module hands the host as an outcome, a publish, a log line, a raw
//! pointer or an init result, and mutated module files.

use super::*;

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
pub(crate) const ECHOING_INIT: &str = r#"(module
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
