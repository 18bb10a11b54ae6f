//! Procedural macros for gort: `#[gort::main]`, `#[gort::test]`, `#[derive(Trace)]`.
