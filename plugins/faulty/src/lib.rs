//! `faulty`: a test plugin that misbehaves on request, so the host's handling of every kind of
//! plugin failure can be tested end to end.
//!
//! What it does is read from the message payload when that is a JSON object, and for each key the
//! message lacks (or when the payload is not a JSON object), from the plugin's config:
//!
//! | key          | type              | effect |
//! |--------------|-------------------|--------|
//! | `publish`    | array of subjects | publish the message payload to each (header `faulty-attempt: <attempt>`), before anything else |
//! | `log_calls`  | boolean           | log `faulty: call <subject> attempt <n>` at INFO on every call |
//! | `busy_ms`    | integer           | then busy-wait this many milliseconds |
//! | `sleep_ms`   | integer           | then sleep this many milliseconds (the host waits; no core held) |
//! | `fail_times` | integer N         | then `Retry { reason: "fail N" }` while `attempt <= N` |
//! | `fail_until_unix_ms` | integer   | then `Retry { reason: "dependency down" }` until this wall-clock time |
//! | `fail_percent` | integer P       | then `Retry { reason: "fail percent" }` for P % of payloads (by a hash of the payload: the same payload always fails or never) |
//! | `payload_bytes` | integer        | publishes and the reply carry this many bytes (`x`) instead of the message payload |
//! | `headers`    | object of strings | add these headers to every publish and to the reply (names and values unchecked) |
//! | `kv`         | array of objects  | key-value operations, run first (message only; see `kv.rs`): their results become the payload of the publishes and the reply |
//! | `request`    | object            | `{"subject", "payload", "timeout_ms"}`: a request through the host, run first (message only); `{"reply": text}` or `{"error": kind}` becomes the payload |
//! | `action`     | string            | then: `ack` (default), `reply` (the payload), `reject` (reason `rejected by request`), `retry` (reason `retry by request`), `trap` (wasm `unreachable`), `panic` (`faulty: asked to panic`), `loop` (spin forever), `alloc` (grow memory until the limit), `garbage` (return bytes that are not an outcome), `log` (log the payload at INFO, ack) |
//!
//! Config only: `tag` (string) is added to every publish as header `faulty-tag`;
//! `set` (object): when the payload is a JSON object, publishes and the reply carry it with these fields set;
//! `refuse_init = true` makes init refuse with `refused by config`;
//! `trap_on_init = true` makes init trap. Init also refuses config values of the wrong type.
//!
//! A refused publish or a key of the wrong type in the message rejects the message with a reason
//! that says so; for a refused publish it ends with the host's status code, `(status -8)`. `garbage` makes `switchyard_handle` return the 8 bytes `c1 67 61 72 62 61 67 65`
//! (`0xc1`, a byte MessagePack never uses, then `garbage`), through the SDK's hidden
//! `Context::__override_outcome_bytes` test hook.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use switchyard_sdk::prelude::*;

mod kv;

/// What `action = "garbage"` returns instead of an encoded outcome.
pub const GARBAGE: &[u8] = b"\xc1garbage";

const ACTIONS: &str = "ack, reply, reject, retry, trap, panic, loop, alloc, garbage, log";

