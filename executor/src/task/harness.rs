//! The typed operations behind the task vtable: poll, complete, cancel,
//! join-handle reads and drops, shutdown, free.
//!
//! Each function recovers `&Cell<F, S>` from the header pointer and does one
//! protocol step of `state.rs`; which bit grants access to which field is
//! written next to each `// SAFETY:` comment. Panics from user code (the
//! future's `poll` and `Drop`, the output's `Drop`) are caught here and never
//! unwind into the scheduler.

use std::future::Future;
use std::mem::{self, ManuallyDrop};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

use gort_netpoll::budget;

use super::join::JoinError;
use super::raw::{Cell, Header, Outcome, RawTask};
use super::state::{TransitionToIdle, TransitionToRunning};
use super::{Hint, Notified, Schedule, waker};
use crate::context;

/// # Safety
/// `ptr` must come from `Cell::<F, S>::allocate` and the caller must hold a
/// reference to the task, so the cell is alive for the returned lifetime.
unsafe fn cell<'a, F: Future, S>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
    // SAFETY: the header is the first field of the repr(C) cell (raw.rs), and
    // the caller holds a reference (this function's contract).
    unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
}

impl<F: Future, S> Cell<F, S> {
    /// Drops the future in place, catching a panic of its `Drop`. Afterwards
    /// neither half of the stage is live: the caller must `set_outcome`
    /// before it sets `COMPLETE`.
    ///
    /// # Safety
    /// The caller holds `RUNNING`, `COMPLETE` is clear and the future has not
    /// been dropped (Stage's invariant, raw.rs).
    unsafe fn drop_future(&self) -> Result<(), Box<dyn std::any::Any + Send>> {
        self.stage.with_mut(|p| {
            // SAFETY: RUNNING gives us the stage and the future is live
            // (contract); it is dropped once: the caller writes the outcome
            // next and nobody reads the future again.
            catch_unwind(AssertUnwindSafe(|| unsafe {
                ManuallyDrop::drop(&mut (*p).future)
            }))
        })
    }

    /// Writes the outcome over a dropped future.
    ///
    /// # Safety
    /// The caller holds `RUNNING`, has just dropped the future with
    /// `drop_future`, and sets `COMPLETE` next.
    unsafe fn set_outcome(&self, outcome: Outcome<F::Output>) {
        // SAFETY: the stage is ours (RUNNING) and holds nothing live (the
        // future is dropped), so writing the field overwrites nothing.
        self.stage
            .with_mut(|p| unsafe { (*p).outcome = ManuallyDrop::new(outcome) });
    }

    /// Takes the outcome, leaving `Consumed`.
    ///
    /// # Safety
    /// `COMPLETE` is set and the caller owns the stage: the `JoinHandle` if
    /// `JOIN_INTEREST` was set at completion, else the completer.
    unsafe fn take_outcome(&self) -> Outcome<F::Output> {
        // SAFETY: COMPLETE is set, so `outcome` is the live half, and the
        // caller owns it (contract).
        self.stage
            .with_mut(|p| unsafe { mem::replace(&mut *(*p).outcome, Outcome::Consumed) })
    }

    /// Drops the outcome, catching a panic of the output's `Drop`. The stage
    /// reads `Consumed` before the drop runs, so a panicking drop cannot lead
    /// to a second drop.
    ///
    /// # Safety
    /// As for `take_outcome`.
    unsafe fn drop_outcome(&self) -> Result<(), Box<dyn std::any::Any + Send>> {
        // SAFETY: forwarded contract.
        let old = unsafe { self.take_outcome() };
        catch_unwind(AssertUnwindSafe(move || drop(old)))
    }
}

/// `Vtable::poll`: the caller gives up a `Notified` reference, and gets one
/// back when the task woke itself during the poll.
///
/// # Safety
/// `ptr` is a `Cell<F, S>`; the caller owns a `Notified` reference.
pub(super) unsafe fn poll<F, S>(ptr: NonNull<Header>) -> Option<Notified>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the Notified reference the caller gives up keeps the cell alive
    // until the transition below decides its fate.
    let cell = unsafe { cell::<F, S>(ptr) };
    match cell.header.state.transition_to_running() {
        TransitionToRunning::Success => return poll_running(cell, ptr),
        TransitionToRunning::Cancelled => {
            // SAFETY: transition_to_running set RUNNING for us.
            unsafe { cancel_stage(cell) };
            complete(cell, 1);
        }
        TransitionToRunning::Failed => {}
        // SAFETY: the transition dropped the last reference.
        TransitionToRunning::Dealloc => unsafe { dealloc::<F, S>(ptr) },
    }
    None
}

