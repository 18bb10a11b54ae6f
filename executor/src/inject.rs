//! The global run queue: where work goes when no P's local runq can take it.
//!
//! # Purpose
//! Go's `sched.runq`: the queue that receives a full runq's overflow (half of
//! the ring in one batch, `runqputslow`), wakes from outside the runtime, and
//! tasks that yield to everyone. Every P takes from it, one task every 61
//! scheduler ticks for fairness and a batch when its local runq is empty.
//!
//! # States
//! - `Synced::queue`: the items, oldest first, as raw pointers from
//!   [`QueueItem::into_raw`]. Items carry no link field, so the task header
//!   stays small; the `VecDeque` owns its buffer instead.
//! - `Synced::closed`: `false` until [`Inject::close`], then `true` forever.
//! - `len`: a copy of `queue.len()` kept in an atomic for lock-free checks.
//!
//! # Transitions
//! - open → closed: [`Inject::close`], under the lock; never back.
//! - `push` / `push_batch` append under the lock while open; after close,
//!   `push` hands the item back (`Err(item)`) and `push_batch` drops the items
//!   after the lock is released (see [`Inject::push_batch`]).
//! - `pop` / `pop_batch` remove from the front under the lock, open or closed
//!   (the scheduler drains a closed queue at shutdown).
//!
//! # Ownership
//! - `synced`: read and written only under the mutex. An item in `queue` is
//!   owned by the queue; whoever removes it under the lock owns it after.
//! - `len`: written (plain store) only while the mutex is held, so writes
//!   are totally ordered by the lock; read anywhere without the lock.
//!
//! # Orderings
//! - Item contents: published by the mutex (unlock in `push*` happens-before
//!   the lock in `pop*`); no atomic ordering is needed for them.
//! - `len`: the `Release` store in `push*`/`pop*` pairs with the `Acquire`
//!   load in [`Inject::len`]/[`Inject::is_empty`], so a reader that sees a
//!   non-zero length and then takes the lock finds the queue it measured.
//!   `len` alone gives no StoreLoad ordering: a scheduler that pushes work
//!   and then checks `nmspinning` (Go's wakep pattern) must put its own
//!   `SeqCst` fence between the two, as Go does; this file does not hide one.
//!
//! # Rejected alternatives
//! - An intrusive list through a `next` field in the task header (Go's
//!   `schedlink`, tokio's inject): eight more bytes per task for a queue that
//!   is off the hot path. Measure before taking them.
//! - A lock-free MPMC queue (crossbeam `Injector`): it allocates blocks
//!   itself and cannot take a batch atomically; the lock is taken once per
//!   batch, which keeps contention low on a 2-core machine.
//! - Calling the `pop_batch` closure under the lock: the closure typically
//!   pushes onto a local runq, whose overflow pushes back into this queue,
//!   and would deadlock. Items are moved out first, the closure runs after.
//!
//! # Checked by
//! `tests/loom_inject.rs`: concurrent `push_batch`, `pop_batch` and `close`;
//! every item is popped, dropped after close or still queued at the end,
//! exactly once.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::ptr::NonNull;

use gort_netpoll::loom::sync::atomic::AtomicUsize;
use gort_netpoll::loom::sync::atomic::Ordering::{Acquire, Release};
use gort_netpoll::loom::sync::{Mutex, MutexGuard};

use crate::queue::{LOCAL_QUEUE_CAPACITY, QueueItem};

/// The global run queue (Go's `sched.runq`). See the module docs.
pub(crate) struct Inject<T: QueueItem> {
    synced: Mutex<Synced>,
    /// `synced.queue.len()`, stored under the lock, read without it.
    len: AtomicUsize,
    _marker: PhantomData<fn() -> T>,
}

/// The part of [`Inject`] guarded by its mutex.
struct Synced {
    queue: VecDeque<NonNull<()>>,
    closed: bool,
}

// SAFETY: the raw pointers in `queue` are items of type `T` turned into raw
// pointers by `QueueItem::into_raw`; they are only turned back into `T` by the
// thread that removes them under the lock. `T: Send` (a supertrait of
// `QueueItem`) makes moving them to that thread sound.
unsafe impl Send for Synced {}

impl<T: QueueItem> Inject<T> {
    /// An empty, open queue.
    pub(crate) fn new() -> Inject<T> {
        Inject {
            synced: Mutex::new(Synced {
                queue: VecDeque::new(),
                closed: false,
            }),
            len: AtomicUsize::new(0),
            _marker: PhantomData,
        }
    }

