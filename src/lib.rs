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
//! - The crates underneath: `gort-executor` (scheduler), `gort-netpoll`
//!   (reactor and budget), `gort-alloc` (span arena and GC), `gort-macros`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use gort_executor::{
    Builder, Handle, JoinError, JoinHandle, Runtime, TryCurrentError, budget, spawn,
    spawn_blocking, task, time,
};
pub use gort_macros::{main, test};
pub use gort_netpoll::net;

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
pub mod trace {
    pub use gort_executor::trace::{start, stop};
}
