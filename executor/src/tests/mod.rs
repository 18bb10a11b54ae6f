//! In-crate tests: unit and stress tests (plain builds) and loom models
//! (`--cfg loom`, run by `scripts/loom`), with the item type they share.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use gort_netpoll::loom::cell::UnsafeCell;

use crate::inject::Inject;
use crate::queue::{Local, QueueItem};

pub(crate) mod test_sched;

#[cfg(not(loom))]
mod histogram;
#[cfg(not(loom))]
mod inject;
#[cfg(not(loom))]
mod park;
#[cfg(not(loom))]
mod queue;

#[cfg(not(loom))]
mod exitsyscall;
#[cfg(loom)]
mod loom_handoff;
#[cfg(loom)]
mod loom_idle;
#[cfg(loom)]
mod loom_inject;
#[cfg(loom)]
mod loom_netpoller;
#[cfg(loom)]
mod loom_park;
#[cfg(loom)]
mod loom_queue;
#[cfg(loom)]
mod loom_task;
#[cfg(loom)]
mod loom_timers;
#[cfg(not(loom))]
mod sysmon_quiet;
#[cfg(not(loom))]
mod task_unit;

/// A queue item that writes its id into a shared log when dropped, so a test
/// can check that every item was dropped exactly once (none lost, none
/// duplicated, none leaked). The log is plain `std`: it is only bookkeeping
/// and is read after all threads are joined.
pub(crate) struct Item(Box<ItemInner>);

struct ItemInner {
    /// Written once at creation, read by whoever holds the item. A loom cell
    /// so that under loom reading it on a thread without a happens-before
    /// edge to the creating thread (a queue publishing the item with too weak
    /// an ordering) fails the model.
    id: UnsafeCell<usize>,
    drops: DropLog,
}

/// Ids of dropped [`Item`]s, in drop order.
pub(crate) type DropLog = Arc<Mutex<Vec<usize>>>;

impl Item {
    pub(crate) fn new(id: usize, drops: &DropLog) -> Item {
        Item(Box::new(ItemInner {
            id: UnsafeCell::new(id),
            drops: drops.clone(),
        }))
    }

    pub(crate) fn id(&self) -> usize {
        self.0.id()
    }
}

impl ItemInner {
    fn id(&self) -> usize {
        // SAFETY: `id` is written only by `UnsafeCell::new` in `Item::new`;
        // every later access is this read, so no write can race it.
        self.id.with(|p| unsafe { *p })
    }
}

impl Drop for ItemInner {
    fn drop(&mut self) {
        let id = self.id();
        self.drops.lock().unwrap().push(id);
    }
}

impl QueueItem for Item {
    fn into_raw(self) -> NonNull<()> {
        NonNull::from(Box::leak(self.0)).cast()
    }

    unsafe fn from_raw(p: NonNull<()>) -> Self {
        // SAFETY: the caller guarantees `p` came from `into_raw` above, i.e.
        // from `Box::leak` of a `Box<ItemInner>`, and is converted back once.
        Item(unsafe { Box::from_raw(p.cast::<ItemInner>().as_ptr()) })
    }
}

/// A fresh drop log.
pub(crate) fn drop_log() -> DropLog {
    Arc::new(Mutex::new(Vec::new()))
}

/// Asserts that `ids` (sorted here) is exactly `0..n`: each id once.
#[track_caller]
pub(crate) fn assert_exactly_once(mut ids: Vec<usize>, n: usize, what: &str) {
    ids.sort_unstable();
    let expected: Vec<usize> = (0..n).collect();
    assert_eq!(ids, expected, "{what}: every item exactly once");
}

/// Pops `q` (runnext first, then the ring) until empty: the ids in order.
pub(crate) fn pop_ids(q: &mut Local<Item>) -> Vec<usize> {
    std::iter::from_fn(|| q.pop())
        .map(|(it, _)| it.id())
        .collect()
}

/// Pops the global queue until empty: the ids in order.
pub(crate) fn pop_global_ids(inject: &Inject<Item>) -> Vec<usize> {
    std::iter::from_fn(|| inject.pop())
        .map(|it| it.id())
        .collect()
}
