//! gort's G/P/M scheduler for Rust futures.
//!
//! A [`Runtime`] owns `GOMAXPROCS` Ps (logical processors, each with a local
//! run queue and a `runnext` slot) and the Ms (OS threads) that run them.
//! Spawned futures are Gs ([`task`]). The search order of an M, the wakeup
//! rule for idle Ms and the shutdown steps follow Go's `proc.go`; see
//! `m.rs`, `idle.rs` and `runtime.rs`.
//!
//! ```
//! let rt = gort_executor::Runtime::new().unwrap();
//! let answer = rt.block_on(async {
//!     let h = gort_executor::spawn(async { 6 * 7 });
//!     h.await.unwrap()
//! });
//! assert_eq!(answer, 42);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use gort_netpoll::budget;

mod blocking;
mod builder;
mod context;
mod dump;
mod idle;
#[allow(dead_code)] // `is_closed` is for diagnostics
mod inject;
mod m;
mod membarrier;
mod metrics;
mod netpoller;
mod osthread;
mod p;
#[allow(dead_code)] // `park_timeout`: used by the time tests only
mod park;
mod pstatus;
mod queue;
mod runtime;
mod scheduler;
mod syscall;
mod sysmon;
pub mod task;
pub mod time;
pub mod trace;

pub use blocking::spawn_blocking;
pub use builder::{Builder, DEBUG_ENV};
pub use metrics::{HistogramSnapshot, RuntimeMetrics};
pub use runtime::{Handle, Runtime, TryCurrentError};
pub use task::{JoinError, JoinHandle};

#[cfg(test)]
mod tests;

/// Spawns `future` on the current runtime and returns its [`JoinHandle`].
///
/// Inside the runtime the new task goes to the `runnext` slot of the current
/// P (Go's `newproc`); from a thread that merely entered the runtime
/// (`block_on`) it goes to the global queue. Either way an idle M is woken if
/// none is spinning.
///
/// # Panics
/// Outside a runtime (no `block_on`, not on one of its threads), with a
/// message naming the call site.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut future = Some(future);
    let at = std::panic::Location::caller();
    let spawned = context::with_current_handle(|h| {
        h.map(|h| h.spawn_inner(future.take().expect("taken once"), at))
    });
    match spawned {
        Some(join) => join,
        None => panic!(
            "gort::spawn called outside a gort runtime at {}: call it from a task, \
             from inside Runtime::block_on, or use Handle::spawn",
            std::panic::Location::caller()
        ),
    }
}
