//! `Gc<T>` and its concurrent tracing collector.
//!
//! | file | concept |
//! |------|---------|
//! | `trace.rs` | the `Trace` trait, its obligations, std impls, `Tracer` |
//! | `object.rs` | object header, vtable, mark bit in the span bitmap |
//! | `handle.rs` | `Gc<T>` |
//! | `last_drop.rs` | a handle's drop: the count, and whether to free now (protocol) |
//! | `borrow.rs` | the borrow flag shared by cells and the collector |
//! | `cell.rs` | `GcCell`, `GcMutex` and their deletion barrier |
//! | `barrier.rs` | phase word, shading, the mutator handshake (protocol) |
//! | `roots.rs` | roots by handle counting |
//! | `mark.rs` | marking and mark termination |
//! | `sweep.rs` | destructors and freeing |
//! | `pacer.rs` | GOGC / memory limit |
//! | `collector.rs` | the collector thread, `collect()` |
//! | `events.rs` | the phase hook (the execution trace's GC track) |
//! | `stats.rs` | `GcStats` |
//!
//! `alloc/DESIGN.md` gives the algorithm and its soundness argument.
//!
//! Under `cfg(loom)` only the protocol pieces (`barrier`, `borrow`, `last_drop`) are built,
//! for the models in `tests/`.

pub(crate) mod barrier;
pub(crate) mod borrow;
pub(crate) mod last_drop;

#[cfg(not(loom))]
pub(crate) mod cell;
#[cfg(not(loom))]
pub(crate) mod collector;
#[cfg(not(loom))]
pub(crate) mod events;
#[cfg(not(loom))]
pub(crate) mod handle;
#[cfg(not(loom))]
pub(crate) mod mark;
#[cfg(not(loom))]
pub(crate) mod object;
#[cfg(not(loom))]
pub(crate) mod pacer;
#[cfg(not(loom))]
pub(crate) mod roots;
#[cfg(not(loom))]
pub(crate) mod stats;
#[cfg(not(loom))]
pub(crate) mod sweep;
#[cfg(not(loom))]
pub(crate) mod trace;

#[cfg(all(test, loom))]
mod tests;