#[init]
fn init(config: &PluginConfig) -> Result<(), String> {
    if flag(config, "trap_on_init")? {
        trap("faulty: asked to trap in init");
    }
    if flag(config, "refuse_init")? {
        return Err("refused by config".to_owned());
    }
    // Refuse a config whose keys would reject every message, so the mistake shows at load time.
    Plan::read(None, config).map(|_| ())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Outcome {
    let from_message = match serde_json::from_slice::<Value>(&msg.payload) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    };
    let plan = match Plan::read(from_message.as_ref(), ctx.config()) {
        Ok(plan) => plan,
        Err(reason) => return Outcome::reject(reason),
    };
    let kv_results = match from_message.as_ref() {
        Some(m) if m.contains_key("request") => Some(kv::request(&m["request"], ctx)),
        Some(m) => m.get("kv").and_then(Value::as_array).map(|ops| kv::run(ops, ctx)),
        None => None,
    };
    // A store that is down is worth another try, as a plugin's `?` would make it.
    if kv_results.as_ref().is_some_and(kv::unavailable) {
        return Outcome::retry("faulty: key-value store unavailable");
    }
    let payload = match (plan.payload_bytes, from_message, ctx.config().value("set")) {
        _ if kv_results.is_some() => serde_json::to_vec(&kv_results).unwrap_or_default(),
        (Some(size), _, _) => vec![b'x'; size],
        (None, Some(mut object), Some(Value::Object(set))) => {
            object.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
            serde_json::to_vec(&object).unwrap_or_default()
        }
        _ => msg.payload.clone(),
    };
    for subject in &plan.publish {
        // The attempt (and the config's `tag`) ride along so tests can see which
        // delivery, and which plugin version, made each publish.
        let mut headers = vec![("faulty-attempt".to_owned(), msg.attempt.to_string())];
        if let Ok(Some(tag)) = ctx.config().get::<String>("tag") {
            headers.push(("faulty-tag".to_owned(), tag));
        }
        headers.extend(plan.headers.iter().cloned());
        if let Err(e) = ctx.publish_with_headers(subject, headers, payload.clone()) {
            return Outcome::reject(format!("faulty: publish to `{subject}` refused: {e} (status {})", e.status()));
        }
    }
    if plan.log_calls {
        ctx.info(format!("faulty: call {} attempt {}", msg.subject, msg.attempt));
    }
    if plan.busy_ms > 0 {
        busy_wait(Duration::from_millis(plan.busy_ms));
    }
    if plan.sleep_ms > 0 {
        // Under WASI this is poll_oneoff: the host waits without holding a core.
        std::thread::sleep(Duration::from_millis(plan.sleep_ms));
    }
    if msg.attempt <= plan.fail_times {
        return Outcome::retry(format!("fail {}", plan.fail_times));
    }
    if fnv1a(&msg.payload) % 100 < plan.fail_percent {
        return Outcome::retry("fail percent");
    }
    if now_unix_ms() < plan.fail_until_unix_ms {
        return Outcome::retry("dependency down");
    }
    match plan.action {
        Action::Ack => Outcome::Ack,
        Action::Reply => Outcome::Reply { payload, headers: plan.headers },
        Action::Reject => Outcome::reject("rejected by request"),
        Action::Retry => Outcome::retry("retry by request"),
        Action::Trap => trap("faulty: asked to trap"),
        Action::Panic => panic!("faulty: asked to panic"),
        Action::Loop => spin_forever(),
        Action::Alloc => exhaust_memory(),
        Action::Garbage => {
            ctx.__override_outcome_bytes(GARBAGE.to_vec());
            Outcome::Ack
        }
        Action::Log => {
            ctx.info(String::from_utf8_lossy(&msg.payload));
            Outcome::Ack
        }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    publish: Vec<String>,
    log_calls: bool,
    busy_ms: u64,
    sleep_ms: u64,
    fail_times: u64,
    fail_until_unix_ms: u64,
    fail_percent: u64,
    payload_bytes: Option<usize>,
    headers: Vec<(String, String)>,
    action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ack,
    Reply,
    Reject,
    Retry,
    Trap,
    Panic,
    Loop,
    Alloc,
    Garbage,
    Log,
}

impl Plan {
    /// Each key from the message when it has it, else from the config.
    fn read(message: Option<&Map<String, Value>>, config: &PluginConfig) -> Result<Plan, String> {
        let lookup = |key: &str| message.and_then(|m| m.get(key)).or_else(|| config.value(key));
        let publish = match lookup("publish") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| invalid("publish", "an array of subjects", item)))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid("publish", "an array of subjects", other)),
        };
        let number = |key: &str| match lookup(key) {
            None => Ok(0),
            Some(value) => value.as_u64().ok_or_else(|| invalid(key, "a non-negative integer", value)),
        };
        let action = match lookup("action") {
            None => Action::Ack,
            Some(Value::String(name)) => Action::parse(name)?,
            Some(other) => return Err(invalid("action", "a string", other)),
        };
        let log_calls = match lookup("log_calls") {
            None => false,
            Some(value) => value.as_bool().ok_or_else(|| invalid("log_calls", "a boolean", value))?,
        };
        let payload_bytes = match lookup("payload_bytes") {
            None => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| invalid("payload_bytes", "a non-negative integer", value))?,
            ),
        };
        let headers = match lookup("headers") {
            None => Vec::new(),
            Some(Value::Object(pairs)) => pairs
                .iter()
                .map(|(name, value)| {
                    value.as_str().map(|v| (name.clone(), v.to_owned())).ok_or_else(|| invalid("headers", "an object of strings", value))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid("headers", "an object of strings", other)),
        };
        Ok(Plan {
            publish,
            payload_bytes,
            headers,
            log_calls,
            busy_ms: number("busy_ms")?,
            sleep_ms: number("sleep_ms")?,
            fail_times: number("fail_times")?,
            fail_until_unix_ms: number("fail_until_unix_ms")?,
            fail_percent: number("fail_percent")?,
            action,
        })
    }
}

