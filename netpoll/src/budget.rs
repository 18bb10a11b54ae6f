//! Preemption by budget: how a task that is always ready still yields.
//!
//! # Purpose
//! A future that never returns `Pending` (a socket with data always waiting, a
//! channel that is never empty) would hold its M forever. Each poll of a task
//! therefore starts with a budget of [`INITIAL`] units; every gort leaf future
//! (sockets, timers, `JoinHandle`, `yield_now`) spends one unit each time it
//! would return `Ready`. At zero the leaf wakes its task and returns `Pending`
//! instead, so the task goes to the back of its run queue and the tasks
//! behind it run. This is Go's time-slice preemption expressed through the
//! only place a future can be interrupted: its own `poll`.
//!
//! # States
//! The budget is a per-thread value, [`Budget`]:
//! - `Budget(None)`: unconstrained. Outside any task poll (a plain thread, a
//!   `futures::executor::block_on`) and inside `unconstrained(..)` futures.
//! - `Budget(Some(n))`: `n` units left in the current poll.
//!
//! # Transitions
//! - The executor calls [`budget`] around each task poll: the previous value
//!   is saved, `Some(INITIAL)` installed, and the saved value restored when the
//!   poll returns (also on unwind).
//! - [`poll_proceed`] takes one unit (`Some(n)` to `Some(n - 1)`); at
//!   `Some(0)` it wakes the task and returns `Pending`.
//! - The returned [`RestoreOnPending`] gives the unit back when dropped without
//!   [`RestoreOnPending::made_progress`]: a leaf that ends up `Pending` anyway
//!   has not done work, so it must not be charged.
//! - [`with_unconstrained`] installs `None` for the duration of a closure.
//!
//! # Ownership
//! Only the thread itself reads or writes its budget (a `thread_local` cell),
//! so there is no synchronisation and the hot path costs a load and a store.
//!
//! # Preemption from another thread (sysmon)
//! A task polled for longer than the time slice must yield at its next leaf
//! future, but sysmon runs on another thread and cannot touch this thread's
//! cell. The executor therefore installs, once per M thread, a *preempt flag*
//! ([`install_preempt_flag`]): an atomic owned by the M that sysmon sets
//! (Relaxed) when the time slice is exceeded and the M clears when it starts a
//! new slice. [`poll_proceed`] reads it with a Relaxed load only while the
//! budget is constrained and treats a set flag as an exhausted budget. Relaxed
//! suffices: the flag carries no data, and a late read only delays the yield
//! by one leaf. Threads without a flag (plain threads, `block_on`) pay a null
//! check.
//!
//! # Why here
//! Both layers need the counter: the executor sets it around polls, netpoll's
//! sockets spend it. The executor depends on netpoll and never the reverse,
//! so the counter lives in the lower layer.
//!
//! # Rejected alternatives
//! - Counting polls in the executor only: an always-ready leaf inside one poll
//!   never returns to the executor, so nothing would be counted.
//! - An atomic per task: the task is only ever polled by one thread at a time,
//!   so a thread-local is enough and costs no read-modify-write.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::task::{Context, Poll};

use crate::loom::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Units of work a task may do in one poll before gort's leaf futures make it
/// yield. 128 is tokio's figure: large enough that a busy socket loop yields
/// only every few dozen microseconds, small enough to bound how long one task
/// delays the rest of its run queue.
pub const INITIAL: u8 = 128;

/// The budget left in the current poll; `None` means unconstrained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(Option<u8>);

impl Budget {
    /// A fresh budget for one task poll.
    pub const fn initial() -> Budget {
        Budget(Some(INITIAL))
    }

    /// No limit.
    pub const fn unconstrained() -> Budget {
        Budget(None)
    }

    /// Units left, or `None` when unconstrained.
    pub fn remaining(self) -> Option<u8> {
        self.0
    }
}

