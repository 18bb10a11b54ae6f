//! gort's memory layer: a span-based arena in the shape of Go's allocator and
//! a tracing garbage collector for `Gc<T>` handles.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod gc;
#[allow(dead_code, unused_macros)]
mod loom;

#[cfg(not(loom))]
pub use gc::{
    cell::{BorrowError, GcCell, GcMutex, GcMutexGuard, GcRef, GcRefMut},
    collector::collect,
    handle::Gc,
    pacer::{set_gc_percent, set_memory_limit},
    stats::{GcStats, PAUSE_BUCKETS_NS, gc_stats},
    trace::{Trace, Tracer},
};
/// `#[derive(Trace)]` for gort-alloc's own users (the facade re-exports the
/// `::gort`-path variant as `gort::Trace`).
#[cfg(not(loom))]
pub use gort_macros::__TraceGortAlloc as Trace;
