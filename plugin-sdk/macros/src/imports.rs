//! Expansion of `__host_imports!()`: the `extern` block of the host functions, one per entry of
//! the ABI's import table, each declared as `host_<name>`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use switchyard_abi::{IMPORT_MODULE, functions};
use syn::LitStr;

use crate::handler::wasm_type;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    if !input.is_empty() {
        return syn::Error::new_spanned(input, "`__host_imports!` takes no arguments").to_compile_error();
    }
    let module = LitStr::new(IMPORT_MODULE, Span::call_site());
    let functions = functions::IMPORTS.iter().map(|function| {
        let name = LitStr::new(function.name, Span::call_site());
        let ident = format_ident!("host_{}", function.name);
        let args = (0..function.params.len()).map(|i| format_ident!("arg{i}"));
        let params = function.params.iter().map(|&ty| wasm_type(ty));
        let results = function.results.iter().map(|&ty| wasm_type(ty));
        quote! {
            #[link_name = #name]
            fn #ident(#(#args: #params),*) #(-> #results)*;
        }
    });
    quote! {
        #[link(wasm_import_module = #module)]
        unsafe extern "C" {
            #(#functions)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_import_of_the_abi_table_is_declared() {
        let out = expand(TokenStream::new()).to_string();
        assert!(out.contains(&format!("wasm_import_module = \"{IMPORT_MODULE}\"")), "{out}");
        for function in functions::IMPORTS {
            assert!(out.contains(&format!("link_name = \"{}\"] fn host_{}", function.name, function.name)), "{out}");
        }
    }
}