thread_local! {
    static CURRENT: Cell<Budget> = const { Cell::new(Budget::unconstrained()) };
    static PREEMPT: Cell<*const AtomicBool> = const { Cell::new(ptr::null()) };
    /// Leaf futures told to yield because the budget was spent (the
    /// executor's `budget_forced_yields` metric drains it).
    static FORCED: Cell<u64> = const { Cell::new(0) };
}

/// Uninstalls the preempt flag of this thread when dropped.
#[derive(Debug)]
pub struct PreemptGuard {
    prev: *const AtomicBool,
}

impl Drop for PreemptGuard {
    fn drop(&mut self) {
        let _ = PREEMPT.try_with(|c| c.set(self.prev));
    }
}

/// Makes `flag` this thread's preempt flag until the guard drops: while it is
/// set, every constrained budget counts as exhausted (see the module doc).
///
/// # Safety
/// `flag` must stay alive, at the same address, until the returned guard is
/// dropped, and the guard must be dropped on this thread.
pub unsafe fn install_preempt_flag(flag: &AtomicBool) -> PreemptGuard {
    let prev = PREEMPT.with(|c| c.replace(flag));
    PreemptGuard { prev }
}

/// Whether sysmon asked this thread's current poll to yield.
#[inline]
fn preempted() -> bool {
    let flag = PREEMPT.with(Cell::get);
    // SAFETY: a non-null pointer was installed by `install_preempt_flag`,
    // whose contract keeps the flag alive until its guard resets the slot.
    !flag.is_null() && unsafe { (*flag).load(Relaxed) }
}

/// Restores the saved budget when a poll ends, even by unwinding.
struct ResetGuard(Budget);

impl Drop for ResetGuard {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|cell| cell.set(self.0));
    }
}

fn with_installed<R>(budget: Budget, f: impl FnOnce() -> R) -> R {
    let saved = CURRENT.with(|cell| cell.replace(budget));
    let _reset = ResetGuard(saved);
    f()
}

/// Runs `f` (one poll of a task) with a fresh budget of [`INITIAL`] units.
#[inline]
pub fn budget<R>(f: impl FnOnce() -> R) -> R {
    with_installed(Budget::initial(), f)
}

/// Runs `f` with no budget limit.
#[inline]
pub fn with_unconstrained<R>(f: impl FnOnce() -> R) -> R {
    with_installed(Budget::unconstrained(), f)
}

/// The calling thread's budget.
#[inline]
pub fn current() -> Budget {
    CURRENT.with(Cell::get)
}

/// Whether the current poll may still do work without yielding.
#[inline]
pub fn has_remaining() -> bool {
    current().0 != Some(0)
}

/// Spends every remaining unit, so the next leaf future yields. Used when a
/// task must give way at its next opportunity (a time-slice overrun).
#[inline]
pub fn exhaust() {
    let _ = CURRENT.try_with(|cell| {
        if cell.get().0.is_some() {
            cell.set(Budget(Some(0)));
        }
    });
}

/// Gives one unit back when dropped, unless the leaf made progress.
#[must_use = "drop it after the leaf's own poll; call made_progress() if that returned Ready"]
#[derive(Debug)]
pub struct RestoreOnPending(Cell<Budget>);

impl RestoreOnPending {
    /// The leaf did its work: keep the unit spent.
    #[inline]
    pub fn made_progress(&self) {
        self.0.set(Budget::unconstrained());
    }
}

impl Drop for RestoreOnPending {
    #[inline]
    fn drop(&mut self) {
        let saved = self.0.get();
        if saved.0.is_some() {
            let _ = CURRENT.try_with(|cell| cell.set(saved));
        }
    }
}

fn note_forced() {
    let _ = FORCED.try_with(|f| f.set(f.get() + 1));
}

/// Returns and resets this thread's count of leaf futures that returned
/// `Pending` because the budget was spent (for the executor's metrics; the
/// counting sits on that already-slow branch, not on the poll path).
pub fn take_forced_yields() -> u64 {
    FORCED.try_with(|f| f.replace(0)).unwrap_or(0)
}

