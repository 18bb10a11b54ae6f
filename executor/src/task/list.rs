//! OwnedTasks: every live task of a runtime, so shutdown can cancel each one.
//!
//! # Purpose
//! A task that waits on a waker nobody will ever call is referenced only by
//! that waker; without this list, dropping the runtime could neither drop its
//! future nor free it. The list holds one reference per task from spawn until
//! the task completes (or shutdown takes it out).
//!
//! # States
//! - per shard: `closed` (false -> true once, by [`OwnedTasks::close`]).
//! - per task: linked (in its shard's list) or not. A task is linked by
//!   [`OwnedTasks::bind`] and unlinked by [`OwnedTasks::remove`] (its
//!   completion) or [`OwnedTasks::pop_for_shutdown`], whichever comes first.
//!
//! # Transitions
//! All under the shard's `Mutex`; the shard is `id % shards`.
//!
//! # Ownership
//! `Header::owned_prev` / `owned_next` and the shard's `head` are read and
//! written only under that shard's lock. The list's task reference moves to
//! whoever unlinks the task: `remove` reports it so the completer drops it,
//! `pop_for_shutdown` hands it to the shutdown loop.
//!
//! # Orderings
//! The shard lock orders everything, including each shard's `len` and the
//! `spawned` / `completed` counters the metrics read (`counts`): they cost
//! an add under a lock already held, nothing on the poll path.
//!
//! # Rejected alternatives
//! - One global lock: every spawn and completion of every M would meet on it.
//!   Shards are `4 * Ps` rounded up to a power of two, and sequential task ids
//!   spread one M's spawns over all of them.
//! - A lock-free list: removal from the middle needs hazard handling; a
//!   short uncontended lock costs about as much as one contended atomic.
//!
//! # Checked by
//! `src/tests/loom_task.rs` (every model binds its task and asserts the memory
//! is freed exactly once, which needs the list's reference released once).

use std::future::Future;
use std::panic::Location;
use std::ptr::NonNull;

use gort_netpoll::loom::sync::Mutex;

use super::id::Id;
use super::join::JoinHandle;
use super::raw::{Cell, Header, RawTask};
use super::{Notified, Schedule};

struct Shard {
    head: Option<NonNull<Header>>,
    /// Linked tasks (a statistic for `len`).
    len: usize,
    /// Tasks ever linked here, and unlinked (completed or cancelled at
    /// shutdown): the metrics' `tasks_spawned` / `tasks_completed`.
    spawned: u64,
    completed: u64,
    closed: bool,
}

/// One shard per cache-line pair: adjacent shards are locked by different Ms
/// (sequential ids spread one M's spawns), so unpadded shards would bounce
/// one line between them (measured: bind/remove took a quarter of the time
/// of tokio's spawn_many_local workload before padding).
#[repr(align(128))]
struct Padded(Mutex<Shard>);

// SAFETY: the raw pointers in a shard are only followed under its Mutex.
unsafe impl Send for Shard {}

/// The sharded list of a runtime's live tasks.
pub(crate) struct OwnedTasks {
    shards: Box<[Padded]>,
    mask: u64,
}