    /// Appends `item`. After [`close`](Self::close) the item is handed back
    /// as `Err(item)` so the caller decides what to do with it.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut synced = self.lock();
        if synced.closed {
            return Err(item);
        }
        synced.queue.push_back(item.into_raw());
        self.len.store(synced.queue.len(), Release);
        Ok(())
    }

    /// Appends every item of `items`, in order, under one lock round trip.
    ///
    /// After [`close`](Self::close) the items are *dropped*, one by one, after
    /// the lock has been released (so a `Drop` that touches this queue cannot
    /// deadlock). Closing happens at shutdown, when the scheduler drops every
    /// pending task anyway; handing a batch back would force every caller
    /// (a runq overflow, a netpoll batch) to grow a second shutdown path.
    ///
    /// The iterator runs while the lock is held: it must not touch this
    /// queue (the callers pass array and `Option` iterators).
    pub(crate) fn push_batch(&self, items: impl Iterator<Item = T>) {
        let mut items = items;
        {
            let mut synced = self.lock();
            if !synced.closed {
                synced.queue.extend(items.by_ref().map(T::into_raw));
                self.len.store(synced.queue.len(), Release);
                return;
            }
        }
        // Closed: the lock is released above; drop the rest here.
        items.for_each(drop);
    }

    /// Removes the oldest item.
    pub(crate) fn pop(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let mut synced = self.lock();
        let raw = synced.queue.pop_front()?;
        self.len.store(synced.queue.len(), Release);
        drop(synced);
        // SAFETY: `raw` came from `T::into_raw` in `push`/`push_batch` and was
        // removed from the queue under the lock just above, so this is its
        // only owner and it is converted back exactly once.
        Some(unsafe { T::from_raw(raw) })
    }

    /// Removes up to `max` of the oldest items under one lock round trip and
    /// passes each to `f`, oldest first, after the lock is released. Returns
    /// how many were removed.
    ///
    /// One batch never exceeds [`LOCAL_QUEUE_CAPACITY`] (a batch is meant to
    /// refill one runq); larger `max` values are clamped. If `f` panics, the
    /// items it has not received are dropped.
    pub(crate) fn pop_batch(&self, max: usize, mut f: impl FnMut(T)) -> usize {
        let max = max.min(LOCAL_QUEUE_CAPACITY);
        if max == 0 || self.is_empty() {
            return 0;
        }
        let mut batch = Batch::<T> {
            raws: [None; LOCAL_QUEUE_CAPACITY],
            next: 0,
            _marker: PhantomData,
        };
        let n = {
            let mut synced = self.lock();
            let n = max.min(synced.queue.len());
            for (slot, raw) in batch.raws.iter_mut().zip(synced.queue.drain(..n)) {
                *slot = Some(raw);
            }
            self.len.store(synced.queue.len(), Release);
            n
        };
        while let Some(item) = batch.next_item() {
            f(item);
        }
        n
    }

    /// How many items are queued: a lock-free snapshot that may be stale by
    /// the time the caller acts on it.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Acquire)
    }

    /// Whether the queue looked empty (a lock-free snapshot, see [`len`](Self::len)).
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the queue: later pushes are refused. Returns `true` if this call
    /// closed it, `false` if it was already closed.
    pub(crate) fn close(&self) -> bool {
        let mut synced = self.lock();
        !std::mem::replace(&mut synced.closed, true)
    }

    /// Whether [`close`](Self::close) has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn lock(&self) -> MutexGuard<'_, Synced> {
        // A panic while holding this lock can only come from the allocator
        // (VecDeque growth); the queue is still consistent, so poisoning is
        // ignored rather than spreading the panic to every P.
        self.synced.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: QueueItem> Default for Inject<T> {
    fn default() -> Self {
        Inject::new()
    }
}

impl<T: QueueItem> Drop for Inject<T> {
    fn drop(&mut self) {
        let mut synced = self.lock();
        let left = std::mem::take(&mut synced.queue);
        drop(synced);
        for raw in left {
            // SAFETY: `raw` came from `T::into_raw` and the queue owned it;
            // `take` above removed it from the queue, so it is converted back
            // exactly once and dropped (no leak).
            drop(unsafe { T::from_raw(raw) });
        }
    }
}

impl<T: QueueItem> std::fmt::Debug for Inject<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inject").field("len", &self.len()).finish()
    }
}

/// Items moved out of the queue by `pop_batch`, not yet given to the closure.
/// Dropping it (also on unwind from the closure) drops what is left.
struct Batch<T: QueueItem> {
    raws: [Option<NonNull<()>>; LOCAL_QUEUE_CAPACITY],
    next: usize,
    _marker: PhantomData<fn() -> T>,
}

impl<T: QueueItem> Batch<T> {
    fn next_item(&mut self) -> Option<T> {
        let raw = self.raws.get_mut(self.next)?.take()?;
        self.next += 1;
        // SAFETY: every `Some` in `raws` came from `T::into_raw` and was
        // drained from the queue under the lock in `pop_batch`; `take` clears
        // the slot, so each is converted back exactly once.
        Some(unsafe { T::from_raw(raw) })
    }
}

impl<T: QueueItem> Drop for Batch<T> {
    fn drop(&mut self) {
        while let Some(item) = self.next_item() {
            drop(item);
        }
    }
}
