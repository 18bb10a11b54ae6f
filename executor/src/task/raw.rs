//! The G's memory: one allocation holding header, scheduler, join waker and stage.
//!
//! `Cell<F, S>` is `#[repr(C)]` with the [`Header`] first, so a `NonNull<Header>`
//! is also a pointer to the whole cell; the [`Vtable`] in the header recovers
//! the concrete `F` and `S`. Everything that is not generic ([`RawTask`], the
//! queues, the owned-tasks list) handles `NonNull<Header>` only.
//!
//! Size on x86-64 (not loom): header 40 bytes (state, vtable, two list links,
//! id), scheduler 8 (an `Arc`), join waker 16, the stage (a tagless union
//! of the future and its outcome: `max(output, 16)` plus a tag, 24 bytes for
//! a `()` output), then the spawn location 8.

use std::future::Future;
use std::mem::ManuallyDrop;
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
}

// SAFETY: the header's mutable fields are the atomic state word and the list
// links, which are only accessed under the owned-list shard lock (list.rs).
unsafe impl Send for Header {}
// SAFETY: as for Send: every shared access is atomic or lock-protected.
unsafe impl Sync for Header {}

/// Type-erased operations of one task type.
pub(crate) struct Vtable {
    /// Polls the task; the caller gives up a `Notified` reference. A task
    /// that woke itself during the poll comes back as a `Notified` for the
    /// caller to queue (harness.rs, `poll_running`).
    pub(crate) poll: unsafe fn(NonNull<Header>) -> Option<super::Notified>,
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
    /// Where the task was spawned (diagnostics: sysmon's handoff warning).
    pub(crate) spawned_at: unsafe fn(NonNull<Header>) -> &'static Location<'static>,
}

/// The future, or what became of it: a union without a tag of its own.
///
/// The state word already says which half is live, so an enum tag here would
/// be a second copy of `COMPLETE` that costs a word whenever the future has
/// no niche (async blocks have none): for a 40-byte future the cell was 112
/// bytes and malloc's 128-byte class; without the tag it is 104 bytes and
/// the 112-byte class (measured with `benches/idle_task_memory.rs`).
///
/// - `COMPLETE` clear: `future` is live. It stays live until the holder of
///   `RUNNING` drops it, and that same holder writes `outcome` before it sets
///   `COMPLETE` (harness.rs: `poll_running`, `cancel_stage`), so no one else
///   ever sees a dropped future.
/// - `COMPLETE` set: `outcome` is live.
pub(crate) union Stage<F: Future> {
    /// Live while `COMPLETE` is clear.
    pub(crate) future: ManuallyDrop<F>,
    /// Live once `COMPLETE` is set (and written just before it is).
    pub(crate) outcome: ManuallyDrop<Outcome<F::Output>>,
}

/// What the stage holds once the future is gone.
pub(crate) enum Outcome<T> {
    /// The future's output, until the `JoinHandle` takes it or the task is freed.
    Finished(T),
    /// Aborted or shut down before finishing.
    Cancelled,
    /// The future (or its `Drop`) panicked: the payload.
    ///
    /// Keeping these two apart from `Finished` (instead of storing a
    /// `Result<T, JoinError>`) keeps the outcome at `max(output, 16)` bytes
    /// plus a tag: the `JoinError`, with its id, is built when it is read.
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
    /// (or the completer when there is none) after; which half is live
    /// follows `COMPLETE` (see [`Stage`]).
    pub(crate) stage: UnsafeCell<Stage<F>>,
    /// The `spawn` call site (`#[track_caller]`); read-only. Kept out of the
    /// header: only diagnostics read it.
    pub(crate) spawned_at: &'static Location<'static>,
}

impl<F: Future, S> Drop for Cell<F, S> {
    fn drop(&mut self) {
        // `&mut self`: the reference count reached zero (harness.rs `dealloc`),
        // so the state word no longer changes and the stage is ours.
        let complete = self.header.state.load().is_complete();
        self.stage.with_mut(|p| {
            // SAFETY: exclusive access (above); COMPLETE says which half is
            // live (Stage's invariant), and that half is dropped once, here.
            unsafe {
                if complete {
                    ManuallyDrop::drop(&mut (*p).outcome);
                } else {
                    ManuallyDrop::drop(&mut (*p).future);
                }
            }
        });
    }
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
        spawned_at: Self::spawned_at,
    };

    /// `Vtable::spawned_at`.
    ///
    /// # Safety
    /// `ptr` is a live `Cell<F, S>`.
    unsafe fn spawned_at(ptr: NonNull<Header>) -> &'static Location<'static> {
        // SAFETY: the header is the first field of the repr(C) cell and the
        // cell is alive (contract); `spawned_at` is read-only after allocate.
        unsafe { ptr.cast::<Cell<F, S>>().as_ref().spawned_at }
    }

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
            },
            scheduler,
            join_waker: UnsafeCell::new(None),
            stage: UnsafeCell::new(Stage {
                future: ManuallyDrop::new(future),
            }),
            spawned_at,
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

    /// Where the task was spawned.
    pub(crate) fn spawned_at(self) -> &'static Location<'static> {
        // SAFETY: the vtable belongs to this cell and the caller's reference
        // keeps it alive (from_raw's contract).
        unsafe { (self.header().vtable.spawned_at)(self.ptr) }
    }

    /// Polls; consumes the caller's `Notified` reference. Returns the task
    /// if it woke itself during the poll.
    pub(crate) fn poll(self) -> Option<super::Notified> {
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
