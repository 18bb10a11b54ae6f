//! How an idle M sleeps and is woken: a one-permit parker.
//!
//! # Purpose
//! An M that finds no work (Go's `stopm`) blocks on its [`Parker`] until some
//! other thread that made work calls [`Unparker::unpark`] (Go's `notewakeup`
//! on `m.park`). A wakeup sent before the M blocks is kept as a permit, so
//! the "check queues, then sleep" window cannot lose it.
//!
//! # States
//! `Inner::state`, one word:
//! - `EMPTY` (0): no permit, nobody blocked.
//! - `PARKED` (1): the parker is blocked (or about to block) on the condvar.
//! - `NOTIFIED` (2): a permit is pending; the next park returns at once.
//!
//! # Transitions
//! - `EMPTY → PARKED`: the parker, `compare_exchange`, holding `mutex`.
//! - `NOTIFIED → EMPTY`: the parker consumes the permit, `compare_exchange`
//!   (fast path, no lock) or `swap` (after a failed `EMPTY → PARKED`).
//! - `PARKED → EMPTY`: `park_timeout` timing out, `swap`, holding `mutex`.
//! - `any → NOTIFIED`: [`Unparker::unpark`], `swap`; if it replaced `PARKED`
//!   it takes and drops `mutex`, then `notify_one`.
//!
//! # Ownership
//! - `state`: read and written by atomic operations from anywhere.
//! - `mutex` guards no data: it orders the parker's `EMPTY → PARKED` + start
//!   of `Condvar::wait` against the unparker's `notify_one`. Only the one
//!   `Parker` (held `&mut`, by one M) parks, so at most one thread waits.
//!
//! # Orderings
//! - `unpark`'s `swap(NOTIFIED)` is `Release`; it pairs with the `Acquire`
//!   consuming read in `park`/`park_timeout` (the fast-path CAS, the swap
//!   after a failed `EMPTY → PARKED`, the CAS after waking). Everything the
//!   waker wrote before `unpark` (a task pushed on a queue) is visible to the
//!   woken M when `park` returns.
//! - After `EMPTY → PARKED` fails with `NOTIFIED`, `park` still does a
//!   `swap(EMPTY)` rather than a plain store: a second `unpark` may have
//!   swapped `NOTIFIED` in again after our read, and only an RMW reading its
//!   write synchronizes with it.
//! - Lost wakeup: `unpark` that sees `PARKED` locks the mutex before
//!   `notify_one`. The parker held the mutex from its `EMPTY → PARKED` until
//!   `Condvar::wait` released it atomically, so the notify cannot fall
//!   between the two. An `unpark` that sees `EMPTY` leaves `NOTIFIED`, which
//!   the parker's `EMPTY → PARKED` CAS then fails on.
//!
//! # Netpoll
//! The idle M holding the netpoller role (netpoller.rs) sleeps in
//! `Driver::poll` instead of here; `Idle::wake_m` (idle.rs) unparks the
//! parker *and* breaks the poll when that M's `in_netpoll` flag is set, so
//! this file stays a plain parker. `park_timeout` remains for models and
//! tests that drive timers without a poller.
//!
//! # Timer precision
//! `park_timeout` waits for the exact duration it is given. On Linux the
//! kernel still delays a timed wakeup by the thread's timer slack (50 us by
//! default); [`tighten_timer_slack`], called once per M, cuts that to 1 us.
//! Measured with `measure_sleep_lateness` (`time/tests.rs`, release, this
//! 2-core machine under other builds): `sleep(1 ms)` lateness p50 79 us →
//! 28 us, p99 110-120 us → 50-150 us (the p99 is dominated by load).
//!
//! # Rejected alternatives
//! - `std::thread::park`: any code on the M (a user future calling a library
//!   that parks) can consume its token, and it offers no seam for netpoll.
//! - A futex on `state` directly: Linux-only, and the condvar costs the same
//!   syscalls on the slow path while the fast paths stay lock-free.
//! - A `bool` flag under the mutex: every `unpark` would take the lock even
//!   when nobody sleeps, which is the common case for a busy runtime.
//!
//! # Checked by
//! `tests/loom_park.rs`: `unpark` racing `park` and `park_timeout` (from one
//! and from two unparkers) always ends the park; a permit sent before park is
//! consumed by exactly one park.

use std::time::{Duration, Instant};

use gort_netpoll::loom::sync::atomic::AtomicUsize;
use gort_netpoll::loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use gort_netpoll::loom::sync::{Arc, Condvar, Mutex, MutexGuard};

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

struct Inner {
    state: AtomicUsize,
    mutex: Mutex<()>,
    condvar: Condvar,
}

/// The blocking half, owned by one M.
pub(crate) struct Parker {
    inner: Arc<Inner>,
}

/// The waking half: any thread may wake the M.
#[derive(Clone)]
pub(crate) struct Unparker {
    inner: Arc<Inner>,
}

impl Parker {
    /// A parker with no permit, and its unparker.
    pub(crate) fn new() -> (Parker, Unparker) {
        let inner = Arc::new(Inner {
            state: AtomicUsize::new(EMPTY),
            mutex: Mutex::new(()),
            condvar: Condvar::new(),
        });
        let unparker = Unparker {
            inner: inner.clone(),
        };
        (Parker { inner }, unparker)
    }

