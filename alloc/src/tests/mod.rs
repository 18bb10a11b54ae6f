//! In-crate tests that need `pub(crate)` items: the GC-facing API and the
//! loom models.

#[cfg(not(loom))]
mod heap_api;

/// Serializes tests that drive the global GC phase (`gc_begin_mark` ...) or
/// sweep GC spans: the phase and the GC spans are process-wide, and the lib
/// test binary runs tests on parallel threads. The collector's tests take it
/// too.
#[cfg(not(loom))]
pub(crate) static GC_TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(loom)]
mod loom_gc_sweep;
#[cfg(loom)]
mod loom_mcentral;
#[cfg(loom)]
mod loom_pagemap;
