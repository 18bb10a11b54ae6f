//! Whether a thread is blocked in `Driver::poll`, and interrupting it.
//!
//! # Purpose
//! [`Handle::unpark`](crate::Handle::unpark) must end a blocked poll (Go's
//! `netpollBreak`, one eventfd write through mio's `Waker`) but should cost
//! no syscall when nobody is blocked, which under load is nearly always. And
//! an unpark that lands just before the poller starts waiting must not be
//! lost. [`Park`] decides, per unpark, whether the syscall is needed.
//!
//! # States
//! `state` (an `AtomicUsize`):
//! - `IDLE`: nobody is blocked and no interrupt is pending.
//! - `NOTIFIED`: `unpark` came while nobody was blocked; the next blocking
//!   poll returns at once instead of sleeping.
//! - `POLLING`: a thread is in (or about to enter) a blocking wait.
//! - `WOKEN`: `POLLING`, and the waker has been (or is being) fired.
//!
//! # Transitions
//! - [`Park::begin_blocking`], by the poller (the holder of the driver's
//!   poller mutex, so one thread at a time): CAS `IDLE -> POLLING`. If it
//!   finds `NOTIFIED` it swaps in `IDLE` (consuming the interrupt) and the
//!   poll does not wait.
//! - [`Park::end_blocking`], by the same poller after the wait: swap `IDLE`.
//! - [`Park::unpark`], by anyone: CAS `IDLE -> NOTIFIED` (no syscall) or
//!   `POLLING -> WOKEN` (returns true: the caller fires the waker). From
//!   `NOTIFIED` or `WOKEN` nothing: a wakeup is already on its way.
//!
//! # Ownership
//! `state` is the only field; every write is an RMW.
//!
//! # Orderings
//! All transitions are RMWs (AcqRel) on one word, so `unpark` and
//! `begin_blocking` are totally ordered: either `unpark` comes first and
//! `begin_blocking` sees `NOTIFIED` (no wait), or it comes second and sees
//! `POLLING` (fires the waker), or it comes after `end_blocking` and leaves
//! `NOTIFIED` for the next poll. The executor publishes its work (a pushed
//! task) before calling `unpark` and checks its queues before polling; the
//! RMW chain on `state` makes that publication visible to the poller.
//!
//! # Rejected alternatives
//! - Always firing the waker: one syscall per spawned task even when every M
//!   is busy.
//! - A plain `polling: AtomicBool` checked by `unpark`: an unpark between the
//!   executor's last queue check and the poller setting the flag would be
//!   skipped and the poller would sleep with work queued.
//!
//! # Checked by
//! `src/tests/loom_park.rs`: an unpark racing a blocking poll is never lost
//! (the poll did not wait, or the waker fired during the wait, or the
//! interrupt is still pending for the next poll). `tests/driver.rs` checks
//! the real waker: `unpark_interrupts_a_blocked_poll`,
//! `unpark_before_poll_is_not_lost_and_is_consumed`.

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

const IDLE: usize = 0;
const NOTIFIED: usize = 1;
const POLLING: usize = 2;
const WOKEN: usize = 3;

/// The park state of one driver's poller.
#[derive(Debug)]
pub(crate) struct Park {
    state: AtomicUsize,
}

impl Park {
    /// Nobody polling, nothing pending.
    pub(crate) fn new() -> Park {
        Park {
            state: AtomicUsize::new(IDLE),
        }
    }

    /// Poller, before a blocking wait: true if it may wait; false if an
    /// unpark is pending (consumed here), so it must poll without waiting.
    pub(crate) fn begin_blocking(&self) -> bool {
        match self
            .state
            .compare_exchange(IDLE, POLLING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(actual) => {
                // POLLING and WOKEN are set only by the one poller, us.
                debug_assert_eq!(
                    actual, NOTIFIED,
                    "gort netpoll: begin_blocking: bad park state"
                );
                self.state.swap(IDLE, Ordering::AcqRel);
                false
            }
        }
    }

    /// Poller, after a blocking wait.
    pub(crate) fn end_blocking(&self) {
        self.state.swap(IDLE, Ordering::AcqRel);
    }

    /// Records an interrupt; true if the caller must fire the waker (a
    /// thread is blocked and nobody has fired it yet).
    pub(crate) fn unpark(&self) -> bool {
        let mut curr = self.state.load(Ordering::Acquire);
        loop {
            let next = match curr {
                IDLE => NOTIFIED,
                POLLING => WOKEN,
                _ => return false,
            };
            match self
                .state
                .compare_exchange(curr, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return curr == POLLING,
                Err(actual) => curr = actual,
            }
        }
    }

    /// Whether a thread is in a blocking wait.
    pub(crate) fn is_polling(&self) -> bool {
        self.state.load(Ordering::Acquire) >= POLLING
    }

    /// Whether an interrupt is pending for the next blocking poll.
    #[cfg(all(test, loom))]
    pub(crate) fn is_notified(&self) -> bool {
        self.state.load(Ordering::Acquire) == NOTIFIED
    }
}
