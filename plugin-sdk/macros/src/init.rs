//! Expansion of `#[init]`: keep the author's function, type-check it on every target, and on
//! `wasm32` define the hook that the handler's `switchyard_init` export calls.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ItemFn;

use crate::signature::{self, Problems};

const EXPECTED: &str = "fn init(config: &PluginConfig) -> Result<(), E>";
const RETURNS: &str = "Result<(), E>` where `E: Display";

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote! { #error #item }
        }
    }
}

fn try_expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    signature::no_arguments(&attr, "init")?;
    let func = signature::parse_fn(item, "init", EXPECTED)?;
    let ret = check(&func)?;
    let name = &func.sig.ident;
    let sdk = quote!(::switchyard_sdk);
    let hook = format_ident!("{}", crate::INIT_HOOK, span = name.span());

    let checks = quote_spanned! {name.span()=>
        const _: fn(&#sdk::PluginConfig) -> #ret = #name;
    };
    let ret_check = quote_spanned! {signature::span_of(&ret)=>
        const _: () = #sdk::__private::require_init_result::<#ret>();
    };
    // Shadows the SDK's default that `#[handler]` glob-imports into this module. If no handler
    // in this module calls it, `dead_code` fires: that is the only way the author learns that
    // this init would never run. Spanned at the author's function so the lint is not silenced
    // as macro-internal.
    let hook_fn = quote_spanned! {name.span()=>
        #[cfg(target_arch = "wasm32")]
        #[deny(dead_code)]
        fn #hook(config: &#sdk::PluginConfig) -> ::core::result::Result<(), ::std::string::String> {
            #sdk::__private::IntoInitResult::into_init_result(#name(config))
        }
    };
    Ok(quote! {
        #func
        #checks
        #ret_check
        #hook_fn
    })
}

fn check(func: &ItemFn) -> syn::Result<&syn::Type> {
    let sig = &func.sig;
    let mut problems = Problems::default();
    signature::check_plain(sig, "init function", &mut problems);
    let ret = signature::return_type(sig, RETURNS, &mut problems);
    let args: Vec<_> = sig.inputs.iter().collect();
    if args.len() != 1 {
        problems.add_span(signature::inputs_span(sig), format!("expected one argument `(config: &PluginConfig)`, found {}", args.len()));
    } else if let Some(ty) = args.first().and_then(|arg| signature::arg_type(arg))
        && signature::reference_mutability(ty) != Some(false)
    {
        problems.add(ty, "the argument must be `&PluginConfig`");
    }
    problems.finish()?;
    ret.ok_or_else(|| syn::Error::new_spanned(&sig.ident, format!("expected `{EXPECTED}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(item: TokenStream) -> String {
        match try_expand(TokenStream::new(), item) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join(" | "),
        }
    }

    #[test]
    fn accepts_a_config_check() {
        let out = try_expand(
            TokenStream::new(),
            quote!(
                fn setup(c: &PluginConfig) -> Result<(), String> {
                    Ok(())
                }
            ),
        )
        .expect("accepted")
        .to_string();
        assert!(out.contains(crate::INIT_HOOK), "{out}");
    }

    #[test]
    fn refuses_bad_signatures() {
        assert!(
            error_of(quote!(
                fn setup() -> Result<(), String> {
                    Ok(())
                }
            ))
            .contains("found 0")
        );
        assert!(
            error_of(quote!(
                fn setup(c: PluginConfig) -> Result<(), String> {
                    Ok(())
                }
            ))
            .contains("`&PluginConfig`")
        );
        assert!(
            error_of(quote!(
                fn setup(c: &PluginConfig) {}
            ))
            .contains("missing return type")
        );
        assert!(
            error_of(quote!(
                async fn setup(c: &PluginConfig) -> Result<(), String> {
                    Ok(())
                }
            ))
            .contains("`async`")
        );
        assert!(
            error_of(quote!(
                const X: u8 = 1;
            ))
            .contains("goes on a function")
        );
    }
}
