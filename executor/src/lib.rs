//! gort's G/P/M scheduler for Rust futures.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use gort_netpoll::budget;
