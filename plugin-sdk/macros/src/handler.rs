//! Expansion of `#[handler]`: keep the author's function as written (so native tests call it
//! directly), type-check its shape on every target, and on `wasm32` emit the module's exports.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use switchyard_abi::names;
use syn::{ItemFn, LitStr};

use crate::signature::{self, Problems};

const EXPECTED: &str = "fn handle(msg: &Message, ctx: &mut Context) -> Outcome";
const RETURNS: &str = "Outcome` or `Result<Outcome, E>";

/// Whether the handler takes the `Context` argument.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    MessageOnly,
    WithContext,
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
    let (fn_ptr, call) = match shape {
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

    let exports = exports(&call);
    Ok(quote! {
        #func
        #checks
        #ret_check
        #exports
    })
}

/// Validate the signature; return its shape and return type.
fn check(func: &ItemFn) -> syn::Result<(Shape, &syn::Type)> {
    let sig = &func.sig;
    let mut problems = Problems::default();
    signature::check_plain(sig, "handler", &mut problems);
    let ret = signature::return_type(sig, RETURNS, &mut problems);

    let args: Vec<_> = sig.inputs.iter().collect();
    let shape = match args.len() {
        1 => Some(Shape::MessageOnly),
        2 => Some(Shape::WithContext),
        n => {
            problems.add_span(
                signature::inputs_span(sig),
                format!("expected `(msg: &Message)` or `(msg: &Message, ctx: &mut Context)`, found {n} arguments"),
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

/// The wasm exports of the whole module. The handler owns them because a plugin has exactly one
/// handler; `switchyard_init` is always exported and calls the `#[init]` function when there is
/// one in this module, or the SDK's accept-everything default otherwise (see `INIT_HOOK`).
fn exports(call: &TokenStream) -> TokenStream {
    let lit = |name: &str| LitStr::new(name, Span::call_site());
    let (abi_version, features, alloc, free, init, handle) =
        (lit(names::ABI_VERSION), lit(names::FEATURES), lit(names::ALLOC), lit(names::FREE), lit(names::INIT), lit(names::HANDLE));
    let hook = format_ident!("{}", crate::INIT_HOOK);
    quote! {
        #[cfg(target_arch = "wasm32")]
        #[allow(unused_imports)]
        use ::switchyard_sdk::__private::default_init::*;

        // Naming a wasm export takes `#[unsafe(export_name)]`, which the workspace's
        // `unsafe_code = "deny"` refuses; each export is a thin wrapper over the SDK's glue.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            #[unsafe(export_name = #abi_version)]
            extern "C" fn __switchyard_abi_version() -> i32 {
                ::switchyard_sdk::__private::abi_version()
            }

            #[unsafe(export_name = #features)]
            extern "C" fn __switchyard_abi_features() -> i32 {
                ::switchyard_sdk::__private::abi_features()
            }

            #[unsafe(export_name = #alloc)]
            extern "C" fn __switchyard_alloc(len: i32) -> i32 {
                ::switchyard_sdk::__private::alloc(len)
            }

            #[unsafe(export_name = #free)]
            extern "C" fn __switchyard_free(ptr: i32, len: i32) {
                // SAFETY: the ABI lets the host free only what `switchyard_alloc` returned.
                unsafe { ::switchyard_sdk::__private::free(ptr, len) }
            }

            #[unsafe(export_name = #init)]
            extern "C" fn __switchyard_init(ptr: i32, len: i32) -> i64 {
                // SAFETY: the ABI says the host wrote `len` bytes at `ptr` from `switchyard_alloc`.
                unsafe { ::switchyard_sdk::__private::init(ptr, len, #hook) }
            }

            #[unsafe(export_name = #handle)]
            extern "C" fn __switchyard_handle(ptr: i32, len: i32) -> i64 {
                // SAFETY: the ABI says the host wrote `len` bytes at `ptr` from `switchyard_alloc`.
                unsafe {
                    ::switchyard_sdk::__private::handle(ptr, len, |msg, ctx| {
                        ::switchyard_sdk::IntoOutcome::into_outcome(#call)
                    })
                }
            }
        };
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
        assert!(err.contains("found 3 arguments"), "{err}");
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
    fn export_names_come_from_the_abi() {
        let out = exports(&quote!(h(msg, ctx))).to_string();
        for name in [names::ABI_VERSION, names::FEATURES, names::ALLOC, names::FREE, names::INIT, names::HANDLE] {
            assert!(out.contains(&format!("\"{name}\"")), "{name} missing from {out}");
        }
    }
}