/// Polls a task we hold `RUNNING` for; returns it when it woke itself
/// during the poll.
fn poll_running<F, S>(cell: &Cell<F, S>, ptr: NonNull<Header>) -> Option<Notified>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: we hold RUNNING (transition_to_running returned Success), and
    // the runner's reference keeps the cell alive while the waker is borrowed.
    let waker = unsafe { waker::WakerRef::new(ptr) };
    let mut cx = Context::from_waker(&waker);
    let id = cell.header.id;
    let res = catch_unwind(AssertUnwindSafe(|| {
        let _id = context::set_current_task_id(Some(id));
        budget::budget(|| {
            cell.stage.with_mut(|p| {
                // SAFETY: RUNNING (transition_to_running above) grants us
                // exclusive access to the stage, and COMPLETE is clear (the
                // transition fails on a complete task), so the future is the
                // live half (Stage's invariant, raw.rs). It lives in the heap
                // cell and is only dropped in place (drop_future), never
                // moved: the pinning guarantee holds.
                let fut = unsafe { Pin::new_unchecked(&mut *(*p).future) };
                fut.poll(&mut cx)
            })
        })
    }));
    match res {
        Ok(Poll::Pending) => match cell.header.state.transition_to_idle() {
            TransitionToIdle::Ok => {}
            TransitionToIdle::OkNotified => {
                // Woken during its own poll (yield_now, budget, a waker): the
                // runner's reference is now a Notified, which goes back to
                // the runner (`Notified::run_yielding`): the M queues it at
                // the tail of its runq (Go's `goyield`) with no trip through
                // `schedule` and no lookup of the current M.
                // SAFETY: transition_to_idle kept our reference as a Notified.
                return Some(unsafe { Notified::from_raw_task(RawTask::from_raw(ptr)) });
            }
            // SAFETY: the transition dropped the last reference.
            TransitionToIdle::OkDealloc => unsafe { dealloc::<F, S>(ptr) },
            TransitionToIdle::Cancelled => {
                // SAFETY: Cancelled leaves RUNNING set: we still own the stage.
                unsafe { cancel_stage(cell) };
                complete(cell, 1);
            }
        },
        Ok(Poll::Ready(out)) => {
            // SAFETY: we hold RUNNING and COMPLETE is clear; the future is
            // dropped before the output is stored.
            let next = match unsafe { cell.drop_future() } {
                Ok(()) => Outcome::Finished(out),
                Err(payload) => Outcome::Panicked(payload),
            };
            // SAFETY: RUNNING is still ours and the future was just dropped.
            unsafe { cell.set_outcome(next) };
            complete(cell, 1);
        }
        Err(payload) => {
            // SAFETY: we hold RUNNING and COMPLETE is clear. A second panic
            // from the future's Drop is dropped in favour of the first.
            let _ = unsafe { cell.drop_future() };
            // SAFETY: RUNNING is still ours and the future was just dropped.
            unsafe { cell.set_outcome(Outcome::Panicked(payload)) };
            complete(cell, 1);
        }
    }
    None
}

/// Drops the future and records the cancellation (or the panic of the
/// future's `Drop`).
///
/// # Safety
/// The caller holds `RUNNING`, `COMPLETE` is clear, and the caller completes
/// the task next.
unsafe fn cancel_stage<F: Future, S>(cell: &Cell<F, S>) {
    // SAFETY: the caller holds RUNNING before COMPLETE (contract).
    let next = match unsafe { cell.drop_future() } {
        Ok(()) => Outcome::Cancelled,
        Err(payload) => Outcome::Panicked(payload),
    };
    // SAFETY: as above, and the future was just dropped.
    unsafe { cell.set_outcome(next) };
}

/// `RUNNING` -> `COMPLETE`: hand the output to the `JoinHandle` (or drop it),
/// wake the joiner, leave the owned-tasks list and drop `held_refs` references
/// (1 for a runner, 0 for shutdown, which works on the list's reference).
fn complete<F: Future, S: Schedule>(cell: &Cell<F, S>, held_refs: usize) {
    let snapshot = cell.header.state.transition_to_complete();
    if !snapshot.is_join_interested() {
        // SAFETY: JOIN_INTEREST was clear when COMPLETE was set, and it is only
        // cleared before COMPLETE (unset_join_interest): no JoinHandle exists,
        // so the completer owns the output.
        let _ = unsafe { cell.drop_outcome() };
    } else if snapshot.is_join_waker_set() {
        cell.join_waker.with(|w| {
            // SAFETY: JOIN_WAKER was set when COMPLETE was: the JoinHandle
            // handed the field over (set_join_waker) and can no longer take it
            // back (unset_join_waker fails once COMPLETE is set).
            if let Some(w) = unsafe { &*w } {
                w.wake_by_ref();
            }
        });
    }
    let released = cell.scheduler.release(&cell.header);
    let n = held_refs + usize::from(released);
    if n > 0 && cell.header.state.ref_dec_n(n) {
        // SAFETY: ref_dec_n reported the last references gone.
        unsafe { dealloc::<F, S>(NonNull::from(&cell.header)) };
    }
}

