//! Expansion of `#[init]`: keep the author's function, type-check it on every target, and on
//! `wasm32` define the hook that the handler's `switchyard_init` export calls.
//!
//! The function takes either the raw table (`&PluginConfig`) or the plugin's settings (`&S`, the
//! type of the handler's third argument); `__private::InitArg` tells the two apart by type, so
//! the macro never guesses from names.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ItemFn;

use crate::signature::{self, Problems};

const EXPECTED: &str = "fn init(config: &PluginConfig) -> Result<(), E>` or `fn init(settings: &Settings) -> Result<(), E>";
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
    let (arg, ret) = check(&func)?;
    let name = &func.sig.ident;
    let sdk = quote!(::switchyard_sdk);
    let hook = format_ident!("{}", crate::INIT_HOOK, span = name.span());
    // The handler's settings type, by the alias `#[handler]` defines in its module.
    let settings = format_ident!("{}", crate::INIT_HOOK);

    let checks = quote_spanned! {name.span()=>
        const _: fn(&#arg) -> #ret = #name;
    };
    let ret_check = quote_spanned! {signature::span_of(&ret)=>
        const _: () = #sdk::__private::require_init_result::<#ret>();
    };
    let arg_check = quote_spanned! {signature::span_of(&arg)=>
        const _: () = #sdk::__private::require_init_arg::<#arg, #settings>();
    };
    // Shadows the SDK's default that `#[handler]` glob-imports into this module. Should no
    // handler call it (the settings alias imported into another module, say), `dead_code` fires:
    // this init would never run. Spanned at the author's function so the lint is not silenced as
    // macro-internal.
    let hook_fn = quote_spanned! {name.span()=>
        #[cfg(target_arch = "wasm32")]
        #[deny(dead_code)]
        fn #hook(config: &#sdk::PluginConfig) -> ::core::result::Result<#settings, ::std::string::String> {
            <#arg as #sdk::__private::InitArg<#settings>>::run(config, #name)
        }
    };
    Ok(quote! {
        #func
        #checks
        #ret_check
        #arg_check
        #hook_fn
    })
}

/// Validate the signature; return the argument's referent type and the return type.
fn check(func: &ItemFn) -> syn::Result<(&syn::Type, &syn::Type)> {
    let sig = &func.sig;
    let mut problems = Problems::default();
    signature::check_plain(sig, "init function", &mut problems);
    let ret = signature::return_type(sig, RETURNS, &mut problems);
    let args: Vec<_> = sig.inputs.iter().collect();
    let mut arg = None;
    if args.len() != 1 {
        problems.add_span(
            signature::inputs_span(sig),
            format!("expected one argument `(config: &PluginConfig)` or `(settings: &Settings)`, found {}", args.len()),
        );
    } else if let Some(ty) = args.first().and_then(|arg| signature::arg_type(arg)) {
        arg = signature::shared_referent(ty);
        if arg.is_none() {
            problems.add(ty, "the argument must be `&PluginConfig` or `&Settings` (the handler's settings type)");
        }
    }
    problems.finish()?;
    match (arg, ret) {
        (Some(arg), Some(ret)) => Ok((arg, ret)),
        _ => Err(syn::Error::new_spanned(&sig.ident, format!("expected `{EXPECTED}`"))),
    }
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
    fn accepts_a_settings_check() {
        let out = try_expand(
            TokenStream::new(),
            quote!(
                fn setup(s: &Settings) -> Result<(), String> {
                    Ok(())
                }
            ),
        )
        .expect("accepted")
        .to_string();
        assert!(out.contains("< Settings as :: switchyard_sdk :: __private :: InitArg <"), "{out}");
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
