//! One waker slot per I/O direction: Go's `rg`/`wg` binary semaphore.
//!
//! # Purpose
//! A task that found a socket not ready leaves its [`Waker`] here; the poller
//! takes it when readiness arrives. Registering and taking never block and
//! never lock, so the I/O fast path of a socket costs only atomic operations.
//!
//! # States
//! `state` is a small bit set:
//! - `WAITING` (0): nobody is touching `waker`; it may hold a waker or not.
//! - `REGISTERING` (bit 0): [`AtomicWaker::register`] owns `waker` and is
//!   replacing it.
//! - `TAKING` (bit 1): [`AtomicWaker::take`] owns `waker` and is removing it,
//!   or (together with `REGISTERING`) a take arrived while a register owned
//!   the slot and left the job of waking to the registering task.
//!
//! # Transitions
//! - register, by the task: CAS `WAITING -> REGISTERING` (Acquire), store the
//!   waker, then CAS `REGISTERING -> WAITING` (AcqRel). If that CAS fails the
//!   state is `REGISTERING | TAKING`: a take came and went without the waker,
//!   so the registering task takes the waker back out, swaps in `WAITING`
//!   (AcqRel) and wakes it itself. If the first CAS fails because a take
//!   holds the slot, the caller's waker is woken at once (the take may be
//!   removing an older waker of the same task).
//! - take, by the poller or by driver shutdown: `fetch_or(TAKING)` (AcqRel).
//!   From `WAITING` it owns the slot, removes the waker and clears `TAKING`
//!   with `fetch_and` (Release). From any other state it leaves without the
//!   waker: a register in progress will see `TAKING` and wake, and a
//!   concurrent take will return the waker.
//!
//! # Ownership
//! `waker` is read and written only by the thread that moved `state` out of
//! `WAITING` (register: `REGISTERING`; take: `TAKING`), so at most one thread
//! touches the cell at a time.
//!
//! # Orderings
//! - The CAS `REGISTERING -> WAITING` in `register` (Release) pairs with the
//!   `fetch_or(TAKING)` in `take` (Acquire): a take that owns the slot sees the
//!   waker the last register stored.
//! - The `fetch_and(!TAKING)` in `take` (Release) pairs with the CAS
//!   `WAITING -> REGISTERING` in `register` (Acquire): the next register sees
//!   the cell emptied.
//! - The caller's protocol around this slot (set readiness, then take; or
//!   register, then re-check readiness) relies on both sides doing a
//!   read-modify-write on `state`: RMWs on one location are totally ordered, so
//!   either the take reads the register's final store (and gets the waker) or
//!   the register's first CAS reads the take's store, which carries the
//!   readiness written before it (see `registration.rs`).
//!
//! # Rejected alternatives
//! - A `Mutex<Option<Waker>>`: correct and simple, but it puts a lock on every
//!   would-block read, which an echo server does once per message.
//! - `futures::task::AtomicWaker`: the same idea, but it uses `std` atomics,
//!   which loom cannot see, and it wakes where the poller must only collect.
//!
//! # Checked by
//! `src/tests/loom_registration.rs`: a readiness event racing with a register or
//! with a clear after `WouldBlock` always ends with the task woken or seeing
//! readiness.

use std::fmt;
use std::task::Waker;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

const WAITING: usize = 0;
const REGISTERING: usize = 0b01;
const TAKING: usize = 0b10;

/// A waker slot that one task registers into and the poller takes out of.
pub(crate) struct AtomicWaker {
    state: AtomicUsize,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: `waker` is only touched by the single thread that moved `state` out
// of WAITING (see the Ownership section above), and `Waker` is Send + Sync.
unsafe impl Send for AtomicWaker {}
// SAFETY: as for Send: every access to `waker` is serialized through `state`.
unsafe impl Sync for AtomicWaker {}

impl AtomicWaker {
    /// An empty slot.
    pub(crate) fn new() -> AtomicWaker {
        AtomicWaker {
            state: AtomicUsize::new(WAITING),
            waker: UnsafeCell::new(None),
        }
    }

    /// Stores `waker` so that the next [`take`](Self::take) returns it.
    ///
    /// If a take races with this call, `waker` is woken here instead; the
    /// caller then re-checks readiness and finds it (see `registration.rs`).
    pub(crate) fn register(&self, waker: &Waker) {
        match self.state.compare_exchange(
            WAITING,
            REGISTERING,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.waker.with_mut(|slot| {
                    // SAFETY: we moved state WAITING -> REGISTERING just above,
                    // so no other thread touches the cell until we leave it.
                    let slot = unsafe { &mut *slot };
                    match slot {
                        Some(old) if old.will_wake(waker) => {}
                        _ => *slot = Some(waker.clone()),
                    }
                });
                if let Err(actual) = self.state.compare_exchange(
                    REGISTERING,
                    WAITING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    // A take ran while we held the slot and left without the
                    // waker: we still own the cell (REGISTERING is set).
                    debug_assert_eq!(actual, REGISTERING | TAKING);
                    let taken = self.waker.with_mut(|slot| {
                        // SAFETY: REGISTERING is still set (the CAS failed),
                        // so the cell is still ours.
                        unsafe { (*slot).take() }
                    });
                    // A swap rather than a store: same effect (a racing take
                    // can only have re-set TAKING, which we are answering by
                    // waking), and loom models RMWs exactly (loom#254).
                    self.state.swap(WAITING, Ordering::AcqRel);
                    if let Some(taken) = taken {
                        taken.wake();
                    }
                }
            }
            Err(_) => {
                // A take owns the slot right now: whatever it removes, our
                // task must not sleep through it.
                waker.wake_by_ref();
            }
        }
    }

    /// Removes the registered waker, if any, for the caller to wake.
    pub(crate) fn take(&self) -> Option<Waker> {
        match self.state.fetch_or(TAKING, Ordering::AcqRel) {
            WAITING => {
                let waker = self.waker.with_mut(|slot| {
                    // SAFETY: the fetch_or moved state WAITING -> TAKING, so we
                    // own the cell until we clear TAKING below.
                    unsafe { (*slot).take() }
                });
                self.state.fetch_and(!TAKING, Ordering::Release);
                waker
            }
            // REGISTERING: the register will see TAKING and wake its waker.
            // TAKING: another take owns the slot and returns the waker.
            _ => None,
        }
    }
}

impl fmt::Debug for AtomicWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicWaker")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
