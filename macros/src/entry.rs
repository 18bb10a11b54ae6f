//! Expansion of `#[gort::main]` and `#[gort::test]`.
//!
//! The attributed `async fn` keeps its name, attributes, visibility and return
//! type; its body becomes an `async` block handed to
//! `Runtime::block_on` on a runtime built with the requested options. Misuse
//! (a non-async function, arguments to `main`, generics, unknown options) is
//! reported with a compile error pointing at the offending tokens, and the
//! original item is emitted beside the error so the rest of the crate still
//! type-checks and the user sees one error, not a cascade.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, MetaNameValue, Path, Token};

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Main => "gort::main",
            Kind::Test => "gort::test",
        }
    }
}

/// Options accepted inside the attribute's parentheses.
#[derive(Default)]
struct Options {
    worker_threads: Option<usize>,
    krate: Option<Path>,
}

/// Expands the attribute; errors become `compile_error!` beside the item.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(kind, args, item.clone()) {
        Ok(tokens) => tokens,
        Err(err) => {
            let error = err.to_compile_error();
            quote! { #error #item }
        }
    }
}

fn try_expand(kind: Kind, args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = parse_options(kind, args)?;
    let mut func: ItemFn = syn::parse2(item)?;
    check_signature(kind, &func)?;

    let krate = options.krate.unwrap_or_else(|| syn::parse_quote!(::gort));
    let threads = options
        .worker_threads
        .map(|n| quote! { .worker_threads(#n) });
    let body = &func.block;
    let output_span = func.sig.output.span();
    let what = kind.name();

    func.sig.asyncness = None;
    // The collector's phases reach an execution trace started by
    // `GORT_TRACE` only through the facade, which the runtime cannot call:
    // the entry point connects them (one store of a function pointer).
    let block_on = quote_spanned! {output_span=>
        #krate::trace::connect_gc();
        #krate::Runtime::builder()
            #threads
            .build()
            .unwrap_or_else(|err| ::core::panic!("{}: failed to build the gort runtime: {}", #what, err))
            .block_on(async move #body)
    };
    func.block = syn::parse2(quote! { { #block_on } })?;

    let test_attr = (kind == Kind::Test).then(|| quote! { #[::core::prelude::v1::test] });
    Ok(quote! { #test_attr #func })
}

fn parse_options(kind: Kind, args: TokenStream) -> syn::Result<Options> {
    let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args)?;
    let mut options = Options::default();
    for pair in pairs {
        let name = pair
            .path
            .get_ident()
            .map(|ident| ident.to_string())
            .unwrap_or_default();
        match name.as_str() {
            "worker_threads" => {
                let n = int_literal(&pair.value, "worker_threads")?;
                if n == 0 {
                    return Err(syn::Error::new(
                        pair.value.span(),
                        "`worker_threads` must be at least 1",
                    ));
                }
                options.worker_threads = Some(n);
            }
            "crate" => {
                let path = str_literal(&pair.value, "crate")?;
                options.krate = Some(syn::parse_str(&path).map_err(|_| {
                    syn::Error::new(
                        pair.value.span(),
                        "`crate` must name a path, like \"gort\" or \"my_gort\"",
                    )
                })?);
            }
            _ => {
                return Err(syn::Error::new(
                    pair.path.span(),
                    format!(
                        "unknown option for #[{}]; expected `worker_threads = N` or `crate = \"path\"`",
                        kind.name()
                    ),
                ));
            }
        }
    }
    Ok(options)
}

fn int_literal(value: &Expr, option: &str) -> syn::Result<usize> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int.base10_parse(),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{option}` takes an integer literal, like `{option} = 4`"),
        )),
    }
}

fn str_literal(value: &Expr, option: &str) -> syn::Result<String> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{option}` takes a string literal, like `{option} = \"gort\"`"),
        )),
    }
}

fn check_signature(kind: Kind, func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!(
                "#[{}] needs an `async fn`: the `async` keyword is missing from this function",
                kind.name()
            ),
        ));
    }
    if !sig.inputs.is_empty() {
        let what = match kind {
            Kind::Main => "the main function cannot take arguments",
            Kind::Test => "a test function cannot take arguments",
        };
        return Err(syn::Error::new(sig.inputs.span(), what));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("#[{}] cannot be used on a generic function", kind.name()),
        ));
    }
    if kind == Kind::Main && sig.ident != "main" {
        return Err(syn::Error::new(
            sig.ident.span(),
            "#[gort::main] goes on `async fn main`; use #[gort::test] for tests",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(kind: Kind, args: TokenStream, item: TokenStream) -> String {
        match try_expand(kind, args, item) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn expands_main() {
        let out = try_expand(
            Kind::Main,
            quote!(),
            quote!(
                async fn main() {
                    work().await
                }
            ),
        )
        .unwrap();
        let text = out.to_string();
        assert!(text.contains("fn main ()"), "{text}");
        assert!(
            !text.contains("async fn"),
            "the fn itself must not stay async: {text}"
        );
        assert!(text.contains(":: gort :: Runtime :: builder ()"), "{text}");
        assert!(
            text.contains(":: gort :: trace :: connect_gc ()"),
            "GC phases reach a GORT_TRACE trace: {text}"
        );
        assert!(text.contains("block_on (async move"), "{text}");
    }

    #[test]
    fn keeps_return_type_and_options() {
        let out = try_expand(
            Kind::Main,
            quote!(worker_threads = 4, crate = "my_gort"),
            quote!(
                async fn main() -> std::io::Result<()> {
                    Ok(())
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("-> std :: io :: Result < () >"), "{out}");
        assert!(out.contains("worker_threads (4usize)"), "{out}");
        assert!(out.contains("my_gort :: Runtime"), "{out}");
    }

    #[test]
    fn test_gets_test_attribute() {
        let out = try_expand(
            Kind::Test,
            quote!(),
            quote!(
                async fn it_works() {}
            ),
        )
        .unwrap()
        .to_string();
        assert!(
            out.contains("# [:: core :: prelude :: v1 :: test]"),
            "{out}"
        );
    }

    #[test]
    fn rejects_non_async() {
        let err = error_of(
            Kind::Main,
            quote!(),
            quote!(
                fn main() {}
            ),
        );
        assert!(err.contains("`async` keyword is missing"), "{err}");
    }

    #[test]
    fn rejects_arguments() {
        let err = error_of(
            Kind::Main,
            quote!(),
            quote!(
                async fn main(x: u32) {}
            ),
        );
        assert_eq!(err, "the main function cannot take arguments");
        let err = error_of(
            Kind::Test,
            quote!(),
            quote!(
                async fn t(x: u32) {}
            ),
        );
        assert_eq!(err, "a test function cannot take arguments");
    }

    #[test]
    fn rejects_bad_options() {
        let err = error_of(
            Kind::Main,
            quote!(flavor = "x"),
            quote!(
                async fn main() {}
            ),
        );
        assert!(err.contains("unknown option"), "{err}");
        let err = error_of(
            Kind::Main,
            quote!(worker_threads = "x"),
            quote!(
                async fn main() {}
            ),
        );
        assert!(err.contains("takes an integer literal"), "{err}");
        let err = error_of(
            Kind::Main,
            quote!(worker_threads = 0),
            quote!(
                async fn main() {}
            ),
        );
        assert!(err.contains("at least 1"), "{err}");
    }

    #[test]
    fn rejects_generics_and_wrong_name() {
        let err = error_of(
            Kind::Test,
            quote!(),
            quote!(
                async fn t<T>() {}
            ),
        );
        assert!(err.contains("generic"), "{err}");
        let err = error_of(
            Kind::Main,
            quote!(),
            quote!(
                async fn start() {}
            ),
        );
        assert!(err.contains("goes on `async fn main`"), "{err}");
    }

    #[test]
    fn error_keeps_item() {
        let out = expand(
            Kind::Main,
            quote!(),
            quote!(
                fn main() {}
            ),
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("fn main"), "{out}");
    }
}
