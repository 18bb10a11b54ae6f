//! `Waker`s that point straight at the task cell.
//!
//! A waker is one task reference (state.rs counts it): `clone` adds one,
//! `drop` removes one, `wake` turns it into a `Notified` when the task was
//! waiting, and `wake_by_ref` makes a new one. The runner polls with a
//! [`WakerRef`], which borrows the runner's own reference instead of making
//! one, so a poll that never clones its waker touches no reference count.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::Hint;
use super::raw::{Header, RawTask};
use super::state::TransitionToNotified;

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_waker, wake_by_val, wake_by_ref, drop_waker);

fn raw_waker(ptr: NonNull<Header>) -> RawWaker {
    RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE)
}

/// # Safety
/// `data` is the header pointer of a waker made by this module, which owns or
/// borrows a reference, so the cell is alive.
unsafe fn raw_task(data: *const ()) -> RawTask {
    // SAFETY: data came from raw_waker (non-null header pointer), and the
    // waker's reference keeps the cell alive (contract).
    unsafe { RawTask::from_raw(NonNull::new_unchecked(data as *mut Header)) }
}

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: RawWakerVTable contract: data comes from one of our wakers.
    let task = unsafe { raw_task(data) };
    task.header().state.ref_inc();
    raw_waker(task.header_ptr())
}

unsafe fn wake_by_val(data: *const ()) {
    // SAFETY: RawWakerVTable contract: data comes from one of our wakers.
    let task = unsafe { raw_task(data) };
    match task.header().state.transition_to_notified_by_val() {
        TransitionToNotified::Submit => task.schedule(Hint::Wake),
        // SAFETY: the transition dropped the last reference.
        TransitionToNotified::Dealloc => unsafe { task.dealloc() },
        TransitionToNotified::DoNothing => {}
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: RawWakerVTable contract: data comes from one of our wakers.
    let task = unsafe { raw_task(data) };
    match task.header().state.transition_to_notified_by_ref() {
        TransitionToNotified::Submit => task.schedule(Hint::Wake),
        TransitionToNotified::Dealloc => unreachable!("gort: wake_by_ref dropped a reference"),
        TransitionToNotified::DoNothing => {}
    }
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: RawWakerVTable contract: data comes from one of our wakers.
    let task = unsafe { raw_task(data) };
    task.drop_reference();
}

/// A waker borrowing the runner's reference for the duration of one poll.
pub(crate) struct WakerRef<'a> {
    waker: ManuallyDrop<Waker>,
    _borrow: PhantomData<&'a Header>,
}

impl WakerRef<'_> {
    /// # Safety
    /// The caller holds a reference to the task for the returned lifetime.
    pub(crate) unsafe fn new<'a>(ptr: NonNull<Header>) -> WakerRef<'a> {
        // SAFETY: our vtable upholds RawWaker's contract; ManuallyDrop keeps
        // the borrowed reference from being dropped with the waker.
        let waker = unsafe { Waker::from_raw(raw_waker(ptr)) };
        WakerRef {
            waker: ManuallyDrop::new(waker),
            _borrow: PhantomData,
        }
    }
}

impl Deref for WakerRef<'_> {
    type Target = Waker;
    fn deref(&self) -> &Waker {
        &self.waker
    }
}
