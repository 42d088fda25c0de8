//! A native mock of the Switchyard host, so a plugin's own `cargo test` exercises its handler
//! without wasm or NATS.
//!
//! [`MockHost::call`] runs the handler through the same glue as the wasm export (the message is
//! encoded and decoded, the outcome encoded), and records publishes and logs with the daemon's
//! rules: invalid subjects are refused, only subjects on the allow-list may be published to (an
//! empty allow-list allows nothing), and nothing can be published during init.
//!
//! ```
//! use serde_json::json;
//! use switchyard_sdk::prelude::*;
//! use switchyard_sdk::testing::MockHost;
//!
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, PublishError> {
//!     let to = ctx.config().get::<String>("to").ok().flatten().unwrap_or_default();
//!     ctx.publish(&to, msg.payload.clone())?;
//!     Ok(Outcome::Ack)
//! }
//!
//! let host = MockHost::new().allow("out.*").config(json!({"to": "out.a"}));
//! let handled = host.call(handle, &Message::builder("in").text("x").build());
//! assert_eq!(handled.outcome, Outcome::Ack);
//! assert_eq!(handled.sent()[0].subject, "out.a");
//!
//! let refused = MockHost::new().config(json!({"to": "elsewhere"})).call(handle, &Message::builder("in").build());
//! assert!(matches!(refused.outcome, Outcome::Retry { .. }));
//! ```

use std::marker::PhantomData;

use serde::Serialize;
use switchyard_abi::{Message, Outcome, Publish};

use crate::__private::{Configured, InitArg, IntoInitResult, NoSettings, Settings, configure, dispatch};
use crate::{Context, IntoOutcome, Level, OutcomeExt, PluginConfig};

pub(crate) mod mock;

/// A handler in any of the shapes `#[handler]` accepts; `Args` only tells the shapes apart.
pub trait Handler<Args> {
    /// The settings the handler takes ([`NoSettings`] when it takes none).
    type Settings: Settings;
    fn call(self, msg: &Message, ctx: &mut Context, settings: &Self::Settings) -> Outcome;
}

/// Marker for handlers taking `(&Message, &mut Context)`.
#[derive(Debug)]
pub struct WithContext;

/// Marker for handlers taking `(&Message)`.
#[derive(Debug)]
pub struct MessageOnly;

/// Marker for handlers taking `(&Message, &mut Context, &S)`.
#[derive(Debug)]
pub struct WithSettings<S>(PhantomData<S>);

impl<F, R> Handler<WithContext> for F
where
    F: FnOnce(&Message, &mut Context) -> R,
    R: IntoOutcome,
{
    type Settings = NoSettings;
    fn call(self, msg: &Message, ctx: &mut Context, _settings: &NoSettings) -> Outcome {
        self(msg, ctx).into_outcome()
    }
}

impl<F, R> Handler<MessageOnly> for F
where
    F: FnOnce(&Message) -> R,
    R: IntoOutcome,
{
    type Settings = NoSettings;
    fn call(self, msg: &Message, _ctx: &mut Context, _settings: &NoSettings) -> Outcome {
        self(msg).into_outcome()
    }
}

impl<F, R, S> Handler<WithSettings<S>> for F
where
    F: FnOnce(&Message, &mut Context, &S) -> R,
    R: IntoOutcome,
    S: Settings,
{
    type Settings = S;
    fn call(self, msg: &Message, ctx: &mut Context, settings: &S) -> Outcome {
        self(msg, ctx, settings).into_outcome()
    }
}

/// An init function in either shape `#[init]` accepts; `Args` only tells the shapes apart.
pub trait Init<Args> {
    /// Run the function as the daemon's `switchyard_init` would on these configuration bytes.
    #[doc(hidden)]
    fn configure(self, config: &[u8]) -> Result<Configured, String>;
}

/// Marker for init functions taking `(&PluginConfig)`.
#[derive(Debug)]
pub struct ConfigArg;

/// Marker for init functions taking the settings, `(&S)`.
#[derive(Debug)]
pub struct SettingsArg<S>(PhantomData<S>);

impl<F, R> Init<ConfigArg> for F
where
    F: FnOnce(&PluginConfig) -> R,
    R: IntoInitResult,
{
    fn configure(self, config: &[u8]) -> Result<Configured, String> {
        // The handler's settings type is not known here: `call` parses them from the table.
        configure(config, |table| <PluginConfig as InitArg<NoSettings>>::run(table, self))
    }
}

impl<F, R, S> Init<SettingsArg<S>> for F
where
    F: FnOnce(&S) -> R,
    R: IntoInitResult,
    S: Settings,
{
    fn configure(self, config: &[u8]) -> Result<Configured, String> {
        configure(config, |table| <S as InitArg<S>>::run(table, self))
    }
}

/// The mock host: allow-list, configuration and limits for the calls made through it.
#[derive(Debug, Clone, Default)]
pub struct MockHost {
    allow: Vec<String>,
    config_bytes: Vec<u8>,
    configured: Configured,
    publish_limit: Option<usize>,
    max_payload: Option<usize>,
    init_logs: Vec<(Level, String)>,
    buckets: mock::Buckets,
    responders: std::rc::Rc<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl MockHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a publish allow-list pattern (NATS wildcards: `*` one token, `>` the rest).
    pub fn allow(mut self, pattern: impl Into<String>) -> Self {
        self.allow.push(pattern.into());
        self
    }

    /// Declare a key-value bucket the plugin may use (`ctx.kv(name)`), empty, in memory, shared by
    /// every call through this host (and its clones). Buckets not declared answer
    /// `KvError::NotAllowed`, as the daemon does for one not on the plugin's `kv` list.
    pub fn bucket(self, name: impl Into<String>) -> Self {
        self.buckets.borrow_mut().entry(name.into()).or_default();
        self
    }

    /// Write `value` at `key` of the declared bucket `bucket` (see [`MockHost::bucket`]), as
    /// another plugin or service would have: state for the handler under test to read.
    ///
    /// # Panics
    /// When the bucket was not declared, or `key` is not a valid key.
    pub fn kv_put(&self, bucket: &str, key: &str, value: impl AsRef<[u8]>) -> &Self {
        let installed = mock::Installed::new(mock::State { buckets: self.buckets.clone(), ..mock::State::default() });
        let written = crate::host::kv_write(bucket, key, value.as_ref(), crate::host::Write::Put);
        drop(installed);
        if let Err(code) = written {
            panic!("mock host: cannot put `{key}` in bucket `{bucket}`: {}", switchyard_abi::status::describe(code));
        }
        self
    }

    /// Answer requests to `subject` (`ctx.request`) with `reply`. A subject without a responder
    /// answers `RequestError::NoResponders`.
    pub fn responder(mut self, subject: impl Into<String>, reply: impl Into<Vec<u8>>) -> Self {
        std::rc::Rc::make_mut(&mut self.responders).insert(subject.into(), reply.into());
        self
    }

    /// Cap the number of publishes per call; one more fails with `PublishError::LimitExceeded`.
    pub fn publish_limit(mut self, limit: usize) -> Self {
        self.publish_limit = Some(limit);
        self
    }

    /// Refuse publishes larger than `bytes` (headers and payload, as NATS counts them) with
    /// `PublishError::TooLarge`, as the daemon does with its server's `max_payload`. (The daemon
    /// also counts the `Nats-Msg-Id` header it adds to the publishes of a JetStream message.)
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    /// Set the plugin configuration from any value that serializes to a map: a struct,
    /// `serde_json::json!({...})`, a `toml::Table`. Handlers see it through `ctx.config()` and,
    /// when they take settings, parsed as those, even without [`MockHost::init`].
    ///
    /// # Panics
    /// When `value` does not serialize to a map with string keys (the test's input is wrong).
    pub fn config(mut self, value: impl Serialize) -> Self {
        let checked = switchyard_abi::encode(&value)
            .map_err(|e| e.to_string())
            .and_then(|bytes| PluginConfig::from_msgpack(&bytes).map(|config| (bytes, config)).map_err(|e| e.to_string()));
        match checked {
            Ok((bytes, config)) => {
                self.config_bytes = bytes;
                self.configured = Configured::unparsed(config);
                self
            }
            Err(e) => panic!("mock host: {e}"),
        }
    }

    /// Run the plugin's init function on the configuration, as the daemon does before the first
    /// message: a `&PluginConfig` function sees the table, a `&Settings` function the settings
    /// parsed from it (a table that does not fit them is refused first, as in the daemon). `Err`
    /// holds the refusal text the operator would see.
    pub fn init<F, Args>(mut self, init: F) -> Result<Self, String>
    where
        F: Init<Args>,
    {
        let installed = mock::Installed::new(mock::State::default());
        let result = init.configure(&self.config_bytes);
        self.init_logs = installed.finish().logs;
        self.configured = result?;
        Ok(self)
    }

    /// Lines the init function logged.
    pub fn init_logs(&self) -> &[(Level, String)] {
        &self.init_logs
    }

    /// Handle one message. Panics in the handler propagate (where the daemon would see a trap).
    /// A handler that takes settings gets those `init` parsed, or else the configuration parsed
    /// now; should it not fit, the outcome is a reject saying why (the daemon's init would have
    /// refused the configuration).
    pub fn call<H, Args>(&self, handler: H, msg: &Message) -> Handled
    where
        H: Handler<Args>,
    {
        let input = match switchyard_abi::encode(msg) {
            Ok(bytes) => bytes,
            Err(e) => panic!("mock host: message does not encode: {e}"),
        };
        let installed = mock::Installed::new(mock::State {
            allow: self.allow.clone(),
            publish_limit: self.publish_limit,
            max_payload: self.max_payload,
            can_publish: true,
            buckets: self.buckets.clone(),
            responders: self.responders.clone(),
            ..mock::State::default()
        });
        let dispatched = dispatch(&input, &self.configured, |msg, ctx, settings| handler.call(msg, ctx, settings));
        let recorded = installed.finish();
        Handled { outcome: dispatched.outcome, publishes: recorded.publishes, logs: recorded.logs, outcome_bytes: dispatched.bytes }
    }
}

/// What one call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The outcome the handler returned.
    pub outcome: Outcome,
    /// Every publish the host accepted into its buffer, whatever the outcome.
    pub publishes: Vec<Publish>,
    /// Every line logged during the call.
    pub logs: Vec<(Level, String)>,
    /// The exact bytes `switchyard_handle` would return to the daemon.
    pub outcome_bytes: Vec<u8>,
}