impl OwnedTasks {
    /// A list for a runtime with `nprocs` Ps.
    pub(crate) fn new(nprocs: usize) -> OwnedTasks {
        // One shard under loom: ids differ between model iterations (their
        // counter is not reset), and the shard must not depend on them.
        let n = if cfg!(loom) {
            1
        } else {
            (nprocs.max(1) * 4).next_power_of_two()
        };
        let shards = (0..n)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    head: None,
                    len: 0,
                    spawned: 0,
                    completed: 0,
                    closed: false,
                }))
            })
            .collect();
        OwnedTasks {
            shards,
            mask: n as u64 - 1,
        }
    }

    fn shard(&self, id: Id) -> &Mutex<Shard> {
        &self.shards[(id.as_u64() & self.mask) as usize].0
    }

    /// Allocates a task and links it. Returns its `JoinHandle` and, unless the
    /// list is closed (the runtime is shutting down), its first `Notified`;
    /// when closed the task is cancelled at once and the handle yields
    /// `JoinError::Cancelled`.
    pub(crate) fn bind<F, S>(
        &self,
        future: F,
        scheduler: S,
        id: Id,
        spawned_at: &'static Location<'static>,
    ) -> (JoinHandle<F::Output>, Option<Notified>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        let ptr = Cell::allocate(future, scheduler, id, spawned_at);
        // SAFETY: freshly allocated cell with three references (state.rs
        // INITIAL_STATE): one for the list, one for the JoinHandle, one for the
        // Notified; each wrapper below takes exactly one.
        let raw = unsafe { RawTask::from_raw(ptr) };
        // SAFETY: as above, the JoinHandle's reference; T is F::Output.
        let join = unsafe { JoinHandle::new(raw) };
        // SAFETY: as above, the Notified reference.
        let notified = unsafe { Notified::from_raw_task(raw) };
        let linked = {
            let mut shard = self.shard(id).lock().unwrap();
            if shard.closed {
                false
            } else {
                // SAFETY: we hold the shard lock, which guards the links of
                // every task in this shard and of the unpublished new one.
                unsafe { push_front(&mut shard, ptr) };
                shard.len += 1;
                shard.spawned += 1;
                true
            }
        };
        if linked {
            (join, Some(notified))
        } else {
            // The runtime is shutting down: cancel with the list's reference,
            // then release it and the Notified.
            raw.shutdown();
            raw.drop_reference();
            drop(notified);
            (join, None)
        }
    }

    /// Unlinks a completing task. True when it was linked: the caller then
    /// owns the list's reference and must drop it.
    pub(crate) fn remove(&self, task: &Header) -> bool {
        let ptr = NonNull::from(task);
        let mut shard = self.shard(task.id).lock().unwrap();
        // SAFETY: shard lock held; the links of tasks of this shard are ours.
        let linked = unsafe { unlink(&mut shard, ptr) };
        shard.len -= usize::from(linked);
        shard.completed += u64::from(linked);
        linked
    }

    /// Closes every shard: later `bind`s cancel their task at once.
    pub(crate) fn close(&self) {
        for shard in self.shards.iter() {
            shard.0.lock().unwrap().closed = true;
        }
    }

    /// Unlinks one task (any shard) with the list's reference, for shutdown.
    fn pop_for_shutdown(&self) -> Option<RawTask> {
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock().unwrap();
            if let Some(head) = shard.head {
                // SAFETY: shard lock held; head is linked in this shard.
                let linked = unsafe { unlink(&mut shard, head) };
                debug_assert!(linked);
                shard.len -= 1;
                shard.completed += 1;
                drop(shard);
                // SAFETY: a linked task is alive: the list's reference.
                return Some(unsafe { RawTask::from_raw(head) });
            }
        }
        None
    }

    /// Closes the list and cancels every task in it: each pending future is
    /// dropped here exactly once (or, for a task an M is polling right now,
    /// by that M after the poll, since `CANCELLED` is set).
    pub(crate) fn close_and_shutdown_all(&self) {
        self.close();
        while let Some(task) = self.pop_for_shutdown() {
            task.shutdown();
            task.drop_reference();
        }
    }

    /// Where the live task `id` was spawned, if it is still in the list
    /// (sysmon's warning; walks one shard under its lock, so never on a hot
    /// path).
    pub(crate) fn spawn_location(&self, id: u64) -> Option<&'static Location<'static>> {
        let shard = self.shards[(id & self.mask) as usize].0.lock().unwrap();
        let mut cur = shard.head;
        while let Some(ptr) = cur {
            // SAFETY: a linked task is alive (the list's reference) and its
            // links are guarded by the shard lock we hold.
            let raw = unsafe { RawTask::from_raw(ptr) };
            if raw.id().as_u64() == id {
                return Some(raw.spawned_at());
            }
            // SAFETY: as above: the links are read under the shard lock.
            cur = unsafe { ptr.as_ref().owned_next.with(|n| *n) };
        }
        None
    }

    /// Number of linked tasks: a sum over the shards, each read under its
    /// lock (a statistic; not a hot path).
    pub(crate) fn len(&self) -> usize {
        self.counts().0
    }

    /// `(linked, spawned, completed)` summed over the shards, each read
    /// under its lock (the metrics).
    pub(crate) fn counts(&self) -> (usize, u64, u64) {
        self.shards.iter().fold((0, 0, 0), |(l, s, c), shard| {
            let shard = shard.0.lock().unwrap();
            (l + shard.len, s + shard.spawned, c + shard.completed)
        })
    }

    /// Calls `f` with every linked task (the task dump), one shard at a
    /// time under its lock: `f` must not spawn, complete or drop tasks.
    pub(crate) fn for_each(&self, mut f: impl FnMut(RawTask)) {
        for shard in self.shards.iter() {
            let shard = shard.0.lock().unwrap();
            let mut cur = shard.head;
            while let Some(ptr) = cur {
                // SAFETY: a linked task is alive (the list's reference) and
                // its links are guarded by the shard lock we hold.
                f(unsafe { RawTask::from_raw(ptr) });
                // SAFETY: as above: the links are read under the shard lock.
                cur = unsafe { ptr.as_ref().owned_next.with(|n| *n) };
            }
        }
    }
}

/// # Safety
/// The caller holds the shard lock; `ptr` is an unlinked live task of this shard.
unsafe fn push_front(shard: &mut Shard, ptr: NonNull<Header>) {
    // SAFETY: the task is alive and its links are guarded by the held lock
    // (contract), as are the old head's.
    unsafe {
        let h = ptr.as_ref();
        h.owned_prev.with_mut(|p| *p = None);
        h.owned_next.with_mut(|n| *n = shard.head);
        if let Some(old) = shard.head {
            old.as_ref().owned_prev.with_mut(|p| *p = Some(ptr));
        }
    }
    shard.head = Some(ptr);
}

/// Unlinks `ptr`; false when it was not linked.
///
/// # Safety
/// The caller holds the shard lock of `ptr`'s shard; `ptr` is a live task.
unsafe fn unlink(shard: &mut Shard, ptr: NonNull<Header>) -> bool {
    // SAFETY: links guarded by the held shard lock (contract); neighbours are
    // linked, hence alive (the list's reference).
    unsafe {
        let h = ptr.as_ref();
        let prev = h.owned_prev.with(|p| *p);
        let next = h.owned_next.with(|n| *n);
        match prev {
            Some(prev) => prev.as_ref().owned_next.with_mut(|n| *n = next),
            None if shard.head == Some(ptr) => shard.head = next,
            None => return false,
        }
        if let Some(next) = next {
            next.as_ref().owned_prev.with_mut(|p| *p = prev);
        }
        h.owned_prev.with_mut(|p| *p = None);
        h.owned_next.with_mut(|n| *n = None);
    }
    true
}
