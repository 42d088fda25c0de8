//! Glue the `#[handler]` and `#[init]` macros expand to. Not API: it changes without notice.
//!
//! The target-independent half lives here ([`dispatch`], [`configure`]) so the mock host runs
//! exactly the code the wasm exports run; the raw-memory half is in `guest` (wasm32 only).

use std::any::Any;
use std::fmt::Display;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use switchyard_abi::{Message, Outcome};

use crate::{Context, IntoOutcome, PluginConfig};

#[cfg(target_arch = "wasm32")]
mod guest;
#[cfg(target_arch = "wasm32")]
pub use guest::{abi_features, abi_version, alloc, free, handle, handle_batch, init};

/// Compile-time check emitted by `#[handler]` for its return type.
pub const fn require_into_outcome<T: IntoOutcome>() {}

/// Compile-time check emitted by `#[init]` for its return type.
pub const fn require_init_result<T: IntoInitResult>() {}

/// Compile-time check emitted by `#[handler]` for its settings type.
pub const fn require_settings<T: Settings>() {}

/// Compile-time check emitted by `#[init]` for its argument, against the handler's settings.
pub const fn require_init_arg<A: InitArg<S> + ?Sized, S: Settings>() {}

/// What a handler's settings type must be: read from the `config` table with serde, owning its
/// data (it lives as long as the instance).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the plugin's settings",
    label = "derive `serde::Deserialize` for it, with owned fields (`String`, not `&str`)"
)]
pub trait Settings: DeserializeOwned + 'static {}

impl<T: DeserializeOwned + 'static> Settings for T {}

/// The settings of a handler that takes none: any table fits.
pub type NoSettings = serde::de::IgnoredAny;

/// Read the plugin's settings from the table; the refusal names the bad key as serde reports it.
fn parse<S: Settings>(config: &PluginConfig) -> Result<S, String> {
    config.deserialize().map_err(|e| e.to_string())
}

/// What an `#[init]` function may take: the raw table, checked before the settings are parsed,
/// or the handler's settings `S`, checked after.
#[diagnostic::on_unimplemented(
    message = "an init function cannot take `&{Self}` here",
    label = "take `&PluginConfig` or the handler's settings, `&{S}`"
)]
pub trait InitArg<S: Settings> {
    /// Run `init` on this argument and return the settings it accepted.
    fn run<R: IntoInitResult>(config: &PluginConfig, init: impl FnOnce(&Self) -> R) -> Result<S, String>;
}

impl<S: Settings> InitArg<S> for PluginConfig {
    fn run<R: IntoInitResult>(config: &PluginConfig, init: impl FnOnce(&Self) -> R) -> Result<S, String> {
        init(config).into_init_result()?;
        parse(config)
    }
}

impl<S: Settings> InitArg<S> for S {
    fn run<R: IntoInitResult>(config: &PluginConfig, init: impl FnOnce(&Self) -> R) -> Result<S, String> {
        let settings = parse(config)?;
        init(&settings).into_init_result()?;
        Ok(settings)
    }
}

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
    /// Without an `#[init]` function, every configuration that fits the settings is accepted.
    pub fn switchyard_init_must_share_a_module_with_the_handler<S: super::Settings>(config: &crate::PluginConfig) -> Result<S, String> {
        super::parse(config)
    }
}

/// What init accepted: the table (`ctx.config()`) and the settings parsed from it.
#[derive(Debug, Clone)]
pub struct Configured {
    config: Rc<PluginConfig>,
    settings: Rc<dyn Any>,
}

impl Default for Configured {
    fn default() -> Self {
        Self::unparsed(PluginConfig::empty())
    }
}

impl Configured {
    /// A table whose settings are parsed on first use (the mock host before, or without, init).
    pub(crate) fn unparsed(config: PluginConfig) -> Self {
        Self { config: Rc::new(config), settings: Rc::new(()) }
    }

