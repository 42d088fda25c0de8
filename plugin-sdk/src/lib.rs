//! Write Switchyard plugins in Rust.
//!
//! A plugin is a `cdylib` built for `wasm32-wasip1`. It exports one handler, written as a plain
//! Rust function and marked with [`handler`]; the macro emits the module's wasm exports (ABI
//! version, allocator, init, handle) and keeps the function callable natively so it can be
//! unit-tested with [`testing::MockHost`] and plain `cargo test`.
//!
//! ```
//! use switchyard_sdk::prelude::*;
//!
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, PublishError> {
//!     ctx.publish("audit.seen", msg.payload.clone())?;
//!     Ok(match msg.reply {
//!         Some(_) => Outcome::reply(msg.payload.clone()).with_header("handled-by", "doc"),
//!         None => Outcome::Ack,
//!     })
//! }
//!
//! # #[cfg(not(target_arch = "wasm32"))] {
//! use switchyard_sdk::testing::MockHost;
//! let handled = MockHost::new().allow("audit.>").call(handle, &Message::builder("in").text("hi").build());
//! assert_eq!(handled.outcome, Outcome::Ack);
//! assert_eq!(handled.sent()[0].subject, "audit.seen");
//! # }
//! ```
//!
//! Handler shapes: `fn(&Message, &mut Context) -> Outcome`, `fn(&Message) -> Outcome`,
//! `fn(&Message, &mut Context, &Settings) -> Outcome`, and any of them returning
//! `Result<Outcome, E>` with `E: Display`, where an `Err` becomes
//! `Outcome::Retry { reason: e.to_string() }`.
//!
//! `Settings` is the plugin's own `serde::Deserialize` type: the SDK parses the plugin's
//! `config` table into it once per instance, at init, refusing a table that does not fit with
//! serde's message, and hands the parsed value to every call. An optional [`init`] function,
//! `fn(&Settings) -> Result<(), E>` (after parsing) or `fn(&PluginConfig) -> Result<(), E>`
//! (before), checks what serde cannot; its `Err` text is the refusal the operator sees. It must
//! sit in the same module as the handler.
//!
//! ```
//! use switchyard_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     target: String,
//! }
//!
//! #[init]
//! fn init(settings: &Settings) -> Result<(), String> {
//!     if settings.target.is_empty() { Err("`target` must not be empty".into()) } else { Ok(()) }
//! }
//!
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, PublishError> {
//!     ctx.publish(&settings.target, msg.payload.clone())?;
//!     Ok(Outcome::Ack)
//! }
//!
//! # #[cfg(not(target_arch = "wasm32"))] {
//! use switchyard_sdk::testing::MockHost;
//! let host = MockHost::new().allow(">").config(serde_json::json!({"target": "out"})).init(init).expect("accepted");
//! assert_eq!(host.call(handle, &Message::builder("in").build()).sent()[0].subject, "out");
//! let refused = MockHost::new().config(serde_json::json!({"taget": "out"})).init(init).expect_err("typo");
//! assert_eq!(refused, "config does not fit: unknown field `taget`, expected `target`");
//! # }
//! ```
//!
//! The macro refuses anything else at compile time:
//!
//! ```compile_fail
//! use switchyard_sdk::prelude::*;
//! #[handler]
//! async fn handle(msg: &Message) -> Outcome { Outcome::Ack }
//! ```
//!
//! ```compile_fail
//! use switchyard_sdk::prelude::*;
//! #[handler]
//! fn handle(msg: &String, ctx: &mut Context) -> Outcome { Outcome::Ack }
//! ```
//!
//! ```compile_fail
//! use switchyard_sdk::prelude::*;
//! #[handler]
//! fn handle(msg: &Message) -> u32 { 0 }
//! ```
//!
//! ```compile_fail
//! use switchyard_sdk::prelude::*;
//! #[init]
//! fn setup(config: &PluginConfig) -> u32 { 0 }
//! ```
//!
//! An init function must take the table or the handler's settings type:
//!
//! ```compile_fail
//! use switchyard_sdk::prelude::*;
//! #[derive(serde::Deserialize)]
//! struct Settings { a: u8 }
//! #[derive(serde::Deserialize)]
//! struct Other { b: u8 }
//! #[init]
//! fn setup(other: &Other) -> Result<(), String> { Ok(()) }
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Outcome { Outcome::Ack }
//! ```
//!
//! and sit in the handler's module, where the handler's export can call it:
//!
//! ```compile_fail
//! use switchyard_sdk::prelude::*;
//! mod checks {
//!     use switchyard_sdk::prelude::*;
//!     #[init]
//!     fn setup(config: &PluginConfig) -> Result<(), String> { Ok(()) }
//! }
//! #[handler]
//! fn handle(msg: &Message) -> Outcome { Outcome::Ack }
//! ```
//!
//! `docs/ABI.md` describes the wire contract this crate implements; `docs/PLUGINS.md` is the
//! author guide.

// Lets the macros' `::switchyard_sdk::…` paths resolve inside this crate's own tests.
#[cfg(test)]
extern crate self as switchyard_sdk;

mod builder;
mod config;
mod context;
mod envelope;
mod host;
pub mod ids;
pub mod kv;
mod logging;
mod message;
mod outcome;
mod publish;
mod request;
mod stop;
mod timestamp;
mod trace;
mod validate;

#[doc(hidden)]
pub mod __private;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use builder::MessageBuilder;
pub use config::{ConfigError, PluginConfig};
pub use context::{Context, PublishError};
pub use envelope::{Envelope, EnvelopeError, EnvelopeKind, Expect, Metadata, SchemaVersion};
pub use kv::{Bucket, KvError};
pub use logging::{Level, log};
pub use message::{MessageExt, PayloadError};
pub use outcome::{IntoOutcome, OutcomeExt};
pub use publish::PublishExt;
pub use request::RequestError;
pub use stop::{Stop, StopExt};
pub use switchyard_abi::{self as abi, Delivery, Header, Message, Outcome, Publish};
pub use switchyard_sdk_macros::{handler, init};
pub use timestamp::{Timestamp, TimestampError};
pub use trace::{TraceContext, TraceError};
pub use validate::{FieldProblem, Validate, ValidationError, Validator, validate, validated_json};

/// Everything a handler usually needs: `use switchyard_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Bucket, ConfigError, Context, Delivery, Envelope, EnvelopeError, EnvelopeKind, Expect, Header, KvError, Level, Message, MessageExt,
        Outcome, OutcomeExt, PayloadError, PluginConfig, Publish, PublishError, PublishExt, RequestError, SchemaVersion, Stop, StopExt,
        Timestamp, TraceContext, Validate, ValidationError, Validator, handler, init, validated_json,
    };
}