    /// Blocks until [`Unparker::unpark`] is called; returns at once if it
    /// was called since the last park returned (the permit is consumed).
    pub(crate) fn park(&mut self) {
        let Some(guard) = self.prepare_park() else {
            return;
        };
        let mut guard = guard;
        loop {
            guard = self
                .inner
                .condvar
                .wait(guard)
                .unwrap_or_else(|e| e.into_inner());
            if self.try_consume_permit() {
                return;
            }
            // Spurious wakeup: still PARKED, wait again.
        }
    }

    /// Like [`park`](Self::park), but returns after `timeout` at the latest.
    ///
    /// The wait uses the exact duration (no rounding to milliseconds): the
    /// scheduler passes "next timer deadline - now" and timer lateness is
    /// bounded by how precisely this returns. A spurious wakeup before the
    /// deadline waits again for the remaining time.
    pub(crate) fn park_timeout(&mut self, timeout: Duration) {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // Beyond the clock's range: that is "forever".
            return self.park();
        };
        if timeout.is_zero() {
            self.try_consume_permit();
            return;
        }
        let Some(mut guard) = self.prepare_park() else {
            return;
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            guard = match self.inner.condvar.wait_timeout(guard, remaining) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
            if self.try_consume_permit() {
                return;
            }
        }
        // Timed out, still holding the mutex. The swap (not a store) also
        // consumes a permit that arrived since the CAS above: Acquire pairs
        // with that unpark's Release swap.
        match self.inner.state.swap(EMPTY, Acquire) {
            PARKED | NOTIFIED => {}
            actual => unreachable!("park_timeout: inconsistent park state {actual}"),
        }
        drop(guard);
    }

    /// `NOTIFIED → EMPTY`: Acquire pairs with the Release swap in `unpark`.
    fn try_consume_permit(&self) -> bool {
        self.inner
            .state
            .compare_exchange(NOTIFIED, EMPTY, Acquire, Relaxed)
            .is_ok()
    }

    /// Consumes a pending permit (returns `None`) or moves `EMPTY → PARKED`
    /// and returns the mutex guard to wait with.
    fn prepare_park(&self) -> Option<MutexGuard<'_, ()>> {
        if self.try_consume_permit() {
            return None;
        }
        let guard = self.inner.mutex.lock().unwrap_or_else(|e| e.into_inner());
        match self
            .inner
            .state
            .compare_exchange(EMPTY, PARKED, Relaxed, Relaxed)
        {
            Ok(_) => Some(guard),
            Err(NOTIFIED) => {
                // See Orderings: swap, not store, to synchronize with a
                // second unpark that may have run since the failed CAS.
                let old = self.inner.state.swap(EMPTY, Acquire);
                debug_assert_eq!(old, NOTIFIED, "only unpark writes while we are not PARKED");
                None
            }
            Err(actual) => unreachable!("park: inconsistent park state {actual}"),
        }
    }
}

impl Unparker {
    /// Wakes the M blocked in [`Parker::park`], or leaves a permit so its
    /// next park returns at once. Several unparks before one park leave one
    /// permit.
    pub(crate) fn unpark(&self) {
        // Release: publishes the caller's work to the parker's Acquire read.
        // AcqRel: reading a previous NOTIFIED keeps the release sequence.
        match self.inner.state.swap(NOTIFIED, AcqRel) {
            EMPTY | NOTIFIED => return,
            PARKED => {}
            actual => unreachable!("unpark: inconsistent park state {actual}"),
        }
        // The parker set PARKED under the mutex and holds it until it is
        // inside `Condvar::wait`; taking it here means it is now waiting, so
        // the notify below cannot be lost (see Orderings).
        drop(self.inner.mutex.lock().unwrap_or_else(|e| e.into_inner()));
        self.inner.condvar.notify_one();
    }
}

impl std::fmt::Debug for Parker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parker")
            .field("state", &self.inner.state.load(Relaxed))
            .finish()
    }
}

impl std::fmt::Debug for Unparker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unparker").finish_non_exhaustive()
    }
}

/// Timer slack for Ms, in nanoseconds. Linux lets a sleeping thread's wakeup
/// slip by its "timer slack" (50 us by default) to batch wakeups; every timed
/// park then returns at least that late. 1 us keeps the batching for
/// coincident deadlines while making a 1 ms `sleep` land within the 0.3 ms
/// p99 lateness target with margin.
const TIMER_SLACK_NS: u64 = 1_000;

/// Tightens the calling thread's timer slack to [`TIMER_SLACK_NS`] (Linux;
/// elsewhere a no-op). The scheduler calls it once at the start of every M,
/// before its first `park_timeout`.
pub(crate) fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and only changes
        // the calling thread's timer slack; no pointer is passed. A failure
        // (returned as -1) leaves the default slack, which is still correct.
        let _ = unsafe {
            libc::prctl(
                libc::PR_SET_TIMERSLACK,
                TIMER_SLACK_NS as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
    }
}
