//! Thread-locals of the runtime: which runtime this thread is in, which M it
//! is (if any), and which task it is polling.
//!
//! Everything here is per-thread, so there is no synchronisation: a thread
//! reads and writes only its own slots. Setters return guards that restore the
//! previous value, also on unwind.

use std::cell::Cell;

use crate::task::Id;

thread_local! {
    static TASK_ID: Cell<Option<Id>> = const { Cell::new(None) };
}

/// Restores the previous current-task id when dropped.
pub(crate) struct TaskIdGuard(Option<Id>);

/// Makes `id` the current task of this thread until the guard drops.
pub(crate) fn set_current_task_id(id: Option<Id>) -> TaskIdGuard {
    TaskIdGuard(TASK_ID.with(|c| c.replace(id)))
}

impl Drop for TaskIdGuard {
    fn drop(&mut self) {
        let _ = TASK_ID.try_with(|c| c.set(self.0));
    }
}

/// The task being polled on this thread.
pub(crate) fn current_task_id() -> Option<Id> {
    TASK_ID.try_with(Cell::get).ok().flatten()
}