/// `Vtable::schedule`.
///
/// # Safety
/// `ptr` is a `Cell<F, S>`; the caller gives up a `Notified` reference.
pub(super) unsafe fn schedule<F: Future, S: Schedule>(ptr: NonNull<Header>, hint: Hint) {
    // SAFETY: the caller's Notified reference keeps the cell alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    // SAFETY: the caller owns a Notified reference (contract); ownership moves.
    let task = unsafe { Notified::from_raw_task(RawTask::from_raw(ptr)) };
    cell.scheduler.schedule(task, hint);
}

/// `Vtable::dealloc`.
///
/// # Safety
/// `ptr` is a `Cell<F, S>` whose reference count reached zero.
pub(super) unsafe fn dealloc<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the cell was made by Box::new in Cell::allocate and no reference
    // remains (contract), so we may take the box back.
    let boxed = unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) };
    // A panicking Drop of a never-consumed stage must not unwind into a waker.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// `Vtable::try_read_output`.
///
/// # Safety
/// `ptr` is a `Cell<F, S>`, `dst` a `Poll<Result<F::Output, JoinError>>`, and
/// the caller is the task's `JoinHandle`.
pub(super) unsafe fn try_read_output<F: Future, S>(
    ptr: NonNull<Header>,
    dst: *mut (),
    waker: &Waker,
) {
    // SAFETY: the JoinHandle's reference keeps the cell alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    if !can_read_output(cell, waker) {
        return;
    }
    let id = cell.header.id;
    // SAFETY: COMPLETE is set with JOIN_INTEREST (we are the JoinHandle), so
    // the output is ours.
    let out = match unsafe { cell.take_outcome() } {
        Outcome::Finished(out) => Ok(out),
        Outcome::Cancelled => Err(JoinError::cancelled(id)),
        Outcome::Panicked(payload) => Err(JoinError::panic(id, payload)),
        _ => panic!("gort: JoinHandle polled after it returned Ready"),
    };
    // SAFETY: dst has the type named in the contract.
    unsafe { *dst.cast::<Poll<Result<F::Output, JoinError>>>() = Poll::Ready(out) };
}

/// True when the task is complete; otherwise leaves `waker` for the completer.
fn can_read_output<F: Future, S>(cell: &Cell<F, S>, waker: &Waker) -> bool {
    let state = &cell.header.state;
    let snapshot = state.load();
    if snapshot.is_complete() {
        return true;
    }
    let res = if snapshot.is_join_waker_set() {
        // SAFETY: while JOIN_WAKER is set the field is only read, here or by
        // the completer; nobody writes it.
        let same = cell
            .join_waker
            .with(|w| unsafe { &*w }.as_ref().is_some_and(|w| w.will_wake(waker)));
        if same {
            return false;
        }
        state
            .unset_join_waker()
            .and_then(|_| store_join_waker(cell, waker))
    } else {
        store_join_waker(cell, waker)
    };
    match res {
        Ok(_) => false,
        Err(s) => {
            debug_assert!(s.is_complete());
            true
        }
    }
}

fn store_join_waker<F: Future, S>(
    cell: &Cell<F, S>,
    waker: &Waker,
) -> Result<super::state::Snapshot, super::state::Snapshot> {
    // SAFETY: JOIN_WAKER is clear (checked or just cleared by the caller), so
    // the JoinHandle owns the field.
    cell.join_waker
        .with_mut(|w| unsafe { *w = Some(waker.clone()) });
    cell.header.state.set_join_waker()
}

/// `Vtable::drop_join_handle`.
///
/// # Safety
/// `ptr` is a `Cell<F, S>`; the caller is its `JoinHandle`, giving up its reference.
pub(super) unsafe fn drop_join_handle<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the JoinHandle's reference keeps the cell alive until the end.
    let cell = unsafe { cell::<F, S>(ptr) };
    if cell.header.state.unset_join_interest().is_err() {
        // SAFETY: the task completed while JOIN_INTEREST was set: the output
        // belongs to this JoinHandle.
        let _ = unsafe { cell.drop_outcome() };
    }
    // SAFETY: ptr is a live task (contract).
    unsafe { RawTask::from_raw(ptr) }.drop_reference();
}

/// `Vtable::shutdown`: the caller holds the owned list's reference.
///
/// # Safety
/// `ptr` is a `Cell<F, S>` and the caller holds a reference.
pub(super) unsafe fn shutdown<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the cell alive.
    let cell = unsafe { cell::<F, S>(ptr) };
    if !cell.header.state.transition_to_shutdown() {
        // Running (its runner cancels after the poll) or already complete.
        return;
    }
    // SAFETY: transition_to_shutdown set RUNNING for us.
    unsafe { cancel_stage(cell) };
    complete(cell, 0);
}
