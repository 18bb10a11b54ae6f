//! The G's memory: one allocation holding header, scheduler, join waker and stage.
//!
//! `Cell<F, S>` is `#[repr(C)]` with the [`Header`] first, so a `NonNull<Header>`
//! is also a pointer to the whole cell; the [`Vtable`] in the header recovers
//! the concrete `F` and `S`. Everything that is not generic ([`RawTask`], the
//! queues, the owned-tasks list) handles `NonNull<Header>` only.
//!
//! Size on x86-64 (not loom): header 56 bytes (state, vtable, two list links,
//! id, spawn location, diagnostics stamp), scheduler 8 (an `Arc`), join waker 16, then the stage.

use std::future::Future;
use std::panic::Location;
use std::ptr::NonNull;
use std::task::Waker;

use gort_netpoll::loom::cell::UnsafeCell;

use super::id::Id;
use super::state::State;
use super::{Schedule, harness};

/// The non-generic part of a task, shared by every reference kind.
#[repr(C)]
pub(crate) struct Header {
    /// Flags and reference count; see `state.rs`.
    pub(crate) state: State,
    /// Functions that know the concrete future and scheduler types.
    pub(crate) vtable: &'static Vtable,
    /// Owned-tasks list links: read and written only under the shard lock of
    /// the list the task is in (`list.rs`).
    pub(crate) owned_prev: UnsafeCell<Option<NonNull<Header>>>,
    /// See `owned_prev`.
    pub(crate) owned_next: UnsafeCell<Option<NonNull<Header>>>,
    /// Written once before the task is published; read-only afterwards.
    pub(crate) id: Id,
    /// Where the task was spawned (`#[track_caller]`); read-only.
    pub(crate) spawned_at: &'static Location<'static>,
    /// DIAG: "in this state since" stamp for metrics and the task dump
    /// (metrics/probe.rs); a statistic written by wakers and the poller.
    pub(crate) since: crate::metrics::Counter,
}

// SAFETY: the header's mutable fields are the atomic state word and the list
// links, which are only accessed under the owned-list shard lock (list.rs).
unsafe impl Send for Header {}
// SAFETY: as for Send: every shared access is atomic or lock-protected.
unsafe impl Sync for Header {}

/// Type-erased operations of one task type.
pub(crate) struct Vtable {
    /// Polls the task; the caller gives up a `Notified` reference.
    pub(crate) poll: unsafe fn(NonNull<Header>),
    /// Hands a `Notified` reference to the task's scheduler.
    pub(crate) schedule: unsafe fn(NonNull<Header>, super::Hint),
    /// Frees the cell (reference count reached zero).
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
    /// Moves the output into `*dst` (a `Poll<Result<T, JoinError>>`) if done,
    /// else registers the waker.
    pub(crate) try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// The `JoinHandle` is dropped.
    pub(crate) drop_join_handle: unsafe fn(NonNull<Header>),
    /// Runtime shutdown: cancel the task if nobody is running it.
    pub(crate) shutdown: unsafe fn(NonNull<Header>),
}

/// What the stage holds.
pub(crate) enum Stage<F: Future> {
    /// The future, until it returns `Ready`, panics or is cancelled.
    Running(F),
    /// Its output, until the `JoinHandle` takes it or the task is freed.
    Finished(F::Output),
    /// Aborted or shut down before finishing.
    Cancelled,
    /// The future (or its `Drop`) panicked: the payload.
    ///
    /// Keeping these two apart from `Finished` (instead of storing a
    /// `Result<T, JoinError>`) keeps the stage at `max(future, output, 16)`
    /// bytes: the `JoinError`, with its id, is built when it is read.
    Panicked(Box<dyn std::any::Any + Send + 'static>),
    /// Nothing left.
    Consumed,
}

/// The whole allocation.
#[repr(C)]
pub(crate) struct Cell<F: Future, S> {
    /// Must stay first: `NonNull<Header>` casts to `NonNull<Cell>`.
    pub(crate) header: Header,
    /// The runtime that runs this task; read-only after creation.
    pub(crate) scheduler: S,
    /// Waker of the task awaiting the `JoinHandle`; ownership follows the
    /// `JOIN_WAKER` bit (state.rs, task/mod.rs).
    pub(crate) join_waker: UnsafeCell<Option<Waker>>,
    /// Owned by the holder of `RUNNING` before `COMPLETE`, by the `JoinHandle`
    /// (or the completer when there is none) after.
    pub(crate) stage: UnsafeCell<Stage<F>>,
}

impl<F, S> Cell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    const VTABLE: Vtable = Vtable {
        poll: harness::poll::<F, S>,
        schedule: harness::schedule::<F, S>,
        dealloc: harness::dealloc::<F, S>,
        try_read_output: harness::try_read_output::<F, S>,
        drop_join_handle: harness::drop_join_handle::<F, S>,
        shutdown: harness::shutdown::<F, S>,
    };