    /// The settings as `S`: those init parsed, or, when init parsed none of that type (the mock
    /// host without `init`), parsed from the table now.
    fn settings<S: Settings>(&self) -> Result<Rc<S>, String> {
        match Rc::clone(&self.settings).downcast::<S>() {
            Ok(settings) => Ok(settings),
            Err(_) => parse(&self.config).map(Rc::new),
        }
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
pub(crate) fn dispatch<S: Settings>(
    input: &[u8],
    configured: &Configured,
    handler: impl FnOnce(&Message, &mut Context, &S) -> Outcome,
) -> Dispatched {
    match switchyard_abi::decode::<Message>(input) {
        Ok(msg) => run(&msg, configured, handler),
        Err(e) => {
            let outcome = Outcome::Reject { reason: format!("message did not decode: {e}") };
            Dispatched { bytes: encode_outcome(&outcome), outcome }
        }
    }
}

/// Run the handler on a decoded message and encode its outcome.
pub(crate) fn run<S: Settings>(
    msg: &Message,
    configured: &Configured,
    handler: impl FnOnce(&Message, &mut Context, &S) -> Outcome,
) -> Dispatched {
    let mut ctx = Context::new(Rc::clone(&configured.config));
    let outcome = match configured.settings::<S>() {
        // Unreachable behind the daemon, whose init refuses such a table; the message is fine,
        // the configuration must be fixed and the dead letter replayed.
        Err(e) => Outcome::Reject { reason: format!("plugin configuration: {e}") },
        Ok(settings) => handler(msg, &mut ctx, &settings),
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

/// Read the configuration bytes and run the init hook, which returns the settings it accepted;
/// `Err` is the refusal text.
pub(crate) fn configure<S: Settings>(input: &[u8], hook: impl FnOnce(&PluginConfig) -> Result<S, String>) -> Result<Configured, String> {
    let config = PluginConfig::from_msgpack(input).map_err(|e| e.to_string())?;
    match hook(&config) {
        Ok(settings) => Ok(Configured { config: Rc::new(config), settings: Rc::new(settings) }),
        // An empty refusal would read as "no reason"; say at least that it was refused.
        Err(reason) if reason.is_empty() => Err("init refused the configuration".to_owned()),
        Err(reason) => Err(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutcomeExt;
    use serde::Deserialize;
    use serde_json::json;

    fn empty() -> Configured {
        Configured::default()
    }

    fn encoded(config: serde_json::Value) -> Vec<u8> {
        switchyard_abi::encode(&config).expect("encode")
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Mine {
        target: String,
    }

    #[test]
    fn undecodable_message_is_rejected_not_trapped() {
        let mut called = false;
        let out = dispatch(b"\xc1 not messagepack", &empty(), |_, _, _: &NoSettings| {
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
        let out = dispatch(&msg, &empty(), |m, _, _: &NoSettings| Outcome::reply(m.subject.clone()));
        assert_eq!(switchyard_abi::decode::<Outcome>(&out.bytes).expect("decode"), Outcome::reply("a.b"));
    }

    #[test]
    fn override_replaces_the_encoded_bytes() {
        let msg = switchyard_abi::encode(&Message::default()).expect("encode");
        let out = dispatch(&msg, &empty(), |_, ctx, _: &NoSettings| {
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
        let bytes = encoded(json!({"k": 1}));
        let check = |c: &PluginConfig| if c.is_empty() { Err("empty".into()) } else { Ok(serde::de::IgnoredAny) };
        assert!(configure(&bytes, check).is_ok());
        assert_eq!(configure::<NoSettings>(&bytes, |_| Err("no".into())).err(), Some("no".to_owned()));
        assert_eq!(configure::<NoSettings>(&bytes, |_| Err(String::new())).err(), Some("init refused the configuration".to_owned()));
        let err = configure(b"\x93\x01\x02\x03", |_| Ok(serde::de::IgnoredAny)).expect_err("array");
        assert!(err.starts_with("config is not a map"), "{err}");
    }

    #[test]
    fn settings_are_parsed_once_at_init_and_handed_to_every_call() {
        let configured =
            configure(&encoded(json!({"target": "out"})), default_init::switchyard_init_must_share_a_module_with_the_handler::<Mine>)
                .expect("fits");
        let parsed = configured.settings::<Mine>().expect("parsed");
        assert!(Rc::ptr_eq(&parsed, &configured.settings::<Mine>().expect("again")), "not parsed again");
        let msg = switchyard_abi::encode(&Message::default()).expect("encode");
        let out = dispatch(&msg, &configured, |_, _, settings: &Mine| Outcome::reply(settings.target.clone()));
        assert_eq!(out.outcome, Outcome::reply("out"));

        let refused = configure(
            &encoded(json!({"target": "out", "tagret": 1})),
            default_init::switchyard_init_must_share_a_module_with_the_handler::<Mine>,
        );
        assert_eq!(refused.err().as_deref(), Some("config does not fit: unknown field `tagret`, expected `target`"));
    }

    #[test]
    fn an_init_check_runs_on_the_table_before_or_the_settings_after_parsing() {
        let config = PluginConfig::from_serialize(&json!({"target": ""})).expect("config");
        let raw = <PluginConfig as InitArg<Mine>>::run(&config, |c| if c.is_empty() { Err("empty table") } else { Ok(()) });
        assert_eq!(raw.expect("accepted").target, "");
        let typed = <Mine as InitArg<Mine>>::run(&config, |s| if s.target.is_empty() { Err("`target` is blank") } else { Ok(()) });
        assert_eq!(typed.err().as_deref(), Some("`target` is blank"));
        let missing = PluginConfig::empty();
        let raw_first = <PluginConfig as InitArg<Mine>>::run(&missing, |_| Err("missing `target`"));
        assert_eq!(raw_first.err().as_deref(), Some("missing `target`"), "the raw check runs first");
    }

    #[test]
    fn a_handler_whose_settings_init_did_not_parse_rejects() {
        let msg = switchyard_abi::encode(&Message::default()).expect("encode");
        let out = dispatch(&msg, &empty(), |_, _, _: &Mine| Outcome::Ack);
        assert_eq!(out.outcome, Outcome::reject("plugin configuration: config does not fit: missing field `target`"));
    }

    #[test]
    fn init_results_convert() {
        assert_eq!(Err::<(), _>("bad `x`").into_init_result(), Err("bad `x`".to_owned()));
        assert_eq!(Ok::<(), String>(()).into_init_result(), Ok(()));
    }
}
