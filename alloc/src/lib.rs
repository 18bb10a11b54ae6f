//! gort's memory layer: a span-based arena in the shape of Go's allocator
//! (mheap / mcentral / mcache / scavenger) and a tracing garbage collector
//! for `Gc<T>` handles built on it.
//!
//! - [`SpanAlloc`] is a `GlobalAlloc`: usable as `#[global_allocator]`.
//! - [`stats`] reports [`MemStats`] with Go's meanings.
//! - [`free_os_memory`] and [`set_memory_limit`] (env `GORT_MEMLIMIT`) drive
//!   the scavenger, which returns free pages to the OS.
//!
//! Layers, top to bottom: `global.rs` (SpanAlloc) and `heap_api.rs` (the
//! collector's API) -> `mcache.rs` (per thread) -> `mcentral.rs` (per span
//! class) -> `mheap.rs` (pages, arenas) with `pagemap.rs` (address -> span)
//! -> `os.rs` (mmap). `span.rs` and `sizeclass.rs` describe what is handed
//! around; `scavenger.rs` and `stats.rs` watch the mheap.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod gc;
mod global;
// The collector's API on the arena (used by `gc/`).
#[allow(
    dead_code,
    reason = "the full API is kept for the collector; not every call is used yet"
)]
pub(crate) mod heap_api;
mod loom;
mod mcache;
mod mcentral;
mod mheap;
mod os;
mod pagemap;
mod scavenger;
mod sizeclass;
mod span;
mod stats;

#[cfg(test)]
mod tests;

#[cfg(not(loom))]
pub use gc::{
    cell::{BorrowError, GcCell, GcMutex, GcMutexGuard, GcRef, GcRefMut},
    collector::collect,
    events::{GcEvent, GcPhase, PhaseEdge, set_phase_hook},
    handle::{Gc, Weak},
    pacer::set_gc_percent,
    stats::{GcStats, PAUSE_BUCKETS_NS, gc_stats},
    trace::{Trace, Tracer},
};
pub use global::SpanAlloc;
/// The `Trace` trait and `Tracer` alone, without the derive macro of the
/// same name: the facade re-exports the trait from here and the derive that
/// emits `::gort::alloc` paths from gort-macros, both as `gort::Trace`.
#[cfg(not(loom))]
pub mod trace {
    pub use crate::gc::trace::{Trace, Tracer};
}
/// `#[derive(Trace)]` for gort-alloc's own users (the facade re-exports the
/// `::gort`-path variant as `gort::Trace`).
#[cfg(not(loom))]
pub use gort_macros::__TraceGortAlloc as Trace;
pub use mcentral::FreeError;
pub use os::resident_bytes;
pub use scavenger::{free_os_memory, memory_limit, parse_memory_limit, set_memory_limit};
pub use stats::{MemStats, SizeClassStats, stats};
