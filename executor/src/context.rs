//! Thread-locals of the runtime: which runtime this thread is in, which M it
//! is (if any), and which task it is polling.
//!
//! Everything here is per-thread, so there is no synchronisation: a thread
//! reads and writes only its own slots. Setters return guards that restore the
//! previous value, also on unwind.
//!
//! - `HANDLE`: set on M threads for their whole life and on a `block_on`
//!   caller for the duration of the call; makes `Handle::current` and `spawn`
//!   work. Its presence is also what forbids a nested `block_on`.
//! - `CURRENT_M`: set on M threads only; lets `schedule` reach the P of the
//!   running M without a lookup (Go's `getg().m.p`).
//! - `TASK_ID`: set by the harness around each poll (`task::id()`).

use std::cell::{Cell, RefCell};
use std::ptr;

use crate::m::MCore;
use crate::runtime::Handle;
use crate::task::Id;

thread_local! {
    static TASK_ID: Cell<Option<Id>> = const { Cell::new(None) };
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
    static CURRENT_M: Cell<*const MCore> = const { Cell::new(ptr::null()) };
}

/// Restores the previous current-task id when dropped.
pub(crate) struct TaskIdGuard(Option<Id>);

/// Makes `id` the current task of this thread until the guard drops.
pub(crate) fn set_current_task_id(id: Option<Id>) -> TaskIdGuard {
    TaskIdGuard(TASK_ID.with(|c| c.replace(id)))
}

impl Drop for TaskIdGuard {
    fn drop(&mut self) {
        let _ = TASK_ID.try_with(|c| c.set(self.0));
    }
}

/// The task being polled on this thread.
pub(crate) fn current_task_id() -> Option<Id> {
    TASK_ID.try_with(Cell::get).ok().flatten()
}

/// Leaves the runtime when dropped.
pub(crate) struct EnterGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Enters `handle`'s runtime on this thread.
///
/// # Panics
/// When this thread is already inside a runtime: blocking it (a nested
/// `block_on`, or `block_on` on an M) would stall every task of its P.
#[track_caller]
pub(crate) fn enter(handle: Handle) -> EnterGuard {
    let caller = std::panic::Location::caller();
    HANDLE.with(|h| {
        let mut h = h.borrow_mut();
        if h.is_some() {
            panic!(
                "gort: cannot block_on inside a runtime (called at {}): this thread already \
                 drives gort tasks (it is an M, or inside another block_on); blocking it would \
                 stall them. Use .await, or spawn the work",
                caller
            );
        }
        *h = Some(handle);
    });
    EnterGuard {
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let _ = HANDLE.try_with(|h| h.borrow_mut().take());
    }
}

/// Runs `f` with the runtime this thread is in.
pub(crate) fn with_current_handle<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    HANDLE.with(|h| f(h.borrow().as_ref()))
}

/// A clone of the runtime handle of this thread, if any.
pub(crate) fn try_current_handle() -> Option<Handle> {
    HANDLE.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// Clears `CURRENT_M` when dropped.
pub(crate) struct MGuard(());

/// Registers the M running on this thread.
///
/// # Safety
/// `m` must stay alive and not move until the guard drops.
pub(crate) unsafe fn set_current_m(m: &MCore) -> MGuard {
    CURRENT_M.with(|c| c.set(m));
    MGuard(())
}

impl Drop for MGuard {
    fn drop(&mut self) {
        let _ = CURRENT_M.try_with(|c| c.set(ptr::null()));
    }
}

/// Runs `f` with this thread's M, or `None` off the runtime's threads.
#[inline]
pub(crate) fn with_current_m<R>(f: impl FnOnce(Option<&MCore>) -> R) -> R {
    let m = CURRENT_M.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: CURRENT_M is non-null only between set_current_m and the drop
    // of its guard, during which the MCore is alive and pinned on this
    // thread's stack (set_current_m's contract); it is only read here, on the
    // same thread.
    f(unsafe { m.as_ref() })
}
