//! gort's G/P/M scheduler for Rust futures.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use gort_netpoll::budget;

#[allow(dead_code)] // used by the scheduler (branch exec-task)
mod inject;
#[allow(dead_code)] // used by the scheduler (branch exec-task)
mod park;
#[allow(dead_code)] // used by the scheduler (branch exec-task)
mod queue;
pub mod time;

#[cfg(test)]
mod tests;