    /// Allocates a task: the single heap allocation of a spawn.
    pub(crate) fn allocate(
        future: F,
        scheduler: S,
        id: Id,
        spawned_at: &'static Location<'static>,
    ) -> NonNull<Header> {
        let cell = Box::new(Cell {
            header: Header {
                state: State::new(),
                vtable: &Self::VTABLE,
                owned_prev: UnsafeCell::new(None),
                owned_next: UnsafeCell::new(None),
                id,
                spawned_at,
                since: crate::metrics::Counter::default(),
            },
            scheduler,
            join_waker: UnsafeCell::new(None),
            stage: UnsafeCell::new(Stage::Running(future)),
        });
        NonNull::from(Box::leak(cell)).cast()
    }
}

/// A copyable, non-owning pointer to a task: the reference kinds
/// (`Notified`, `Task`, `JoinHandle`, wakers) wrap it and decide what it owns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RawTask {
    ptr: NonNull<Header>,
}

impl RawTask {
    /// Wraps a header pointer.
    ///
    /// # Safety
    /// `ptr` must point to a live task cell (one made by `Cell::allocate`).
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    pub(crate) fn header_ptr(self) -> NonNull<Header> {
        self.ptr
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: a RawTask is only made from a live cell (from_raw's contract),
        // and every user holds a reference that keeps the cell alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn id(self) -> Id {
        self.header().id
    }

    /// Polls; consumes the caller's `Notified` reference.
    pub(crate) fn poll(self) {
        // SAFETY: the vtable belongs to this cell (written in Cell::allocate)
        // and the caller gives up a Notified reference, as `poll` expects.
        unsafe { (self.header().vtable.poll)(self.ptr) }
    }

    /// Schedules; consumes a `Notified` reference the caller created.
    pub(crate) fn schedule(self, hint: super::Hint) {
        // SAFETY: as in `poll`; the caller owns a Notified reference.
        unsafe { (self.header().vtable.schedule)(self.ptr, hint) }
    }

    /// Frees the cell.
    ///
    /// # Safety
    /// The reference count must have reached zero.
    pub(crate) unsafe fn dealloc(self) {
        // SAFETY: refcount is zero (caller's contract): nobody else uses the cell.
        unsafe { (self.header().vtable.dealloc)(self.ptr) }
    }

    /// Drops one reference, freeing the cell if it was the last.
    pub(crate) fn drop_reference(self) {
        if self.header().state.ref_dec() {
            // SAFETY: ref_dec returned true: ours was the last reference.
            unsafe { self.dealloc() }
        }
    }

    /// Runtime shutdown; consumes no reference.
    pub(crate) fn shutdown(self) {
        // SAFETY: the caller holds a reference (the owned list's).
        unsafe { (self.header().vtable.shutdown)(self.ptr) }
    }

    /// See `Vtable::try_read_output`.
    ///
    /// # Safety
    /// `dst` must point to a `Poll<Result<T, JoinError>>` where `T` is the
    /// task's output type; the caller must be the task's `JoinHandle`.
    pub(crate) unsafe fn try_read_output(self, dst: *mut (), waker: &Waker) {
        // SAFETY: forwarded contract.
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst, waker) }
    }

    /// # Safety
    /// The caller must be the task's `JoinHandle`, giving up its reference.
    pub(crate) unsafe fn drop_join_handle(self) {
        // SAFETY: forwarded contract.
        unsafe { (self.header().vtable.drop_join_handle)(self.ptr) }
    }
}

// SAFETY: a RawTask is a pointer to a Sync header; what may be done through it
// is restricted by the reference kinds wrapping it.
unsafe impl Send for RawTask {}
// SAFETY: as for Send.
unsafe impl Sync for RawTask {}
