//! Expansion of `#[handler]`: keep the author's function as written (so native tests call it
//! directly), type-check its shape on every target, and on `wasm32` emit the module's exports.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use switchyard_abi::functions::{self, Function, ValType};
use switchyard_abi::names;
use syn::{ItemFn, LitStr};

use crate::signature::{self, Problems};

const EXPECTED: &str = "fn handle(msg: &Message, ctx: &mut Context) -> Outcome";
const RETURNS: &str = "Outcome` or `Result<Outcome, E>";

/// Which arguments the handler takes besides the message.
enum Shape<'a> {
    MessageOnly,
    WithContext,
    /// `(&Message, &mut Context, &S)`: `S` is the plugin's settings type.
    WithSettings(&'a syn::Type),
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(attr, item.clone()) {
        Ok(tokens) => tokens,
        // Keep the item so the author's other code still resolves and only our error shows.
        Err(error) => {
            let error = error.to_compile_error();
            quote! { #error #item }
        }
    }
}

fn try_expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    signature::no_arguments(&attr, "handler")?;
    let func = signature::parse_fn(item, "handler", EXPECTED)?;
    let (shape, ret) = check(&func)?;
    let name = &func.sig.ident;

    let sdk = quote!(::switchyard_sdk);
    let settings = match &shape {
        Shape::WithSettings(ty) => quote!(#ty),
        Shape::MessageOnly | Shape::WithContext => quote!(#sdk::__private::NoSettings),
    };
    let (fn_ptr, call) = match &shape {
        Shape::WithSettings(ty) => (quote!(fn(&#sdk::Message, &mut #sdk::Context, &#ty) -> #ret), quote!(#name(msg, ctx, settings))),
        Shape::WithContext => (quote!(fn(&#sdk::Message, &mut #sdk::Context) -> #ret), quote!(#name(msg, ctx))),
        Shape::MessageOnly => (quote!(fn(&#sdk::Message) -> #ret), quote!(#name(msg))),
    };
    // Type checks on every target, so `cargo test` on the host catches what the wasm build
    // would: the arguments must really be the SDK's types and the return must be an outcome.
    // The fn-pointer coercion also counts as a use of the function in native builds, where
    // the exports below do not exist.
    let ret_span = signature::span_of(&ret);
    let checks = quote_spanned! {name.span()=>
        const _: #fn_ptr = #name;
    };
    let ret_check = quote_spanned! {ret_span=>
        const _: () = #sdk::__private::require_into_outcome::<#ret>();
    };
    let settings_check = match &shape {
        Shape::WithSettings(ty) => quote_spanned! {signature::span_of(ty)=>
            const _: () = #sdk::__private::require_settings::<#ty>();
        },
        Shape::MessageOnly | Shape::WithContext => TokenStream::new(),
    };
    // The settings type under a name `#[init]` refers to, so its hook parses the same type; not
    // finding it is also how an `#[init]` in another module fails to compile.
    let alias = format_ident!("{}", crate::INIT_HOOK);
    let settings_alias = quote! {
        #[allow(non_camel_case_types, dead_code)]
        type #alias = #settings;
    };

    let exports = exports(&call);
    Ok(quote! {
        #func
        #checks
        #ret_check
        #settings_check
        #settings_alias
        #exports
    })
}

/// Validate the signature; return its shape and return type.
fn check(func: &ItemFn) -> syn::Result<(Shape<'_>, &syn::Type)> {
    let sig = &func.sig;
    let mut problems = Problems::default();
    signature::check_plain(sig, "handler", &mut problems);
    let ret = signature::return_type(sig, RETURNS, &mut problems);

    let args: Vec<_> = sig.inputs.iter().collect();
    let shape = match args.len() {
        1 => Some(Shape::MessageOnly),
        2 => Some(Shape::WithContext),
        3 => match args.get(2).and_then(|arg| signature::arg_type(arg)).and_then(signature::shared_referent) {
            Some(settings) => Some(Shape::WithSettings(settings)),
            None => {
                problems.add(args[2], "the third argument must be `&S`, a reference to the plugin's settings type");
                None
            }
        },
        n => {
            problems.add_span(
                signature::inputs_span(sig),
                format!(
                    "expected `(msg: &Message)`, `(msg: &Message, ctx: &mut Context)` or \
                     `(msg: &Message, ctx: &mut Context, settings: &Settings)`, found {n} arguments"
                ),
            );
            None
        }
    };
    if let Some(ty) = args.first().and_then(|arg| signature::arg_type(arg))
        && signature::reference_mutability(ty) != Some(false)
    {
        problems.add(ty, "the first argument must be `&Message`");
    }
    if let Some(ty) = args.get(1).and_then(|arg| signature::arg_type(arg))
        && signature::reference_mutability(ty) != Some(true)
    {
        problems.add(ty, "the second argument must be `&mut Context`");
    }
    problems.finish()?;
    match (shape, ret) {
        (Some(shape), Some(ret)) => Ok((shape, ret)),
        // `finish` returned Ok, so both were recorded as present.
        _ => Err(syn::Error::new(Span::call_site(), format!("expected `{EXPECTED}`"))),
    }
}

/// The wasm exports of the whole module, one per entry of the ABI's export table. The handler
/// owns them because a plugin has exactly one handler; `switchyard_init` is always exported and
/// runs the `#[init]` function when there is one in this module, or the SDK's default (parse the
/// settings, accept them) otherwise (see `INIT_HOOK`).
fn exports(call: &TokenStream) -> TokenStream {
    let exports = functions::EXPORTS.iter().map(|function| export(function, call));
    quote! {
        #[cfg(target_arch = "wasm32")]
        #[allow(unused_imports)]
        use ::switchyard_sdk::__private::default_init::*;

        // Naming a wasm export takes `#[unsafe(export_name)]`, which the workspace's
        // `unsafe_code = "deny"` refuses; each export is a thin wrapper over the SDK's glue.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            #(#exports)*
        };
    }
}

/// One export: the signature from the table, the body calling the SDK's glue for it. Should the
/// glue's Rust signature not match the table, the plugin does not compile.
fn export(function: &Function, call: &TokenStream) -> TokenStream {
    let glue = quote!(::switchyard_sdk::__private);
    let hook = format_ident!("{}", crate::INIT_HOOK);
    let args: Vec<_> = (0..function.params.len()).map(|i| format_ident!("arg{i}")).collect();
    // SAFETY (for the generated blocks below): the ABI says the host passes buffers it got from
    // `switchyard_alloc`, with `len` bytes written, and hands them over with the call.
    let body = match function.name {
        names::ABI_VERSION => quote!(#glue::abi_version()),
        names::FEATURES => quote!(#glue::abi_features()),
        names::ALLOC => quote!(#glue::alloc(#(#args),*)),
        names::FREE => quote!(unsafe { #glue::free(#(#args),*) }),
        names::INIT => quote!(unsafe { #glue::init::<#hook>(#(#args,)* #hook) }),
        names::HANDLE => quote! {
            unsafe { #glue::handle::<#hook>(#(#args,)* |msg, ctx, settings| ::switchyard_sdk::IntoOutcome::into_outcome(#call)) }
        },
        names::HANDLE_BATCH => quote! {
            unsafe { #glue::handle_batch::<#hook>(#(#args,)* |msg, ctx, settings| ::switchyard_sdk::IntoOutcome::into_outcome(#call)) }
        },
        other => {
            let message = format!("the SDK has no glue for the ABI export `{other}`");
            return quote!(::core::compile_error!(#message););
        }
    };
    let name = LitStr::new(function.name, Span::call_site());
    let ident = format_ident!("__{}", function.name);
    let params = function.params.iter().map(|&ty| wasm_type(ty));
    let results = match function.results {
        [] => TokenStream::new(),
        [ty] => {
            let ty = wasm_type(*ty);
            quote!(-> #ty)
        }
        _ => return quote!(::core::compile_error!("multi-value results are not part of the ABI");),
    };
    quote! {
        #[unsafe(export_name = #name)]
        extern "C" fn #ident(#(#args: #params),*) #results {
            #body
        }
    }
}

/// The Rust type of a wasm value type.
pub(crate) fn wasm_type(ty: ValType) -> TokenStream {
    match ty {
        ValType::I32 => quote!(i32),
        ValType::I64 => quote!(i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(attr: TokenStream, item: TokenStream) -> String {
        match try_expand(attr, item) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join(" | "),
        }
    }

    #[test]
    fn accepts_the_three_shapes() {
        for item in [
            quote!(
                fn h(msg: &Message, ctx: &mut Context) -> Outcome {
                    Outcome::Ack
                }
            ),
            quote!(
                fn h(msg: &Message) -> Outcome {
                    Outcome::Ack
                }
            ),
            quote!(
                pub fn h(m: &Message, c: &mut Context) -> Result<Outcome, String> {
                    Ok(Outcome::Ack)
                }
            ),
        ] {
            let out = try_expand(TokenStream::new(), item).expect("accepted").to_string();
            assert!(out.contains("switchyard_handle"), "{out}");
        }
    }

    #[test]
    fn message_only_shape_calls_without_context() {
        let out = try_expand(
            TokenStream::new(),
            quote!(
                fn h(m: &Message) -> Outcome {
                    Outcome::Ack
                }
            ),
        )
        .expect("accepted")
        .to_string();
        assert!(out.contains("h (msg)"), "{out}");
    }

    #[test]
    fn refuses_async_generic_and_missing_return_all_at_once() {
        let err = error_of(
            TokenStream::new(),
            quote!(
                async fn h<T>(m: &Message) {}
            ),
        );
        assert!(err.contains("cannot be `async`"), "{err}");
        assert!(err.contains("cannot be generic"), "{err}");
        assert!(err.contains("missing return type"), "{err}");
    }

    #[test]
    fn refuses_wrong_argument_count_and_types() {
        let err = error_of(
            TokenStream::new(),
            quote!(
                fn h() -> Outcome {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("found 0 arguments"), "{err}");
        let err = error_of(
            TokenStream::new(),
            quote!(
                fn h(a: &Message, b: &mut Context, c: u8) -> Outcome {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("third argument must be `&S`"), "{err}");
        let err = error_of(
            TokenStream::new(),
            quote!(
                fn h(a: &Message, b: &mut Context, c: &u8, d: u8) -> Outcome {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("found 4 arguments"), "{err}");
        let err = error_of(
            TokenStream::new(),
            quote!(
                fn h(m: Message, c: &Context) -> Outcome {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("first argument must be `&Message`"), "{err}");
        assert!(err.contains("second argument must be `&mut Context`"), "{err}");
    }

    #[test]
    fn refuses_non_functions_and_arguments() {
        let err = error_of(
            TokenStream::new(),
            quote!(
                struct S;
            ),
        );
        assert!(err.contains("goes on a function"), "{err}");
        let err = error_of(
            quote!(name = "x"),
            quote!(
                fn h(m: &Message) -> Outcome {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("takes no arguments"), "{err}");
    }

    #[test]
    fn refuses_unsafe_extern_methods_and_impl_trait() {
        let err = error_of(
            TokenStream::new(),
            quote!(
                unsafe extern "C" fn h(m: &Message) -> Outcome {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("cannot be `unsafe`") && err.contains("remove `extern`"), "{err}");
        let err = error_of(
            TokenStream::new(),
            quote!(
                fn h(&self, m: &Message) -> Outcome {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("not a method"), "{err}");
        let err = error_of(
            TokenStream::new(),
            quote!(
                fn h(m: &Message) -> impl Into<Outcome> {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("not `impl Trait`"), "{err}");
    }

    #[test]
    fn every_export_of_the_abi_table_is_generated_with_its_signature() {
        let out = exports(&quote!(h(msg, ctx))).to_string();
        assert!(!out.contains("compile_error"), "{out}");
        for function in functions::EXPORTS {
            let params: Vec<_> = function.params.iter().enumerate().map(|(i, &ty)| format!("arg{i} : {}", wasm_type(ty))).collect();
            let results: String = function.results.iter().map(|&ty| format!(" -> {}", wasm_type(ty))).collect();
            let expected = format!("extern \"C\" fn __{} ({}){results}", function.name, params.join(" , "));
            assert!(out.contains(&format!("export_name = \"{}\"", function.name)), "{} missing from {out}", function.name);
            assert!(out.contains(&expected), "{expected} missing from {out}");
        }
    }

    #[test]
    fn a_third_argument_is_the_settings_type() {
        let out = try_expand(
            TokenStream::new(),
            quote!(
                fn h(m: &Message, c: &mut Context, s: &Settings) -> Outcome {
                    Outcome::Ack
                }
            ),
        )
        .expect("accepted")
        .to_string();
        assert!(out.contains("h (msg , ctx , settings)"), "{out}");
        assert!(out.contains(&format!("type {} = Settings", crate::INIT_HOOK)), "{out}");
        let err = error_of(
            TokenStream::new(),
            quote!(
                fn h(m: &Message, c: &mut Context, s: Settings) -> Outcome {
                    Outcome::Ack
                }
            ),
        );
        assert!(err.contains("third argument must be `&S`"), "{err}");
    }
}
