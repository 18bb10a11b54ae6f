//! Task ids: unique per process, never reused.

use std::fmt;
use std::num::NonZeroU64;

/// Ids reserved per thread at a time (see `Id::next`).
#[cfg(not(loom))]
const ID_BLOCK: u64 = 1024;

/// An opaque id of a spawned task, unique among all tasks of the process.
#[derive(Clone, Copy, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub struct Id(NonZeroU64);

impl Id {
    /// The next id. A plain counter, not a protocol: only uniqueness
    /// matters. Each thread reserves a block of [`ID_BLOCK`] ids with one
    /// Relaxed `fetch_add`, so concurrent spawners do not bounce one cache
    /// line per spawn. Under loom (where statics of loom atomics are not
    /// allowed) a per-thread counter is enough: models never compare ids
    /// across threads.
    pub(crate) fn next() -> Id {
        #[cfg(not(loom))]
        {
            use gort_netpoll::loom::sync::atomic::{AtomicU64, Ordering::Relaxed};
            use std::cell::Cell;
            static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
            std::thread_local!(static LOCAL: Cell<(u64, u64)> = const { Cell::new((0, 0)) });
            let n = LOCAL.with(|c| {
                let (mut next, mut end) = c.get();
                if next == end {
                    next = NEXT_BLOCK.fetch_add(ID_BLOCK, Relaxed);
                    end = next + ID_BLOCK;
                }
                c.set((next + 1, end));
                next
            });
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
