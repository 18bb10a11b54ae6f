//! The seam between the timers and the scheduler: which P's [`Timers`] a
//! `Sleep` polled on this thread registers with.
//!
//! The scheduler calls [`enter`] when an M acquires a P (and for a
//! `block_on` thread, with the timers that thread's runtime runs), keeping
//! the returned guard until it releases the P. `Sleep::poll` calls
//! [`current`]. Only the thread itself reads or writes its slot (a
//! `thread_local`), so no synchronisation is involved.

use std::cell::RefCell;

use gort_netpoll::loom::sync::Arc;

use super::timers::Timers;

thread_local! {
    static CURRENT: RefCell<Option<Arc<Timers>>> = const { RefCell::new(None) };
}

/// Makes `timers` the current thread's timers until the guard is dropped,
/// which restores the previous ones (entries nest).
pub(crate) fn enter(timers: Arc<Timers>) -> TimersGuard {
    let prev = CURRENT.with(|c| c.replace(Some(timers)));
    TimersGuard {
        prev,
        _not_send: std::marker::PhantomData,
    }
}

/// The current thread's timers.
///
/// # Panics
/// Outside a gort runtime (no [`enter`] active on this thread), with a
/// message saying so: a timer there could never fire.
pub(crate) fn current() -> Arc<Timers> {
    try_current().unwrap_or_else(|| {
        panic!(
            "gort::time: timers must be called from within a gort runtime \
             (this thread runs no gort P; use Runtime::block_on or gort::spawn)"
        )
    })
}

/// The current thread's timers, if any.
pub(crate) fn try_current() -> Option<Arc<Timers>> {
    // `try_with`: during thread teardown the slot may be gone; that is
    // "outside a runtime" too.
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Restores the previous timers when dropped. Not `Send`: it must be dropped
/// on the thread that entered.
#[must_use = "the timers are current only while the guard lives"]
pub(crate) struct TimersGuard {
    prev: Option<Arc<Timers>>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for TimersGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| c.replace(prev));
    }
}

impl std::fmt::Debug for TimersGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimersGuard").finish_non_exhaustive()
    }
}
