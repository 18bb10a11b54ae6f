//! gort: a Rust async runtime scheduled the way Go schedules goroutines.
//!
//! ```no_run
//! #[gort::main]
//! async fn main() {
//!     let handles: Vec<_> = (0..10u64).map(|i| gort::spawn(async move { i * i })).collect();
//!     let mut sum = 0;
//!     for h in handles {
//!         sum += h.await.unwrap();
//!     }
//!     println!("sum of squares: {sum}");
//! }
//! ```
//!
//! - Scheduling ([`Runtime`], [`spawn`], [`task`]): Go's G/P/M model. Every P
//!   owns a 256-slot run queue and a `runnext` slot; idle Ms steal half of
//!   another P's queue; a global queue is checked every 61 ticks for
//!   fairness; always-ready tasks yield through a poll budget.
//! - I/O ([`net`]): TCP, UDP and Unix sockets on a netpoller (epoll/kqueue
//!   through mio). Ms check it without blocking before stealing, and the
//!   last idle M blocks in it until the next timer, as in Go.
//! - Time ([`time`]): `sleep`, `sleep_until`, `timeout`, `interval` on
//!   per-P timer heaps run by the scheduler itself (no timer thread), with
//!   sub-millisecond precision.
//! - Garbage-collected graphs ([`Gc`], [`GcCell`], [`GcMutex`],
//!   `#[derive(Trace)]`, [`collect`]; the rest in [`alloc`]): handles that
//!   may form cycles, collected by a concurrent tracing collector paced as
//!   Go's (`GORT_GC`, [`alloc::set_memory_limit`]).
//! - The crates underneath: `gort-executor` (scheduler), `gort-netpoll`
//!   (reactor and budget), `gort-alloc` (span arena and GC), `gort-macros`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use alloc::{Gc, GcCell, GcMutex, Trace, Weak};
pub use gort_executor::{
    Builder, Handle, JoinError, JoinHandle, Runtime, TryCurrentError, budget, spawn,
    spawn_blocking, task, time,
};
pub use gort_macros::{main, test};
pub use gort_netpoll::net;

/// The GC'd heap and the arena under it (gort-alloc): `Gc<T>` and its cells,
/// the `Trace` trait with its derive, the collector's controls and
/// statistics, and the span allocator.
///
/// ```
/// use gort::{Gc, GcCell, Trace};
///
/// #[derive(Trace)]
/// struct Node {
///     next: GcCell<Option<Gc<Node>>>,
///     #[trace(skip)]
///     label: &'static str,
/// }
///
/// let a = Gc::new(Node { next: GcCell::new(None), label: "a" });
/// let b = Gc::new(Node { next: GcCell::new(Some(a.clone())), label: "b" });
/// *a.next.borrow_mut() = Some(b.clone()); // a cycle
/// assert_eq!(a.next.borrow().as_ref().unwrap().label, "b");
/// drop((a, b));
/// gort::collect(); // frees both
/// ```
pub mod alloc {
    pub use crate::collect;
    pub use gort_alloc::trace::{Trace, Tracer};
    pub use gort_alloc::{
        BorrowError, FreeError, Gc, GcCell, GcEvent, GcMutex, GcMutexGuard, GcPhase, GcRef,
        GcRefMut, GcStats, MemStats, PAUSE_BUCKETS_NS, PhaseEdge, SizeClassStats, SpanAlloc, Weak,
        free_os_memory, gc_stats, memory_limit, parse_memory_limit, resident_bytes, set_gc_percent,
        set_memory_limit, set_phase_hook, stats,
    };
    /// `#[derive(Trace)]`: traces every field not marked `#[trace(skip)]`
    /// (paths under `::gort::alloc`; `#[trace(crate = "...")]` names another).
    pub use gort_macros::Trace;
}

/// The runtime types under one path, as `tokio::runtime` has them, and the
/// diagnostics of the current runtime (see `docs/DIAGNOSTICS.md`).
pub mod runtime {
    pub use gort_executor::{
        Builder, Handle, HistogramSnapshot, Runtime, RuntimeMetrics, TryCurrentError,
    };

    /// Metrics of the current runtime ([`Handle::metrics`]), with Go's
    /// `runtime/metrics` meanings.
    ///
    /// # Panics
    /// Outside a runtime (not in a task, not inside `block_on`).
    #[track_caller]
    pub fn metrics() -> RuntimeMetrics {
        Handle::current().metrics()
    }

    /// The goroutine-style dump of the current runtime's live tasks
    /// ([`Handle::dump`]). `GORT_DEBUG=sigquit=1` prints it on `SIGQUIT`.
    ///
    /// # Panics
    /// Outside a runtime (not in a task, not inside `block_on`).
    #[track_caller]
    pub fn dump() -> String {
        Handle::current().dump()
    }
}

/// The execution trace (Chrome trace-event JSON, for ui.perfetto.dev):
/// `GORT_TRACE=path.json` or [`trace::start`]/[`trace::stop`].
///
/// The garbage collector's phases appear on a "GC" track once the
/// collector's phase hook is connected to the trace: `#[gort::main]`,
/// `#[gort::test]`, [`trace::start`] and [`collect`] connect it; a program
/// that builds its runtime by hand and starts its trace with `GORT_TRACE`
/// calls [`trace::connect_gc`] once.
pub mod trace {
    use std::io;
    use std::path::Path;

    use gort_alloc::{GcEvent, PhaseEdge};
    use gort_executor::trace::GcEdge;

    pub use gort_executor::trace::stop;

    /// Starts the execution trace of every gort runtime of the process (see
    /// [`gort_executor::trace::start`]), with the collector's phases.
    ///
    /// # Errors
    /// As [`gort_executor::trace::start`]: the file cannot be created, the
    /// writer thread cannot start, or a trace is already running.
    pub fn start(path: impl AsRef<Path>) -> io::Result<()> {
        connect_gc();
        gort_executor::trace::start(path)
    }

    /// Connects gort-alloc's phase hook to the execution trace (idempotent;
    /// costs nothing while no trace runs: the hook returns after one load).
    pub fn connect_gc() {
        gort_alloc::set_phase_hook(Some(on_gc_event));
    }

    /// The hook: one event of the collector onto the trace's GC track.
    fn on_gc_event(ev: GcEvent) {
        let edge = match ev.edge {
            PhaseEdge::Begin => GcEdge::Begin,
            PhaseEdge::End => GcEdge::End,
            PhaseEdge::Instant => GcEdge::Instant,
        };
        gort_executor::trace::gc_event(ev.phase.name(), edge, ev.cycle);
    }
}

/// Runs a full collection of the GC'd heap and waits for it
/// ([`gort_alloc::collect`]); with an execution trace running, its phases
/// appear on the trace's GC track ([`trace::connect_gc`]).
pub fn collect() {
    trace::connect_gc();
    gort_alloc::collect();
}