impl Handled {
    /// The publishes the daemon would actually send: all of them after Ack or Reply, none after
    /// Retry or Reject.
    pub fn sent(&self) -> &[Publish] {
        if self.outcome.is_success() { &self.publishes } else { &[] }
    }

    /// Whether a line at `level` containing `needle` was logged.
    pub fn logged(&self, level: Level, needle: &str) -> bool {
        self.logs.iter().any(|(at, line)| *at == level && line.contains(needle))
    }

    /// The outcome as the daemon would decode it from [`Handled::outcome_bytes`].
    pub fn decoded_outcome(&self) -> Result<Outcome, String> {
        switchyard_abi::decode(&self.outcome_bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageExt, PublishError};
    use serde_json::json;

    fn publish_to(msg: &Message, ctx: &mut Context) -> Result<Outcome, PublishError> {
        for subject in msg.text().unwrap_or_default().split(',') {
            ctx.publish(subject, "x")?;
        }
        Ok(Outcome::Ack)
    }

    #[test]
    fn allow_list_is_enforced_and_empty_allows_nothing() {
        let msg = Message::builder("in").text("orders.eu.new").build();
        let handled = MockHost::new().call(publish_to, &msg);
        assert_eq!(handled.outcome, Outcome::retry("subject `orders.eu.new` is not on the publish allow-list"));
        assert!(handled.publishes.is_empty());

        let handled = MockHost::new().allow("orders.>").call(publish_to, &msg);
        assert_eq!(handled.outcome, Outcome::Ack);
        assert_eq!(handled.sent().len(), 1);
        assert_eq!(handled.decoded_outcome(), Ok(Outcome::Ack));
    }

    #[test]
    fn invalid_subjects_and_limits() {
        let handled = MockHost::new().allow(">").call(publish_to, &Message::builder("in").text("a.*").build());
        assert_eq!(handled.outcome, Outcome::retry("invalid publish subject `a.*`"));
        let handled = MockHost::new().allow(">").publish_limit(1).call(publish_to, &Message::builder("in").text("a,b").build());
        assert_eq!(handled.outcome, Outcome::retry("publish limit exceeded for this message (at subject `b`)"));
        assert_eq!(handled.publishes.len(), 1);
    }

    #[test]
    fn bad_headers_and_oversized_publishes_are_refused_like_the_daemon_does() {
        fn send(msg: &Message, ctx: &mut Context) -> Result<Outcome, PublishError> {
            let name = msg.text().unwrap_or_default();
            ctx.publish_with_headers("a", [(name, "v")], vec![b'x'; 10])?;
            Ok(Outcome::Ack)
        }
        let host = MockHost::new().allow(">").max_payload(40);
        let handled = host.call(send, &Message::builder("in").text("bad name").build());
        assert_eq!(
            handled.outcome,
            Outcome::retry(
                "publish to `a` has a header nats cannot carry: invalid header name \"bad name\": \
                 a header name may hold only printable ascii characters other than `:`"
            )
        );
        // "NATS/1.0\r\n" (10) + "long-name: v\r\n" (14) + "\r\n" (2) + 10 bytes = 36; a 16-byte name: 43.
        assert_eq!(host.call(send, &Message::builder("in").text("long-name").build()).outcome, Outcome::Ack);
        let handled = host.call(send, &Message::builder("in").text("much-longer-name").build());
        assert_eq!(handled.outcome, Outcome::retry("publish to `a` is larger than the server's max_payload"));
        assert!(handled.publishes.is_empty());
    }

    #[test]
    fn retry_and_reject_send_nothing() {
        let handled = MockHost::new().allow(">").call(
            |_: &Message, ctx: &mut Context| {
                let _sent = ctx.publish("a", "x");
                Outcome::reject("no")
            },
            &Message::default(),
        );
        assert_eq!(handled.publishes.len(), 1);
        assert!(handled.sent().is_empty());
    }

    #[test]
    fn config_and_init_and_logs() {
        fn init(config: &PluginConfig) -> Result<(), String> {
            crate::log(Level::Info, "configuring");
            config.require::<String>("name").map(|_| ()).map_err(|e| e.to_string())
        }
        fn handle(_: &Message, ctx: &mut Context) -> Outcome {
            ctx.info(format!("name={}", ctx.config().get::<String>("name").ok().flatten().unwrap_or_default()));
            // No message is attached during init, but here publishing is allowed by the list.
            Outcome::Ack
        }
        let refused = MockHost::new().config(json!({"other": 1})).init(init).expect_err("name missing");
        assert_eq!(refused, "missing config key `name`");

        let host = MockHost::new().config(json!({"name": "ada"})).init(init).expect("accepted");
        assert_eq!(host.init_logs(), [(Level::Info, "configuring".to_owned())]);
        let handled = host.call(handle, &Message::default());
        assert!(handled.logged(Level::Info, "name=ada"), "{:?}", handled.logs);
    }

    #[test]
    fn settings_are_parsed_at_init_and_handed_to_the_handler() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            name: String,
        }
        fn init(settings: &Settings) -> Result<(), String> {
            if settings.name.is_empty() { Err("`name` must not be empty".to_owned()) } else { Ok(()) }
        }
        fn handle(_: &Message, ctx: &mut Context, settings: &Settings) -> Outcome {
            ctx.info(format!("name={}", settings.name));
            Outcome::Ack
        }
        let host = MockHost::new().config(json!({"name": "ada"})).init(init).expect("accepted");
        assert!(host.call(handle, &Message::default()).logged(Level::Info, "name=ada"));
        let refused = MockHost::new().config(json!({"name": "ada", "nmae": 1})).init(init).expect_err("unknown key");
        assert_eq!(refused, "config does not fit: unknown field `nmae`, expected `name`");
        assert_eq!(MockHost::new().config(json!({"name": ""})).init(init).err().as_deref(), Some("`name` must not be empty"));