/// Takes one unit of budget before a leaf future does its work.
///
/// Returns `Pending`, after waking the task, when the budget is spent: the
/// leaf must then return `Pending` itself. Otherwise returns a guard; the leaf
/// calls [`RestoreOnPending::made_progress`] on it when it returns `Ready`.
#[inline]
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<RestoreOnPending> {
    CURRENT.with(|cell| {
        let before = cell.get();
        match before.0 {
            None => Poll::Ready(RestoreOnPending(Cell::new(Budget::unconstrained()))),
            Some(0) => {
                note_forced();
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(_) if preempted() => {
                cell.set(Budget(Some(0)));
                note_forced();
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(n) => {
                cell.set(Budget(Some(n - 1)));
                Poll::Ready(RestoreOnPending(Cell::new(before)))
            }
        }
    })
}

/// Spends one unit of budget, yielding first if none is left.
///
/// Long computations that await nothing of gort's call this in their loop so
/// that they still give way to the other tasks of their P.
pub fn consume_budget() -> ConsumeBudget {
    ConsumeBudget { _private: () }
}

/// Future returned by [`consume_budget`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ConsumeBudget {
    _private: (),
}

impl Future for ConsumeBudget {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match poll_proceed(cx) {
            Poll::Ready(restore) => {
                restore.made_progress();
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    #[test]
    fn unconstrained_outside_a_poll() {
        let mut cx = Context::from_waker(noop_waker_ref());
        for _ in 0..1000 {
            assert!(poll_proceed(&mut cx).is_ready());
        }
    }

    #[test]
    fn yields_after_initial_units() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let _ = take_forced_yields();
        budget(|| {
            for i in 0..INITIAL {
                match poll_proceed(&mut cx) {
                    Poll::Ready(r) => r.made_progress(),
                    Poll::Pending => panic!("budget ran out after {i} units, expected {INITIAL}"),
                }
            }
            assert!(
                poll_proceed(&mut cx).is_pending(),
                "unit {} should yield",
                INITIAL + 1
            );
        });
        assert_eq!(take_forced_yields(), 1, "the yield is counted once");
        assert_eq!(take_forced_yields(), 0, "taking resets the count");
        assert_eq!(
            current(),
            Budget::unconstrained(),
            "budget() must restore the outer value"
        );
    }

    #[test]
    fn pending_leaf_is_refunded() {
        let mut cx = Context::from_waker(noop_waker_ref());
        budget(|| {
            for _ in 0..1000 {
                let r = poll_proceed(&mut cx);
                assert!(r.is_ready());
                drop(r); // no progress: refunded
            }
            assert_eq!(current().remaining(), Some(INITIAL));
        });
    }

    #[cfg(not(loom))]
    #[test]
    fn preempt_flag_exhausts_the_budget() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let flag = AtomicBool::new(false);
        // SAFETY: `flag` outlives the guard, dropped at the end of this scope.
        let _g = unsafe { install_preempt_flag(&flag) };
        budget(|| {
            assert!(poll_proceed(&mut cx).is_ready(), "flag clear: proceeds");
            flag.store(true, Relaxed);
            assert!(
                poll_proceed(&mut cx).is_pending(),
                "flag set: the next leaf must yield"
            );
            flag.store(false, Relaxed);
            assert!(
                poll_proceed(&mut cx).is_pending(),
                "once preempted, the rest of the poll stays exhausted"
            );
        });
        // Unconstrained code is never preempted.
        flag.store(true, Relaxed);
        assert!(poll_proceed(&mut cx).is_ready());
    }

    #[test]
    fn restored_after_panic() {
        let r = std::panic::catch_unwind(|| budget(|| panic!("boom")));
        assert!(r.is_err());
        assert_eq!(current(), Budget::unconstrained());
    }
}
