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
//! - The crates underneath: `gort-executor` (scheduler), `gort-netpoll`
//!   (reactor and budget), `gort-alloc` (span arena and GC), `gort-macros`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use gort_executor::{
    Builder, Handle, JoinError, JoinHandle, Runtime, TryCurrentError, spawn, task, time,
};
pub use gort_macros::{main, test};

/// The runtime types under one path, as `tokio::runtime` has them.
pub mod runtime {
    pub use gort_executor::{Builder, Handle, Runtime};
}
