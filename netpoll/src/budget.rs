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
//! The budget is a per-thread value, [`Budget`] (stored as one `u16` word:
//! the units, or `u16::MAX` for unconstrained):
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
//! Each thread's budget is a `thread_local` word that only that thread
//! counts on: the hot path is a load and a store, no read-modify-write.
//! The one other writer is sysmon (below), through a [`PreemptHandle`].
//!
//! # Preemption from another thread (sysmon)
//! A task polled for longer than the time slice must yield at its next leaf
//! future. Sysmon runs on another thread, so each M publishes the address
//! of its budget word in its [`PreemptHandle`] ([`PreemptHandle::install`])
//! and sysmon zeroes that word ([`PreemptHandle::preempt`]): the next leaf
//! finds no budget left and yields. The leaf checks nothing else, so the
//! preemption costs the per-leaf path nothing (the words: sysmon
//! zeroes the budget).
//!
//! Transitions of the word: the owner thread stores `INITIAL` at a poll's
//! start, `n - 1` for a leaf, the saved value at a refund or a poll's end,
//! `UNCONSTRAINED` around `unconstrained` sections (plain Relaxed stores);
//! sysmon, under the handle's lock, `compare_exchange`s a constrained
//! non-zero `n` to 0.
//!
//! Orderings: all Relaxed; the word carries no data. The owner's load-then-
//! store is not atomic as a whole, so a store of the owner can overwrite
//! sysmon's zero (a leaf's `n - 1`, a refund, the end of an `unconstrained`
//! section, during which sysmon leaves the word alone). Sysmon therefore
//! applies the zero again on every tick for as long as the same poll
//! overruns, so a lost zero costs one sysmon tick. A zero that lands just
//! after the poll ended spends the next poll's budget: that task yields at
//! its first leaf, one early yield.
//!
//! Lifetime: the word lives in the M thread's TLS. The handle keeps its
//! address behind a mutex; the M clears it (the guard of `install`) before
//! its thread exits, and sysmon writes only while holding the lock and
//! seeing a non-null address.
//!
//! The word is `std`'s `AtomicU16`, not the loom shim's: a `const`
//! thread-local needs a `const` constructor, which loom's atomics lack (they
//! belong to one model execution, a thread-local outlives it). Nothing is
//! published through it, so there is nothing for loom to check; the models
//! that poll tasks count on it as on a plain cell.
//!
//! # Why here
//! Both layers need the counter: the executor sets it around polls, netpoll's
//! sockets spend it. The executor depends on netpoll and never the reverse,
//! so the counter lives in the lower layer.
//!
//! # Rejected alternatives
//! - Counting polls in the executor only: an always-ready leaf inside one poll
//!   never returns to the executor, so nothing would be counted.
//! - A separate preempt flag that sysmon sets and every leaf reads (until
//!   branch `sysmon2`): a second thread-local (the flag's address), a null
//!   check and a load per leaf, and a load (and store) per poll for the M to
//!   clear it; ~23 instructions per `yield_many` poll (docs/BENCHMARKS.md).
//! - Reading such a flag only every 16th unit: cheap, but a task whose
//!   leaves are slow (milliseconds of work between them) would yield 16
//!   leaves late.
//! - An atomic per task: the task is only ever polled by one thread at a time,
//!   so a thread-local is enough and costs no read-modify-write.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr;
// Not the loom shim's atomic: see "Lifetime" in the module doc.
use std::sync::atomic::AtomicU16;
use std::task::{Context, Poll};

use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::Ordering::Relaxed;

/// Units of work a task may do in one poll before gort's leaf futures make it
/// yield. 128 is tokio's figure: large enough that a busy socket loop yields
/// only every few dozen microseconds, small enough to bound how long one task
/// delays the rest of its run queue.
pub const INITIAL: u8 = 128;

/// The budget word's value for "unconstrained" (units are at most `INITIAL`).
const UNCONSTRAINED: u16 = u16::MAX;

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

    const fn encode(self) -> u16 {
        match self.0 {
            Some(n) => n as u16,
            None => UNCONSTRAINED,
        }
    }

    const fn decode(word: u16) -> Budget {
        match word {
            UNCONSTRAINED => Budget(None),
            // Stored values are `encode`d units, at most `INITIAL`.
            n => Budget(Some(n as u8)),
        }
    }
}

thread_local! {
    /// This thread's budget, `Budget::encode`d. Sysmon may zero it (module doc).
    static CURRENT: AtomicU16 = const { AtomicU16::new(UNCONSTRAINED) };
    /// Leaf futures told to yield because the budget was spent (the
    /// executor's `budget_forced_yields` metric drains it).
    static FORCED: Cell<u64> = const { Cell::new(0) };
}

/// Where sysmon finds an M's budget word (see the module doc): the address
/// of the M thread's word while [`PreemptHandle::install`]'s guard lives,
/// else null.
#[derive(Debug)]
pub struct PreemptHandle {
    word: Mutex<*const AtomicU16>,
}

// SAFETY: the pointer is only dereferenced under the mutex while non-null,
// and `install`'s contract keeps the thread-local it points to alive until
// the guard nulls it (under the same mutex); `AtomicU16` may be accessed
// from any thread.
unsafe impl Send for PreemptHandle {}
// SAFETY: as for `Send`: every access to the pointer goes through the mutex.
unsafe impl Sync for PreemptHandle {}

impl Default for PreemptHandle {
    fn default() -> PreemptHandle {
        PreemptHandle::new()
    }
}

impl PreemptHandle {
    /// A handle with no thread installed.
    pub fn new() -> PreemptHandle {
        PreemptHandle {
            word: Mutex::new(ptr::null()),
        }
    }

