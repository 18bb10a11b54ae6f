//! gort's G/P/M scheduler for Rust futures.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use gort_netpoll::budget;

mod context;
pub mod task;

pub use task::{JoinError, JoinHandle};

#[cfg(test)]
mod tests;

/// Spawns `future` on the current runtime.
#[track_caller]
pub fn spawn<F>(_future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    unimplemented!()
}