impl Action {
    fn parse(name: &str) -> Result<Action, String> {
        Ok(match name {
            "ack" => Action::Ack,
            "reply" => Action::Reply,
            "reject" => Action::Reject,
            "retry" => Action::Retry,
            "trap" => Action::Trap,
            "panic" => Action::Panic,
            "loop" => Action::Loop,
            "alloc" => Action::Alloc,
            "garbage" => Action::Garbage,
            "log" => Action::Log,
            other => return Err(format!("faulty: unknown action `{other}` (expected one of {ACTIONS})")),
        })
    }
}

/// A stable hash of a payload (FNV-1a), so a payload's fate does not change between attempts or versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

fn invalid(key: &str, expected: &str, found: &Value) -> String {
    format!("faulty: `{key}` must be {expected}, found `{found}`")
}

fn flag(config: &PluginConfig, key: &str) -> Result<bool, String> {
    config.get::<bool>(key).map(Option::unwrap_or_default).map_err(|e| e.to_string())
}

/// A trap without a panic message: the host sees a bare `unreachable`. Natively (tests) a panic
/// stands in for it.
fn trap(why: &str) -> ! {
    #[cfg(target_arch = "wasm32")]
    {
        let _ = why;
        core::arch::wasm32::unreachable()
    }
    #[cfg(not(target_arch = "wasm32"))]
    panic!("{why}")
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Burn CPU (not sleep): the host's deadline must interrupt running code.
fn busy_wait(duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Never returns; `black_box` keeps the optimiser from proving the loop does nothing.
fn spin_forever() -> ! {
    let mut counter = 0_u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Grow memory 1 MiB at a time, touching every page, until allocation fails (a trap under the
/// host's memory cap).
fn exhaust_memory() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0_u8; CHUNK];
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        hoard.push(std::hint::black_box(chunk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_sdk::testing::MockHost;

    fn msg(body: Value) -> Message {
        Message::builder("faulty.in").json(&body).build()
    }

    #[test]
    fn acks_and_sends_its_publishes_by_default() {
        let body = json!({"publish": ["out.a", "out.b"]});
        let handled = MockHost::new().allow("out.>").call(handle, &msg(body.clone()));
        assert_eq!(handled.outcome, Outcome::Ack);
        let subjects: Vec<_> = handled.sent().iter().map(|p| p.subject.as_str()).collect();
        assert_eq!(subjects, ["out.a", "out.b"]);
        assert_eq!(handled.sent()[0].payload, serde_json::to_vec(&body).expect("json"));
    }

    #[test]
    fn reject_and_retry_drop_publishes() {
        for (action, outcome) in [("reject", Outcome::reject("rejected by request")), ("retry", Outcome::retry("retry by request"))] {
            let handled = MockHost::new().allow(">").call(handle, &msg(json!({"action": action, "publish": ["out.a"]})));
            assert_eq!(handled.outcome, outcome);
            assert_eq!(handled.publishes.len(), 1, "published before deciding");
            assert!(handled.sent().is_empty());
        }
    }

    #[test]
    fn fails_the_first_n_attempts() {
        let host = MockHost::new();
        let body = json!({"fail_times": 2});
        for attempt in 1..=2 {
            let m = Message::builder("a").json(&body).attempt(attempt).build();
            assert_eq!(host.call(handle, &m).outcome, Outcome::retry("fail 2"));
        }
        let m = Message::builder("a").json(&body).attempt(3).build();
        assert_eq!(host.call(handle, &m).outcome, Outcome::Ack);
    }

    #[test]
    fn config_is_the_fallback_and_the_message_wins() {
        let host = MockHost::new().config(json!({"action": "reply"})).init(init).expect("accepted");
        let not_json = Message::builder("a").text("plain").build();
        assert_eq!(host.call(handle, &not_json).outcome, Outcome::reply("plain"));
        assert_eq!(host.call(handle, &msg(json!({"action": "ack"}))).outcome, Outcome::Ack);
        assert_eq!(host.call(handle, &msg(json!({"other": 1}))).outcome, Outcome::reply(r#"{"other":1}"#));
    }

    #[test]
    fn sized_payloads_and_extra_headers_go_on_publishes_and_the_reply() {
        let body = json!({"publish": ["out.a"], "payload_bytes": 3, "headers": {"k": "v"}, "action": "reply"});
        let handled = MockHost::new().allow("out.>").call(handle, &msg(body));
        assert_eq!(handled.outcome, Outcome::reply("xxx").with_header("k", "v"));
        assert_eq!(handled.sent()[0].payload, b"xxx");
        assert_eq!(handled.sent()[0].headers.last(), Some(&("k".to_owned(), "v".to_owned())));
    }

    #[test]
    fn a_refused_publish_names_the_status_code() {
        let host = MockHost::new().allow("out.>").max_payload(100);
        let too_large = host.call(handle, &msg(json!({"publish": ["out.a"], "payload_bytes": 200})));
        match too_large.outcome {
            Outcome::Reject { reason } => assert!(reason.ends_with("max_payload (status -8)"), "{reason}"),
            other => panic!("expected reject, got {other:?}"),
        }
        let bad_header = host.call(handle, &msg(json!({"publish": ["out.a"], "headers": {"bad name": "v"}})));
        match bad_header.outcome {
            Outcome::Reject { reason } => {
                assert!(reason.contains("invalid header name") && reason.ends_with("(status -9)"), "{reason}")
            }
            other => panic!("expected reject, got {other:?}"),
        }
    }

    #[test]
    fn busy_waits() {
        let started = Instant::now();
        let handled = MockHost::new().call(handle, &msg(json!({"busy_ms": 30})));
        assert_eq!(handled.outcome, Outcome::Ack);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn garbage_is_not_an_outcome() {
        let handled = MockHost::new().call(handle, &msg(json!({"action": "garbage"})));
        assert_eq!(handled.outcome_bytes, GARBAGE);
        assert!(handled.decoded_outcome().is_err());
    }

    #[test]
    fn log_action_logs_the_payload() {
        let handled = MockHost::new().call(handle, &msg(json!({"action": "log"})));
        assert_eq!(handled.outcome, Outcome::Ack);
        assert_eq!(handled.logs, [(Level::Info, r#"{"action":"log"}"#.to_owned())]);
    }

    #[test]
    #[should_panic(expected = "faulty: asked to panic")]
    fn panics_on_request() {
        MockHost::new().call(handle, &msg(json!({"action": "panic"})));
    }

    #[test]
    #[should_panic(expected = "faulty: asked to trap")]
    fn traps_on_request() {
        MockHost::new().call(handle, &msg(json!({"action": "trap"})));
    }

    #[test]
    fn bad_keys_and_refused_publishes_reject() {
        let host = MockHost::new();
        let cases = [
            (json!({"action": "dance"}), "faulty: unknown action `dance` (expected one of"),
            (json!({"action": 3}), "faulty: `action` must be a string, found `3`"),
            (json!({"fail_times": -1}), "faulty: `fail_times` must be a non-negative integer, found `-1`"),
            (json!({"publish": "out.a"}), "faulty: `publish` must be an array of subjects, found `\"out.a\"`"),
            (json!({"publish": ["out.a"]}), "faulty: publish to `out.a` refused: subject `out.a` is not on the publish allow-list"),
        ];
        for (body, reason) in cases {
            match host.call(handle, &msg(body.clone())).outcome {
                Outcome::Reject { reason: got } => assert!(got.starts_with(reason), "{body}: {got}"),
                other => panic!("{body}: expected reject, got {other:?}"),
            }
        }
    }

    #[test]
    fn init_refuses_on_request_and_on_bad_values() {
        let refused = MockHost::new().config(json!({"refuse_init": true})).init(init).expect_err("refused");
        assert_eq!(refused, "refused by config");
        let refused = MockHost::new().config(json!({"action": "nope"})).init(init).expect_err("refused");
        assert!(refused.starts_with("faulty: unknown action `nope`"), "{refused}");
        let refused = MockHost::new().config(json!({"refuse_init": "yes"})).init(init).expect_err("refused");
        assert!(refused.starts_with("config key `refuse_init` is invalid"), "{refused}");
        assert!(MockHost::new().config(json!({"refuse_init": false})).init(init).is_ok());
    }

    #[test]
    #[should_panic(expected = "faulty: asked to trap in init")]
    fn traps_in_init_on_request() {
        let _host = MockHost::new().config(json!({"trap_on_init": true})).init(init);
    }
}
