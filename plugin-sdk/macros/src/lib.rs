//! Procedural macros of the Switchyard plugin SDK: `#[handler]` and `#[init]`.
//!
//! Plugin authors use them through `switchyard_sdk::handler` and `switchyard_sdk::init`; the
//! generated code names `::switchyard_sdk`, so a plugin must depend on the SDK under that name.
//! Every mistake in the annotated function is reported as a `syn::Error` pointing at the
//! offending tokens, never as a panic inside the macro.

use proc_macro::TokenStream;

mod handler;
mod imports;
mod init;
mod signature;

/// Name of the function the exported `switchyard_init` calls, and of the type alias for the
/// handler's settings type. `#[init]` defines the function next to the author's; the SDK provides
/// a default (parse the settings, accept them) that `#[handler]` glob-imports, so an explicit
/// definition in the same module shadows the default. `#[handler]` defines the alias, and
/// `#[init]` refers to it: the name is the error an author sees (``cannot find type `…` in this
/// scope``) when `#[init]` sits in another module than `#[handler]` and so would never run.
const INIT_HOOK: &str = "switchyard_init_must_share_a_module_with_the_handler";

/// Export a plain Rust function as the plugin's message handler.
///
/// Accepted shapes: `fn(&Message, &mut Context) -> Outcome`, `fn(&Message) -> Outcome`,
/// `fn(&Message, &mut Context, &S) -> Outcome` where `S: Deserialize` is the plugin's settings
/// (parsed from its `config` table once, at init), and any of those returning
/// `Result<Outcome, E>` with `E: Display` (an `Err` becomes a retry).
/// See the `switchyard_sdk` crate documentation for the full contract.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(attr.into(), item.into()).into()
}

/// Mark `fn(&PluginConfig) -> Result<(), E>` or `fn(&S) -> Result<(), E>` (`E: Display`, `S` the
/// handler's settings type) as the plugin's configuration check.
///
/// It runs once per instance before any message (a `&PluginConfig` check before the settings are
/// parsed, a `&S` check after); an `Err` refuses the configuration and its text is what the
/// operator sees. Must live in the same module as the `#[handler]` function.
#[proc_macro_attribute]
pub fn init(attr: TokenStream, item: TokenStream) -> TokenStream {
    init::expand(attr.into(), item.into()).into()
}

/// The SDK's declarations of the host functions, generated from the ABI's import table (an
/// attribute such as `#[link(wasm_import_module = …)]` takes only a literal, never a constant).
/// For the SDK itself; not API.
#[doc(hidden)]
#[proc_macro]
pub fn __host_imports(input: TokenStream) -> TokenStream {
    imports::expand(input.into()).into()
}