    /// Publishes the calling thread's budget word in this handle until the
    /// guard drops.
    ///
    /// # Safety
    /// The guard must be dropped on this thread, before the thread exits
    /// (not leaked): the handle then holds the address of this thread's
    /// thread-local word, which dies with the thread.
    #[must_use = "dropping the guard unpublishes the word at once"]
    pub unsafe fn install(&self) -> PreemptGuard<'_> {
        let word = CURRENT.with(|w| w as *const AtomicU16);
        *self.word.lock().unwrap() = word;
        PreemptGuard {
            handle: self,
            _not_send: PhantomData,
        }
    }

    /// Sysmon: spends the installed thread's budget, so that its next leaf
    /// future yields. Leaves an unconstrained word (no task poll, or an
    /// `unconstrained` section) alone. Returns whether it zeroed a word.
    pub fn preempt(&self) -> bool {
        let guard = self.word.lock().unwrap();
        if guard.is_null() {
            return false;
        }
        // SAFETY: non-null under the lock: installed by `install`, whose
        // guard nulls it under this lock before the thread (and its word)
        // goes away.
        let word = unsafe { &**guard };
        let n = word.load(Relaxed);
        n != 0 && n != UNCONSTRAINED && word.compare_exchange(n, 0, Relaxed, Relaxed).is_ok()
    }

    /// Whether the installed thread's poll has no budget left (spent by its
    /// leaves or zeroed by [`PreemptHandle::preempt`]), for scheddetail.
    pub fn is_spent(&self) -> bool {
        let guard = self.word.lock().unwrap();
        // SAFETY: as in `preempt`.
        !guard.is_null() && unsafe { (**guard).load(Relaxed) } == 0
    }
}

/// Unpublishes the thread's budget word when dropped.
#[derive(Debug)]
pub struct PreemptGuard<'a> {
    handle: &'a PreemptHandle,
    /// The word is this thread's: the guard must drop here.
    _not_send: PhantomData<*const ()>,
}

impl Drop for PreemptGuard<'_> {
    fn drop(&mut self) {
        *self.handle.word.lock().unwrap() = ptr::null();
    }
}

/// Restores the saved budget when a poll ends, even by unwinding.
struct ResetGuard(u16);

impl Drop for ResetGuard {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|w| w.store(self.0, Relaxed));
    }
}

/// Runs `f` with the budget word set to `word` (already encoded: this
/// function is not inlined, and a constant argument keeps the encoding off
/// the per-poll path).
fn with_installed<R>(word: u16, f: impl FnOnce() -> R) -> R {
    // A load and a store, not a swap: no locked instruction (module doc).
    let saved = CURRENT.with(|w| {
        let saved = w.load(Relaxed);
        w.store(word, Relaxed);
        saved
    });
    let _reset = ResetGuard(saved);
    f()
}

/// Runs `f` (one poll of a task) with a fresh budget of [`INITIAL`] units.
#[inline]
pub fn budget<R>(f: impl FnOnce() -> R) -> R {
    with_installed(Budget::initial().encode(), f)
}

/// Runs `f` with no budget limit.
#[inline]
pub fn with_unconstrained<R>(f: impl FnOnce() -> R) -> R {
    with_installed(UNCONSTRAINED, f)
}

/// The calling thread's budget.
#[inline]
pub fn current() -> Budget {
    Budget::decode(CURRENT.with(|w| w.load(Relaxed)))
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
    let _ = CURRENT.try_with(|w| {
        if w.load(Relaxed) != UNCONSTRAINED {
            w.store(0, Relaxed);
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
            let _ = CURRENT.try_with(|w| w.store(saved.encode(), Relaxed));
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
    CURRENT.with(|w| match w.load(Relaxed) {
        UNCONSTRAINED => Poll::Ready(RestoreOnPending(Cell::new(Budget::unconstrained()))),
        0 => {
            note_forced();
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        n => {
            w.store(n - 1, Relaxed);
            Poll::Ready(RestoreOnPending(Cell::new(Budget::decode(n))))
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
    fn preempt_zeroes_the_installed_threads_budget() {
        let mut cx = Context::from_waker(noop_waker_ref());
        let handle = std::sync::Arc::new(PreemptHandle::new());
        assert!(!handle.preempt(), "nothing installed: nothing to zero");
        // SAFETY: the guard is dropped at the end of this test, on this thread.
        let _g = unsafe { handle.install() };
        assert!(
            !handle.preempt(),
            "unconstrained outside a poll: left alone"
        );
        let h = handle.clone();
        budget(|| {
            assert!(poll_proceed(&mut cx).is_ready(), "fresh budget: proceeds");
            // Sysmon's side runs on another thread.
            let zeroed = std::thread::spawn(move || h.preempt());
            assert!(zeroed.join().unwrap(), "a constrained budget is zeroed");
            assert!(handle.is_spent());
            assert!(
                poll_proceed(&mut cx).is_pending(),
                "zeroed: the next leaf must yield"
            );
            assert!(!handle.preempt(), "already zero: nothing to do");
            with_unconstrained(|| {
                assert!(!handle.preempt(), "unconstrained section: left alone");
                assert!(poll_proceed(&mut cx).is_ready());
            });
            assert!(
                poll_proceed(&mut cx).is_pending(),
                "the zero is back after the unconstrained section"
            );
        });
        assert_eq!(current(), Budget::unconstrained());
        drop(_g);
        assert!(!handle.preempt(), "uninstalled: nothing to zero");
    }

    #[test]
    fn restored_after_panic() {
        let r = std::panic::catch_unwind(|| budget(|| panic!("boom")));
        assert!(r.is_err());
        assert_eq!(current(), Budget::unconstrained());
    }
}
