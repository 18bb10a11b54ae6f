//! Procedural macros for gort: `#[gort::main]`, `#[gort::test]`, `#[derive(Trace)]`.

mod trace;

/// `#[derive(Trace)]` for users of the `gort` facade: implements
/// `gort::alloc::Trace` by tracing every field not marked `#[trace(skip)]`.
/// `#[trace(crate = "path")]` on the type names another path to gort-alloc.
#[proc_macro_derive(Trace, attributes(trace))]
pub fn derive_trace(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive_trace_with(input, "::gort::alloc")
}

/// The same derive emitting `::gort_alloc` paths; gort-alloc re-exports it as
/// `gort_alloc::Trace`. Not for direct use.
#[doc(hidden)]
#[proc_macro_derive(__TraceGortAlloc, attributes(trace))]
pub fn derive_trace_gort_alloc(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive_trace_with(input, "::gort_alloc")
}

fn derive_trace_with(
    input: proc_macro::TokenStream,
    default_crate: &str,
) -> proc_macro::TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    trace::expand(input, default_crate)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
