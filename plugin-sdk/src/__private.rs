//! Glue the `#[handler]` and `#[init]` macros expand to. Not API: it changes without notice.
//!
//! The target-independent half lives here ([`dispatch`], [`configure`]) so the mock host runs
//! exactly the code the wasm exports run; the raw-memory half is in `guest` (wasm32 only).

use std::fmt::Display;
use std::rc::Rc;

use switchyard_abi::{Message, Outcome};

use crate::{Context, IntoOutcome, PluginConfig};

#[cfg(target_arch = "wasm32")]
mod guest;
#[cfg(target_arch = "wasm32")]
pub use guest::{abi_features, abi_version, alloc, free, handle, init};

/// Compile-time check emitted by `#[handler]` for its return type.
pub const fn require_into_outcome<T: IntoOutcome>() {}

/// Compile-time check emitted by `#[init]` for its return type.
pub const fn require_init_result<T: IntoInitResult>() {}

/// What an init function may return; the `Err` text is the refusal the operator sees.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an init function's result",
    label = "return `Result<(), E>` where `E: Display`"
)]
pub trait IntoInitResult {
    fn into_init_result(self) -> Result<(), String>;
}

impl<E: Display> IntoInitResult for Result<(), E> {
    fn into_init_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Glob-imported by `#[handler]`; an `#[init]` in the same module shadows it.
pub mod default_init {
    /// Without an `#[init]` function, every configuration is accepted.
    pub fn switchyard_init_must_share_a_module_with_the_handler(_config: &crate::PluginConfig) -> Result<(), String> {
        Ok(())
    }
}

/// The outcome a handler produced and the exact bytes `switchyard_handle` hands the host.
pub(crate) struct Dispatched {
    // Only the mock host reports the typed outcome; the wasm export returns the bytes.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) outcome: Outcome,
    pub(crate) bytes: Vec<u8>,
}

/// Decode one message, run the handler, encode its outcome. A message that does not decode is
/// rejected rather than trapping: retrying the same bytes cannot help, and a trap would hide why.
pub(crate) fn dispatch(input: &[u8], config: Rc<PluginConfig>, handler: impl FnOnce(&Message, &mut Context) -> Outcome) -> Dispatched {
    let mut ctx = Context::new(config);
    let outcome = match switchyard_abi::decode::<Message>(input) {
        Ok(msg) => handler(&msg, &mut ctx),
        Err(e) => Outcome::Reject { reason: format!("message did not decode: {e}") },
    };
    let bytes = ctx.take_outcome_override().unwrap_or_else(|| encode_outcome(&outcome));
    Dispatched { outcome, bytes }
}

/// `{"kind":"retry"}`: what the host gets in the (unreachable in practice) case that an outcome
/// does not encode, so a plugin never returns an empty buffer.
const RETRY_FALLBACK: &[u8] = b"\x81\xa4kind\xa5retry";

fn encode_outcome(outcome: &Outcome) -> Vec<u8> {
    switchyard_abi::encode(outcome).unwrap_or_else(|_| RETRY_FALLBACK.to_vec())
}

/// Read the configuration bytes and run the init hook; `Err` is the refusal text.
pub(crate) fn configure(input: &[u8], hook: impl FnOnce(&PluginConfig) -> Result<(), String>) -> Result<PluginConfig, String> {
    let config = PluginConfig::from_msgpack(input).map_err(|e| e.to_string())?;
    match hook(&config) {
        Ok(()) => Ok(config),
        // An empty refusal would read as "no reason"; say at least that it was refused.
        Err(reason) if reason.is_empty() => Err("init refused the configuration".to_owned()),
        Err(reason) => Err(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutcomeExt;

    fn empty() -> Rc<PluginConfig> {
        Rc::new(PluginConfig::empty())
    }

    #[test]
    fn undecodable_message_is_rejected_not_trapped() {
        let mut called = false;
        let out = dispatch(b"\xc1 not messagepack", empty(), |_, _| {
            called = true;
            Outcome::Ack
        });
        assert!(!called, "the handler must not see a message that did not decode");
        match &out.outcome {
            Outcome::Reject { reason } => assert!(reason.starts_with("message did not decode: "), "{reason}"),
            other => panic!("expected reject, got {other:?}"),
        }
        assert_eq!(switchyard_abi::decode::<Outcome>(&out.bytes).expect("valid outcome"), out.outcome);
    }

    #[test]
    fn dispatch_encodes_the_handlers_outcome() {
        let msg = switchyard_abi::encode(&Message { subject: "a.b".into(), ..Message::default() }).expect("encode");
        let out = dispatch(&msg, empty(), |m, _| Outcome::reply(m.subject.clone()));
        assert_eq!(switchyard_abi::decode::<Outcome>(&out.bytes).expect("decode"), Outcome::reply("a.b"));
    }

    #[test]
    fn override_replaces_the_encoded_bytes() {
        let msg = switchyard_abi::encode(&Message::default()).expect("encode");
        let out = dispatch(&msg, empty(), |_, ctx| {
            ctx.__override_outcome_bytes(vec![0xc1]);
            Outcome::Ack
        });
        assert_eq!(out.bytes, [0xc1]);
        assert!(switchyard_abi::decode::<Outcome>(&out.bytes).is_err());
    }

    #[test]
    fn retry_fallback_is_a_valid_outcome() {
        assert_eq!(switchyard_abi::decode::<Outcome>(RETRY_FALLBACK).expect("decode"), Outcome::retry(""));
    }

    #[test]
    fn configure_reports_refusals_and_bad_bytes() {
        let bytes = switchyard_abi::encode(&serde_json::json!({"k": 1})).expect("encode");
        assert!(configure(&bytes, |c| if c.is_empty() { Err("empty".into()) } else { Ok(()) }).is_ok());
        assert_eq!(configure(&bytes, |_| Err("no".into())), Err("no".to_owned()));
        assert_eq!(configure(&bytes, |_| Err(String::new())), Err("init refused the configuration".to_owned()));
        let err = configure(b"\x93\x01\x02\x03", |_| Ok(())).expect_err("array");
        assert!(err.starts_with("config is not a map"), "{err}");
    }

    #[test]
    fn init_results_convert() {
        assert_eq!(Err::<(), _>("bad `x`").into_init_result(), Err("bad `x`".to_owned()));
        assert_eq!(Ok::<(), String>(()).into_init_result(), Ok(()));
    }
}
