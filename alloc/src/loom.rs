//! The one switch between real and model-checked concurrency primitives.
//!
//! Every module of gort-alloc imports atomics, locks, cells, threads and
//! thread-locals from here, never from `std` directly. Built normally this
//! re-exports `std`; built with `RUSTFLAGS="--cfg loom"` it re-exports
//! [`loom`](https://docs.rs/loom), whose versions record every interleaving so
//! the models in `src/tests/loom_*.rs` can explore them.
//!
//! gort-alloc stands alone (no dependency on other gort crates), so it keeps
//! its own copy of the shim that `gort-netpoll` provides for the executor.
//!
//! `UnsafeCell` is wrapped on the `std` side so both builds expose loom's
//! closure API (`with`, `with_mut`): every raw access to a cell is then
//! visible to loom's race detector.

#![allow(unused_imports)]

#[cfg(not(loom))]
pub(crate) use std::{sync, thread, thread_local};

#[cfg(loom)]
pub(crate) use loom::{sync, thread, thread_local};

/// Whether this build is a loom model (capacities shrink under loom so the
/// models reach the arena-boundary and overflow paths in a few steps).
pub(crate) const IS_LOOM: bool = cfg!(loom);

/// Declares a process-wide value: a plain `static` (whose initializer must be
/// `const`) normally, a `loom::lazy_static!` under loom so every model
/// execution starts from a fresh value.
macro_rules! global {
    ($(#[$attr:meta])* pub(crate) static $name:ident: $t:ty = $init:expr;) => {
        #[cfg(not(loom))]
        $(#[$attr])* pub(crate) static $name: $t = $init;
        #[cfg(loom)]
        loom::lazy_static! { $(#[$attr])* pub(crate) static ref $name: $t = $init; }
    };
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        #[cfg(not(loom))]
        $(#[$attr])* static $name: $t = $init;
        #[cfg(loom)]
        loom::lazy_static! { $(#[$attr])* static ref $name: $t = $init; }
    };
}
pub(crate) use global;

pub(crate) mod cell {
    //! `UnsafeCell` with loom's closure API on both sides.

    #[cfg(loom)]
    pub(crate) use loom::cell::UnsafeCell;

    /// `std::cell::UnsafeCell` with the `with`/`with_mut` API of loom's cell.
    #[cfg(not(loom))]
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        /// Wraps `data`.
        #[inline]
        pub(crate) const fn new(data: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(data))
        }
    }

    #[cfg(not(loom))]
    impl<T: ?Sized> UnsafeCell<T> {
        /// Runs `f` with a shared raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a mutable raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// A hint inside spin loops; a yield point for loom's scheduler under loom.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
