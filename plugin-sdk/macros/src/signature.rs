//! Checks shared by `#[handler]` and `#[init]`: the annotated item must be a plain, synchronous,
//! non-generic Rust function with a return type. All problems are collected into one error.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Signature, Type};

/// Parse the attribute's item as a function, or explain what the attribute expects.
pub(crate) fn parse_fn(item: TokenStream, attribute: &str, expected: &str) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone())
        .map_err(|_| syn::Error::new_spanned(item, format!("`#[{attribute}]` goes on a function: `{expected}`")))
}

/// Refuse attribute arguments: neither macro takes any.
pub(crate) fn no_arguments(attr: &TokenStream, attribute: &str) -> syn::Result<()> {
    if attr.is_empty() { Ok(()) } else { Err(syn::Error::new_spanned(attr, format!("`#[{attribute}]` takes no arguments"))) }
}

/// Collects errors so the author sees every problem of a signature at once.
#[derive(Default)]
pub(crate) struct Problems(Option<syn::Error>);

impl Problems {
    pub(crate) fn add(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn add_span(&mut self, span: proc_macro2::Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The host calls plugins synchronously through a C-like export, so everything that would
/// change the calling convention or need type inference at the export is refused.
pub(crate) fn check_plain(sig: &Signature, what: &str, problems: &mut Problems) {
    if let Some(token) = &sig.asyncness {
        problems.add(token, format!("the {what} cannot be `async`: the host calls it synchronously"));
    }
    if let Some(token) = &sig.unsafety {
        problems.add(token, format!("the {what} cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        problems.add(abi, format!("remove `extern` from the {what}: the macro writes the wasm export"));
    }
    if !sig.generics.params.is_empty() {
        problems.add(&sig.generics, format!("the {what} cannot be generic"));
    }
    if let Some(clause) = &sig.generics.where_clause {
        problems.add(clause, format!("the {what} cannot have a `where` clause"));
    }
    if let Some(variadic) = &sig.variadic {
        problems.add(variadic, format!("the {what} cannot be variadic"));
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        problems.add(receiver, format!("the {what} must be a free function, not a method"));
    }
}

/// The declared return type, or a problem when there is none or it is `impl Trait`.
pub(crate) fn return_type<'a>(sig: &'a Signature, expected: &str, problems: &mut Problems) -> Option<&'a Type> {
    match &sig.output {
        ReturnType::Default => {
            // Point at the parameter list: that is where the missing `-> …` belongs.
            problems.add(&sig.ident, format!("missing return type: expected `{expected}`"));
            None
        }
        ReturnType::Type(_, ty) if matches!(**ty, Type::ImplTrait(_)) => {
            problems.add(ty, format!("return a concrete type, not `impl Trait`: expected `{expected}`"));
            None
        }
        ReturnType::Type(_, ty) => Some(ty),
    }
}

/// The type of a typed (non-`self`) argument.
pub(crate) fn arg_type(arg: &FnArg) -> Option<&Type> {
    match arg {
        FnArg::Typed(typed) => Some(&typed.ty),
        FnArg::Receiver(_) => None,
    }
}

/// `Some(true)` for `&mut T`, `Some(false)` for `&T`, `None` when the type is not a reference.
pub(crate) fn reference_mutability(ty: &Type) -> Option<bool> {
    match ty {
        Type::Reference(reference) => Some(reference.mutability.is_some()),
        Type::Paren(inner) => reference_mutability(&inner.elem),
        Type::Group(inner) => reference_mutability(&inner.elem),
        _ => None,
    }
}

/// Span used for errors about the argument list as a whole.
pub(crate) fn inputs_span(sig: &Signature) -> proc_macro2::Span {
    sig.paren_token.span.join()
}

/// Tell `quote_spanned!` users which span a type's errors should carry.
pub(crate) fn span_of(tokens: &impl Spanned) -> proc_macro2::Span {
    tokens.span()
}

/// `T` of a shared reference `&T`, or `None` when the type is not one.
pub(crate) fn shared_referent(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => Some(&reference.elem),
        Type::Paren(inner) => shared_referent(&inner.elem),
        Type::Group(inner) => shared_referent(&inner.elem),
        _ => None,
    }
}
