//! Procedural macros of the Switchyard plugin SDK: `#[handler]` and `#[init]`.
//!
//! Plugin authors use them through `switchyard_sdk::handler` and `switchyard_sdk::init`; the
//! generated code names `::switchyard_sdk`, so a plugin must depend on the SDK under that name.
//! Every mistake in the annotated function is reported as a `syn::Error` pointing at the
//! offending tokens, never as a panic inside the macro.

use proc_macro::TokenStream;

mod handler;
mod init;
mod signature;

/// Name of the function the exported `switchyard_init` calls. `#[init]` defines it next to the
/// author's function; the SDK provides an accept-everything default that `#[handler]` glob-imports,
/// so an explicit definition in the same module shadows the default. The name is also the error
/// an author sees (`function … is never used`) when `#[init]` sits in another module than
/// `#[handler]` and so would silently never run.
const INIT_HOOK: &str = "switchyard_init_must_share_a_module_with_the_handler";

/// Export a plain Rust function as the plugin's message handler.
///
/// Accepted shapes: `fn(&Message, &mut Context) -> Outcome`, `fn(&Message) -> Outcome`, and
/// either of those returning `Result<Outcome, E>` with `E: Display` (an `Err` becomes a retry).
/// See the `switchyard_sdk` crate documentation for the full contract.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(attr.into(), item.into()).into()
}

/// Mark `fn(&PluginConfig) -> Result<(), E>` (`E: Display`) as the plugin's configuration check.
///
/// It runs once per instance before any message; an `Err` refuses the configuration and its
/// text is what the operator sees. Must live in the same module as the `#[handler]` function.
#[proc_macro_attribute]
pub fn init(attr: TokenStream, item: TokenStream) -> TokenStream {
    init::expand(attr.into(), item.into()).into()
}
