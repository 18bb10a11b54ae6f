//! gort's network poller.
//!
//! The lower layer under `gort-executor`: a reactor over `mio` whose
//! registrations track per-direction readiness and wakers (Go's `pollDesc`),
//! the socket types built on it, and the poll [`budget`] that both layers
//! share. This crate never depends on the executor; the executor calls it.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod budget;
#[doc(hidden)]
pub mod loom;
