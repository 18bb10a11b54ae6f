//! The one switch between real and model-checked concurrency primitives.
//!
//! Runtime code in `gort-netpoll` and `gort-executor` imports atomics, locks,
//! cells and threads from here, never from `std` directly. Built normally
//! this re-exports `std`; built with `RUSTFLAGS="--cfg loom"` it re-exports
//! [`loom`](https://docs.rs/loom), whose versions record every interleaving
//! so the models in each crate's `tests/loom_*.rs` can explore them.
//!
//! The executor sits above netpoll and shares this shim rather than keeping an
//! identical copy (`gort-alloc` stands alone and keeps its own).
//!
//! `UnsafeCell` is wrapped on the `std` side so both builds expose loom's
//! closure API (`with`, `with_mut`): every raw access to a cell is then
//! visible to loom's race detector.

#[cfg(not(loom))]
pub use std::{sync, thread};

#[cfg(loom)]
pub use loom::{sync, thread};

/// Whether this build is a loom model (capacities shrink under loom so the
/// models reach overflow paths in a few steps).
pub const IS_LOOM: bool = cfg!(loom);

pub mod cell {
    //! `UnsafeCell` with loom's closure API on both sides.

    #[cfg(loom)]
    pub use loom::cell::UnsafeCell;

    /// `std::cell::UnsafeCell` with the `with`/`with_mut` API of loom's cell.
    #[cfg(not(loom))]
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        /// Wraps `data`.
        #[inline]
        pub const fn new(data: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(data))
        }

        /// Unwraps the value.
        #[inline]
        pub fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    #[cfg(not(loom))]
    impl<T: ?Sized> UnsafeCell<T> {
        /// Runs `f` with a shared raw pointer to the contents.
        #[inline(always)]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a mutable raw pointer to the contents.
        #[inline(always)]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// A hint inside spin loops; a yield point for loom's scheduler under loom.
#[inline]
pub fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
