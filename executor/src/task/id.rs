//! Task ids: unique per process, never reused.

use std::fmt;
use std::num::NonZeroU64;

/// An opaque id of a spawned task, unique among all tasks of the process.
#[derive(Clone, Copy, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub struct Id(NonZeroU64);

impl Id {
    /// The next id. A plain counter, not a protocol: Relaxed is enough since
    /// only uniqueness matters. Under loom (where statics of loom atomics are
    /// not allowed) a per-thread counter is enough, models never compare ids
    /// across threads.
    pub(crate) fn next() -> Id {
        #[cfg(not(loom))]
        {
            use gort_netpoll::loom::sync::atomic::{AtomicU64, Ordering::Relaxed};
            static NEXT_ID: AtomicU64 = AtomicU64::new(1);
            let n = NEXT_ID.fetch_add(1, Relaxed);
            Id(NonZeroU64::new(n).expect("gort: task id counter overflowed"))
        }
        #[cfg(loom)]
        {
            std::thread_local!(static NEXT_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(1) });
            let n = NEXT_ID.with(|c| c.replace(c.get() + 1));
            Id(NonZeroU64::new(n).expect("gort: task id counter overflowed"))
        }
    }

    /// The id as an integer (for shard selection and diagnostics).
    pub(crate) fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of the task being polled on this thread.
///
/// # Panics
/// Outside a task poll, with a message saying so; see [`try_id`].
#[track_caller]
pub fn id() -> Id {
    try_id()
        .expect("gort::task::id() called outside a task (no task is being polled on this thread)")
}

/// The id of the task being polled on this thread, or `None` outside a task.
pub fn try_id() -> Option<Id> {
    crate::context::current_task_id()
}
