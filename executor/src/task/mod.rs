//! Tasks: gort's G. The memory, state machine and handles of a spawned future.
//!
//! # The allocation
//! A spawn makes exactly one heap allocation, a `Cell<F, S>` (raw.rs):
//!
//! | field | bytes (x86-64) | written by |
//! |---|---|---|
//! | `Header::state` | 8 | everyone, atomically (state.rs) |
//! | `Header::vtable` | 8 | set at allocation, read-only |
//! | `Header::owned_prev/next` | 16 | the owned-tasks list, under its shard lock (list.rs) |
//! | `Header::id` | 8 | set at allocation, read-only |
//! | `scheduler` | 8 | set at allocation, read-only (an `Arc` of the runtime) |
//! | `join_waker` | 16 | see "join waker" below |
//! | `stage` | max(future, outcome): no tag of its own, `COMPLETE` says which half is live | see "stage" below |
//!
//! There is no intrusive run-queue pointer: the run queues hold task pointers
//! in their own slots (the local runq is a ring, the global queue a deque).
//!
//! # Kinds of reference (each counts one in the state word)
//! - **OwnedTasks** (list.rs): from spawn until the task completes or
//!   shutdown unlinks it; lets shutdown find tasks nobody will wake.
//! - **`Notified`**: the task is scheduled. It exists exactly while `NOTIFIED`
//!   is set and no M runs the task, lives in a run queue or in the hands of an
//!   M, and is consumed by polling (it becomes the runner's reference) or by
//!   dropping (shutdown). Implements `queue::QueueItem`.
//! - **runner**: the `Notified` after `transition_to_running`; released by
//!   `transition_to_idle` or after completion.
//! - **`JoinHandle`**: until dropped.
//! - **`Waker`**s: one each (waker.rs). The runner's `WakerRef` borrows the
//!   runner's reference instead.
//!
//! A new task starts with three: list, `JoinHandle`, first `Notified`.
//!
//! # Field ownership
//! - **stage**: before `COMPLETE`, only the thread holding `RUNNING` may touch
//!   it (poll, cancel). After `COMPLETE`: the `JoinHandle`, if `JOIN_INTEREST`
//!   was set at completion, else the completer (which drops the output at
//!   once). `dealloc` drops whatever is left.
//! - **join waker**: `JOIN_WAKER` clear: the `JoinHandle` may write it.
//!   `JOIN_WAKER` set and not `COMPLETE`: read-only for the `JoinHandle` (it
//!   must clear the bit before writing). After `COMPLETE` with `JOIN_WAKER`:
//!   the completer reads it (to wake). The waker itself is dropped with the cell.
//! - **links**: the owned-tasks shard lock.
//!
//! # Risky cases, and why they hold
//! - *Woken during its own poll*: the wake sets `NOTIFIED` without a new
//!   `Notified` (state.rs `transition_to_notified_by_*` while `RUNNING`);
//!   `transition_to_idle` sees it and turns the runner's reference into the
//!   `Notified`, which the poll returns to the runner
//!   (`Notified::run_yielding`; an M puts it at the tail of its runq) or
//!   hands to the scheduler with `Hint::Yield` (`Notified::run`).
//! - *Aborted during its poll*: `abort` sets `CANCELLED` only; the runner's
//!   `transition_to_idle` returns `Cancelled` while keeping `RUNNING`, and the
//!   runner drops the future. Had the poll returned `Ready`, the abort is moot.
//! - *`JoinHandle` dropped while the task completes*: `unset_join_interest`
//!   and `transition_to_complete` are both RMWs of the word; whichever comes
//!   second sees the other's bit, and exactly one of them drops the output.
//! - *Shutdown while an M polls the task*: `transition_to_shutdown` cannot take
//!   `RUNNING`, sets `CANCELLED`, and the M cancels after its poll.
//!
//! Loom models: `src/tests/loom_task.rs`.

mod builder;
mod harness;
mod id;
mod join;
pub(crate) mod list;
pub(crate) mod raw;
pub(crate) mod state;
mod waker;
mod yield_now;

