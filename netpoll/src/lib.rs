//! gort's network poller.
//!
//! The lower layer under `gort-executor`: a reactor over `mio` whose
//! registrations track per-direction readiness and wakers (Go's `pollDesc`),
//! the socket types built on it, and the poll [`budget`] that both layers
//! share. This crate never depends on the executor; the executor calls it.
//!
//! Entry points for the executor:
//! - [`Driver::new`], one per runtime; [`Driver::poll`] from findrunnable
//!   (non-blocking) and from the last idle M (blocking until the next timer);
//!   [`Driver::is_polling`] and [`Driver::last_poll`] for sysmon.
//! - [`Handle::unpark`] to interrupt a blocked poll (Go's `netpollBreak`).
//! - [`enter`] on every thread that polls tasks, so sockets find their driver.
//! - [`budget::budget`] around each task poll.
//!
//! For users: the socket types in [`net`], re-exported as `gort::net`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod atomic_waker;
pub mod budget;
mod context;
mod deadline;
mod io;
#[doc(hidden)]
pub mod loom;
pub mod net;
mod park;
mod poller;
mod registration;
mod slab;

#[cfg(all(test, loom))]
mod tests;

pub use context::{EnterGuard, enter};
pub use poller::{Driver, Handle};
