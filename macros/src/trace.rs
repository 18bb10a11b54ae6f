//! `#[derive(Trace)]`: reports every field's handles, except `#[trace(skip)]`.
//!
//! Container attribute `#[trace(crate = "path")]` names the crate that exports
//! `Trace` and `Tracer` (default: `::gort::alloc` for `gort::Trace`,
//! `::gort_alloc` for `gort_alloc::Trace`). A skipped field must be `Send`:
//! the collector drops unreachable values on its own thread (Trace obligation
//! 5), and the generated body checks it. Unions are refused: the macro
//! cannot know which field is live.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericParam, LitStr, Path};

/// Expands the derive with `default_crate` as the path of gort-alloc.
pub(crate) fn expand(input: DeriveInput, default_crate: &str) -> syn::Result<TokenStream> {
    let krate = crate_path(&input, default_crate)?;
    let name = &input.ident;

    let mut generics = input.generics.clone();
    for param in &mut generics.params {
        if let GenericParam::Type(ty) = param {
            ty.bounds.push(syn::parse_quote!(#krate::Trace));
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let body = match &input.data {
        Data::Struct(data) => {
            let (pattern, calls) = destructure(&data.fields, &krate)?;
            quote! {
                let Self #pattern = self;
                #(#calls)*
            }
        }
        Data::Enum(data) => {
            let mut arms = Vec::new();
            for variant in &data.variants {
                let ident = &variant.ident;
                let (pattern, calls) = destructure(&variant.fields, &krate)?;
                arms.push(quote! { Self::#ident #pattern => { #(#calls)* } });
            }
            quote! {
                match self {
                    #(#arms)*
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
        }
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span(),
                "#[derive(Trace)] cannot know which union field is live; implement Trace by hand",
            ));
        }
    };

    Ok(quote! {
        // SAFETY: the derive reports every field not marked #[trace(skip)];
        // a skipped field is the user's promise that it holds no Gc.
        #[automatically_derived]
        unsafe impl #impl_generics #krate::Trace for #name #ty_generics #where_clause {
            #[inline]
            #[allow(unused_variables)]
            fn trace(&self, tracer: &mut #krate::Tracer) {
                #body
            }
        }
    })
}

/// The pattern binding a struct's or variant's fields and the trace calls for
/// those not skipped.
fn destructure(fields: &Fields, krate: &Path) -> syn::Result<(TokenStream, Vec<TokenStream>)> {
    let mut calls = Vec::new();
    let pattern = match fields {
        Fields::Named(named) => {
            let mut binds = Vec::new();
            for field in &named.named {
                let ident = field.ident.as_ref().expect("named field");
                if is_skipped(field)? {
                    binds.push(quote! { #ident });
                    calls.push(assert_send(ident));
                } else {
                    binds.push(quote! { #ident });
                    calls.push(quote! { #krate::Trace::trace(#ident, tracer); });
                }
            }
            quote! { { #(#binds),* } }
        }
        Fields::Unnamed(unnamed) => {
            let mut binds = Vec::new();
            for (index, field) in unnamed.unnamed.iter().enumerate() {
                let ident = format_ident!("field_{}", index);
                if is_skipped(field)? {
                    calls.push(assert_send(&ident));
                    binds.push(quote! { #ident });
                } else {
                    calls.push(quote! { #krate::Trace::trace(#ident, tracer); });
                    binds.push(quote! { #ident });
                }
            }
            quote! { ( #(#binds),* ) }
        }
        Fields::Unit => quote! {},
    };
    Ok((pattern, calls))
}

/// A compile-time check that a skipped field may be dropped on the collector
/// thread (Trace obligation 5).
fn assert_send(ident: &syn::Ident) -> TokenStream {
    quote! {
        {
            fn skipped_field_must_be_send<T: ?Sized + ::core::marker::Send>(_: &T) {}
            skipped_field_must_be_send(#ident);
        }
    }
}

fn is_skipped(field: &syn::Field) -> syn::Result<bool> {
    let mut skip = false;
    for attr in &field.attrs {
        if !attr.path().is_ident("trace") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown field attribute; expected #[trace(skip)]"))
            }
        })?;
    }
    Ok(skip)
}

fn crate_path(input: &DeriveInput, default_crate: &str) -> syn::Result<Path> {
    let mut path: Option<Path> = None;
    for attr in &input.attrs {
        if !attr.path().is_ident("trace") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let value: LitStr = meta.value()?.parse()?;
                path = Some(value.parse()?);
                Ok(())
            } else {
                Err(meta.error("unknown container attribute; expected #[trace(crate = \"path\")]"))
            }
        })?;
    }
    match path {
        Some(path) => Ok(path),
        None => syn::parse_str(default_crate).map_err(|e| syn::Error::new(Span::call_site(), e)),
    }
}