use std::future::Future;
use std::ptr::NonNull;

pub use builder::Builder;
pub use id::{Id, id, try_id};
pub use join::{JoinError, JoinHandle};
pub use yield_now::{Unconstrained, YieldNow, unconstrained, yield_now};

pub use crate::blocking::spawn_blocking;
pub use crate::syscall::block_in_place;
pub use gort_netpoll::budget::{ConsumeBudget, consume_budget};

use raw::{Header, RawTask};

/// Spawns a future on the current runtime; see [`crate::spawn`].
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::spawn(future)
}

/// Why a `Notified` reaches the scheduler; picks the queue it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hint {
    /// A waker fired (or `abort`): runnext when on an M of the runtime.
    Wake,
    /// The task woke itself during its poll (yield) and its runner gave it
    /// to the scheduler (`Notified::run`): tail of the local runq. (The Ms
    /// queue their own tasks' yields without `schedule`: m.rs.)
    Yield,
}

/// The scheduler side of a task: where `Notified`s go, and the list that owns
/// the tasks.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Queues a scheduled task.
    fn schedule(&self, task: Notified, hint: Hint);
    /// Unlinks a completing task from the owned-tasks list; true when it was
    /// linked (the caller then drops the list's reference).
    fn release(&self, task: &Header) -> bool;
}

/// A scheduled task: the owned reference that lives in run queues.
pub(crate) struct Notified {
    raw: RawTask,
}

impl Notified {
    /// # Safety
    /// `raw` must carry a `Notified` reference, which moves into the result.
    pub(crate) unsafe fn from_raw_task(raw: RawTask) -> Notified {
        Notified { raw }
    }

    /// The task's id.
    pub(crate) fn id(&self) -> Id {
        self.raw.id()
    }

    /// Polls the task on this thread, consuming the reference. A task that
    /// woke itself during the poll (a yield) goes to its scheduler with
    /// `Hint::Yield`.
    pub(crate) fn run(self) {
        if let Some(task) = self.run_yielding() {
            let raw = task.raw;
            std::mem::forget(task);
            // The Notified reference moves to the scheduler.
            raw.schedule(Hint::Yield);
        }
    }

    /// Polls the task on this thread, consuming the reference, and returns
    /// it if it woke itself during the poll (`yield_now`, a spent budget, a
    /// waker called from inside `poll`): the M queues it at the tail of its
    /// P's runq once the poll is over (m.rs), without a trip through the
    /// scheduler's `schedule`.
    #[must_use = "a task returned here is scheduled and must be queued"]
    #[inline]
    pub(crate) fn run_yielding(self) -> Option<Notified> {
        let raw = self.raw;
        std::mem::forget(self);
        raw.poll()
    }

    /// The task's header (its address identifies the task for the
    /// diagnostics' sampled schedule latency).
    pub(crate) fn header(&self) -> &Header {
        self.raw.header()
    }

    /// Where the task was spawned (diagnostics).
    pub(crate) fn spawned_at(&self) -> &'static std::panic::Location<'static> {
        self.raw.spawned_at()
    }

    /// The reference as a pointer (for run queues).
    pub(crate) fn into_header_ptr(self) -> NonNull<()> {
        let ptr = self.raw.header_ptr().cast();
        std::mem::forget(self);
        ptr
    }

    /// Inverse of `into_header_ptr`.
    ///
    /// # Safety
    /// `ptr` must come from `into_header_ptr` and be used once.
    pub(crate) unsafe fn from_header_ptr(ptr: NonNull<()>) -> Notified {
        // SAFETY: the pointer carries a Notified reference (contract).
        unsafe { Notified::from_raw_task(RawTask::from_raw(ptr.cast())) }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        // Dropped unrun (shutdown drains the queues): release the reference.
        self.raw.drop_reference();
    }
}

impl std::fmt::Debug for Notified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notified")
            .field("id", &self.raw.id())
            .finish()
    }
}
