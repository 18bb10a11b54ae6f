//! Procedural macros for gort.
//!
//! - `#[gort::main]` turns `async fn main()` into a `fn main()` that builds a
//!   gort runtime and blocks on the body.
//! - `#[gort::test]` does the same for an `async fn` test.
//! - `#[derive(Trace)]` implements the collector's `Trace` for a type whose
//!   `Gc` fields it traces (`#[trace(skip)]` for fields that hold none).
//!
//! Users reach these through the `gort` facade; the expansion names only
//! `::gort::...` paths (override with `crate = "path"`).
//!
//! The expansion logic lives in [`entry`] and works on `proc_macro2` tokens,
//! so it is unit-tested without a compiler in the loop.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod entry;
mod trace;

/// Marks the async entry point of a program run on a gort runtime.
///
/// ```ignore
/// #[gort::main]
/// async fn main() {
///     let answer = gort::spawn(async { 6 * 7 }).await.unwrap();
///     println!("{answer}");
/// }
/// ```
///
/// Options: `worker_threads = N` (the number of Ps; default from
/// `GORT_MAXPROCS`, else the machine's parallelism) and `crate = "path"` when
/// gort is renamed in `Cargo.toml`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Main, args.into(), item.into()).into()
}

/// Marks an async test run on its own gort runtime.
///
/// ```ignore
/// #[gort::test]
/// async fn spawns() {
///     assert_eq!(gort::spawn(async { 1 }).await.unwrap(), 1);
/// }
/// ```
///
/// Takes the same options as `#[gort::main]`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Test, args.into(), item.into()).into()
}

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