        // Without init, the handler still gets the settings, parsed from the table.
        let handled = MockHost::new().config(json!({"name": "bob"})).call(handle, &Message::default());
        assert!(handled.logged(Level::Info, "name=bob"), "{:?}", handled.logs);
        let handled = MockHost::new().call(handle, &Message::default());
        assert_eq!(handled.outcome, Outcome::reject("plugin configuration: config does not fit: missing field `name`"));
    }

    #[test]
    fn publish_during_init_is_unavailable() {
        let err = MockHost::new()
            .allow(">")
            .init(|_: &PluginConfig| -> Result<(), String> {
                let mut ctx = Context::new(std::rc::Rc::new(PluginConfig::empty()));
                ctx.publish("a", "x").map_err(|e| e.to_string())
            })
            .expect_err("no publish in init");
        assert_eq!(err, "publish is not available here (only while handling a message)");
    }

    #[test]
    fn message_only_handlers_and_the_macro_work_natively() {
        #[crate::handler]
        fn echo(msg: &Message) -> Outcome {
            Outcome::reply(msg.payload.clone())
        }
        let handled = MockHost::new().call(echo, &Message::builder("a").text("hi").build());
        assert_eq!(handled.outcome, Outcome::reply("hi"));
        // The user's function stays callable as written.
        assert_eq!(echo(&Message::default()), Outcome::reply(""));
    }

    #[test]
    fn state_is_restored_after_a_panicking_handler() {
        let result =
            std::panic::catch_unwind(|| MockHost::new().allow(">").call(|_: &Message| -> Outcome { panic!("boom") }, &Message::default()));
        assert!(result.is_err());
        // No mock is left installed: a publish outside a call is unavailable again.
        assert_eq!(mock::publish(&Publish { subject: "a".into(), ..Publish::default() }), switchyard_abi::status::UNAVAILABLE);
    }
}
