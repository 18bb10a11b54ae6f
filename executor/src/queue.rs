//! A P's local run queue: the `runq` ring and the `runnext` slot.
//!
//! # Purpose
//! Go's `runqput`/`runqget`/`runqsteal`: a bounded ring that only its owner P
//! pushes to and that any other P may steal half of, plus a one-task
//! `runnext` slot for the task woken by the running one, which runs next and
//! inherits the time slice. A full ring moves half of itself to the global
//! queue in one batch.
//!
//! # States
//! - `head: u32`, `tail: u32`: free-running counters; the slot of counter `i`
//!   is `slots[i % LOCAL_QUEUE_CAPACITY]`. Items live in `head..tail`,
//!   `tail - head <= LOCAL_QUEUE_CAPACITY` (wrapping arithmetic).
//! - `slots[i]`: a raw item pointer ([`QueueItem::into_raw`]) when
//!   `head <= i < tail`; stale garbage otherwise (never dereferenced).
//! - `runnext`: null, or one item owned by the queue.
//!
//! # Transitions
//! - push (owner, [`Local::push_back`]): store the slot at `tail`, then
//!   `tail += 1` with a `Release` store.
//! - overflow (owner, `push_overflow`): read half the ring, `CAS head` forward
//!   by that much, then push those items and the new one to the global queue.
//! - pop (owner, [`Local::pop`]): `swap(runnext, null)`; else read the slot at
//!   `head` and `CAS head` to `head + 1`.
//! - steal (any P, [`Steal::steal_into`]): read `n - n/2` slots from `head`,
//!   copy them into the thief's ring past its `tail`, `CAS head += n - n/2`;
//!   on success publish the thief's `tail` once. With the victim's ring empty
//!   and `steal_runnext`, wait ~3 us for the owner, then `CAS runnext → null`.
//! - runnext (owner, [`Local::push_next`]): `swap` in the new item; the old
//!   one, if any, is pushed at the tail.
//!
//! # Ownership
//! - `tail`: written only by the owner (the `Local`), read by anyone.
//! - `head`: advanced only by a successful `CAS`, by the owner or a thief;
//!   the winner of the `CAS` owns the items it skipped over.
//! - `slots[i]` for `i` outside `head..tail`: written only by the owner (or by
//!   the owner stealing *into* its own ring), before publishing `tail`.
//!   Thieves may read a slot while the owner overwrites it; every slot is an
//!   atomic, so that read is not a data race, and the thief's `CAS head`
//!   then fails because the owner only reuses slots behind `head`.
//! - `runnext`: only the owner stores a non-null value; the owner (`swap`)
//!   and thieves (`CAS`) take it; whoever reads the non-null value in their
//!   read-modify-write owns it.
//!
//! # Orderings
//! - `push_back`'s `Release` store of `tail` pairs with the `Acquire` load of
//!   `tail` in `Steal::grab`: a thief that sees the new tail sees the slot and
//!   the item's contents.
//! - Every `CAS head` is `AcqRel`: its `Release` half pairs with the
//!   `Acquire` load of `head` in `push_back`, so the owner overwrites a slot
//!   only after the consumer that advanced past it has read it (Go's
//!   "cas-release, commits consume"); its `Acquire` half orders it after the
//!   previous consumer's reads.
//! - `steal_into`'s `Release` store of the thief's `tail` pairs with the
//!   `Acquire` load of `tail` by whoever steals from the thief next.
//! - `push_next`'s `Release` swap of `runnext` pairs with the `Acquire` `CAS`
//!   in `Steal::grab_runnext`, publishing the item's contents to the thief.
//!
//! # Rejected alternatives
//! - Plain (non-atomic) slots with Go's "copy, then CAS head": in Rust's
//!   memory model a thief reading a slot the owner is overwriting is a data
//!   race, hence UB, even though the CAS discards the value. Relaxed atomic
//!   slots cost nothing extra on x86-64/aarch64 and remove the race.
//! - tokio's packed `(steal, real)` head: it avoids the torn-read retry but
//!   needs a second CAS per steal and halves the counter width; atomic slots
//!   already make Go's simpler scheme sound.
//! - crossbeam-deque's Chase–Lev deque: unbounded (no overflow to the global
//!   queue, so one P can hoard work), no `runnext`, and its steal-half
//!   (`steal_batch`) takes a fixed fraction from the wrong end for Go's policy.
//! - A mutex per runq: every pop would take a lock that thieves contend for.
//! - 32-bit counters can in theory ABA when a thief stalls between its loads
//!   and its CAS for 2^32 queue operations; Go accepts the same bound.
//!
//! # Checked by
//! `tests/loom_queue.rs`: the owner pushes (overflowing into the global
//! queue, using `runnext`) and pops while one or two thieves steal (also
//! `runnext`); every item is popped, stolen or overflowed exactly once.

use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use gort_netpoll::loom::sync::Arc;
use gort_netpoll::loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use gort_netpoll::loom::sync::atomic::{AtomicPtr, AtomicU32};

use crate::inject::Inject;

/// An item the run queues can hold: an owned, type-erased pointer.
///
/// The scheduler implements it for its task reference; a queue never looks
/// behind the pointer.
pub(crate) trait QueueItem: Sized + Send {
    /// Gives up ownership as a non-null pointer.
    fn into_raw(self) -> NonNull<()>;

    /// Takes ownership back.
    ///
    /// # Safety
    /// `p` must come from [`QueueItem::into_raw`] on the same type, and each
    /// such pointer must be turned back at most once.
    unsafe fn from_raw(p: NonNull<()>) -> Self;
}

/// Slots in a P's runq: Go's 256. Under loom it shrinks to 4 so a model
/// reaches the overflow and steal-half paths in a few steps.
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = if cfg!(loom) { 4 } else { 256 };

const _: () = assert!(LOCAL_QUEUE_CAPACITY.is_power_of_two());
const _: () = assert!(LOCAL_QUEUE_CAPACITY <= u32::MAX as usize / 2);

const CAP: u32 = LOCAL_QUEUE_CAPACITY as u32;
const MASK: u32 = CAP - 1;

/// The shared part of a runq: owned by its `Local`, stolen from via `Steal`.
struct Ring {
    head: AtomicU32,
    tail: AtomicU32,
    runnext: AtomicPtr<()>,
    slots: [AtomicPtr<()>; LOCAL_QUEUE_CAPACITY],
}

impl Ring {
    fn slot(&self, i: u32) -> &AtomicPtr<()> {
        &self.slots[(i & MASK) as usize]
    }

    /// Items in the ring plus one for `runnext`: a snapshot consistent in the
    /// sense of Go's `runqempty`. Reading `head`, `tail`, then `runnext`
    /// alone could miss an item that `push_next` kicks from `runnext` to the
    /// tail while the owner then takes the new `runnext`; re-reading `tail`
    /// catches that move.
    fn len(&self) -> usize {
        loop {
            let head = self.head.load(Acquire);
            let tail = self.tail.load(Acquire);
            let next = !self.runnext.load(Acquire).is_null();
            if tail == self.tail.load(Acquire) {
                // A stale `head` could exceed the ring; clamp the snapshot.
                let ring = tail.wrapping_sub(head).min(CAP) as usize;
                return ring + usize::from(next);
            }
        }
    }
}

/// Creates a P's runq: the owner's [`Local`] half and the [`Steal`] handle
/// other Ps steal through.
pub(crate) fn local<T: QueueItem>() -> (Local<T>, Steal<T>) {
    let ring = Arc::new(Ring {
        head: AtomicU32::new(0),
        tail: AtomicU32::new(0),
        runnext: AtomicPtr::new(ptr::null_mut()),
        slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
    });
    let local = Local {
        ring: ring.clone(),
        _marker: PhantomData,
    };
    let steal = Steal {
        ring,
        _marker: PhantomData,
    };
    (local, steal)
}

/// The owner P's handle: the only one that pushes.
pub(crate) struct Local<T: QueueItem> {
    ring: Arc<Ring>,
    _marker: PhantomData<fn() -> T>,
}

/// A handle other Ps steal through (Go's `runqsteal` on `allp[i]`).
pub(crate) struct Steal<T: QueueItem> {
    ring: Arc<Ring>,
    _marker: PhantomData<fn() -> T>,
}

impl<T: QueueItem> Local<T> {
    /// Pushes `item` at the tail (Go's `runqput(pp, gp, false)`).
    ///
    /// When the ring is full, half of it plus `item` move to `overflow` in
    /// one [`Inject::push_batch`] (Go's `runqputslow`), oldest first. If
    /// `overflow` is closed those items are dropped (see `push_batch`).
    pub(crate) fn push_back(&mut self, item: T, overflow: &Inject<T>) {
        let mut raw = item.into_raw();
        loop {
            // Acquire pairs with the AcqRel `CAS head` of the consumer that
            // freed the slot we may reuse (see Orderings).
            let head = self.ring.head.load(Acquire);
            // Only this `Local` writes `tail`: Relaxed reads our own store.
            let tail = self.ring.tail.load(Relaxed);
            if tail.wrapping_sub(head) < CAP {
                self.ring.slot(tail).store(raw.as_ptr(), Relaxed);
                // Release: publishes the slot to `Steal::grab`.
                self.ring.tail.store(tail.wrapping_add(1), Release);
                return;
            }
            match self.push_overflow(raw, head, overflow) {
                Ok(()) => return,
                // A thief moved `head` meanwhile: there is room now.
                Err(back) => raw = back,
            }
        }
    }

    /// Moves half of the full ring and `raw` to `overflow`. `Err(raw)` if a
    /// thief advanced `head` first (the caller retries the fast path). Out
    /// of line: its 128-slot batch would otherwise enlarge the stack frame
    /// of every function a push is inlined into.
    #[cold]
    #[inline(never)]
    fn push_overflow(
        &mut self,
        raw: NonNull<()>,
        head: u32,
        overflow: &Inject<T>,
    ) -> Result<(), NonNull<()>> {
        const HALF: usize = LOCAL_QUEUE_CAPACITY / 2;
        let mut batch = [ptr::null_mut::<()>(); HALF];
        for (i, dst) in batch.iter_mut().enumerate() {
            *dst = self.ring.slot(head.wrapping_add(i as u32)).load(Relaxed);
        }
        // AcqRel: see Orderings. Failure means a thief took items; the slots
        // we read still belong to the queue (or the thief) and are not ours.
        if self
            .ring
            .head
            .compare_exchange(head, head.wrapping_add(HALF as u32), AcqRel, Relaxed)
            .is_err()
        {
            return Err(raw);
        }
        let items = batch.into_iter().chain(std::iter::once(raw.as_ptr()));
        overflow.push_batch(items.map(|p| {
            // SAFETY: every pointer in `batch` was read from `head..head+HALF`,
            // a range the queue owned (full ring: `tail - head == CAP`), and
            // our successful CAS above moved `head` past it, making this call
            // its only owner; `raw` is the caller's item. Each is non-null
            // (from `into_raw`) and converted back once.
            unsafe { T::from_raw(NonNull::new_unchecked(p)) }
        }));
        Ok(())
    }

    /// Puts `item` in `runnext` (Go's `runqput(pp, gp, true)`): it runs
    /// before the ring. A task already there is kicked to the ring's tail.
    pub(crate) fn push_next(&mut self, item: T, overflow: &Inject<T>) {
        // Release: publishes the item's contents to the Acquire CAS in
        // `Steal::grab_runnext`. The old value needs no Acquire: only this
        // `Local` ever stores a non-null `runnext`.
        let old = self.ring.runnext.swap(item.into_raw().as_ptr(), Release);
        if let Some(old) = NonNull::new(old) {
            // SAFETY: `old` was stored by an earlier `push_next` (the only
            // non-null store) from `into_raw`; the swap removed it from
            // `runnext` atomically, so no thief's CAS can also take it.
            let old = unsafe { T::from_raw(old) };
            self.push_back(old, overflow);
        }
    }

    /// Takes the next item to run (Go's `runqget`): `runnext` first, with
    /// `true` meaning it inherits the current time slice, else the ring's
    /// head with `false`.
    pub(crate) fn pop(&mut self) -> Option<(T, bool)> {
        // Relaxed load: a cheap check that avoids writing the line when empty.
        if !self.ring.runnext.load(Relaxed).is_null() {
            // A thief may CAS it away between the load and the swap; then the
            // swap returns null and we fall through to the ring. No retry is
            // needed: a thief only takes `runnext` when the ring was empty.
            let next = self.ring.runnext.swap(ptr::null_mut(), Relaxed);
            if let Some(next) = NonNull::new(next) {
                // SAFETY: `next` came from `into_raw` in `push_next`; the
                // atomic swap made us its only owner.
                return Some((unsafe { T::from_raw(next) }, true));
            }
        }
        loop {
            let head = self.ring.head.load(Acquire);
            let tail = self.ring.tail.load(Relaxed);
            if head == tail {
                return None;
            }
            let raw = self.ring.slot(head).load(Relaxed);
            if self
                .ring
                .head
                .compare_exchange(head, head.wrapping_add(1), AcqRel, Relaxed)
                .is_ok()
            {
                // SAFETY: `head < tail`, so slot `head` held an item pushed by
                // `push_back` (non-null, from `into_raw`); our CAS moved
                // `head` past it, so no thief owns it.
                return Some((unsafe { T::from_raw(NonNull::new_unchecked(raw)) }, false));
            }
        }
    }

    /// Items queued, `runnext` included.
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the ring and `runnext` are both empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `runnext` holds an item.
    pub(crate) fn has_runnext(&self) -> bool {
        !self.ring.runnext.load(Relaxed).is_null()
    }

    /// Free slots in the ring (a lower bound: thieves only add room).
    fn free_slots(&self) -> u32 {
        let head = self.ring.head.load(Acquire);
        let tail = self.ring.tail.load(Relaxed);
        CAP - tail.wrapping_sub(head)
    }
}

impl<T: QueueItem> Drop for Local<T> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            debug_assert!(
                self.is_empty(),
                "a P's runq was dropped with {} items: the scheduler must drain it at shutdown",
                self.len()
            );
        }
        // Release builds (or unwinding): drop what is left rather than leak it.
        while let Some((item, _)) = self.pop() {
            drop(item);
        }
    }
}

/// What [`Steal::grab`] took.
enum Grabbed {
    /// `n >= 1` items were copied into the thief's ring from its `tail` on.
    Ring(u32),
    /// The victim's `runnext`.
    Next(NonNull<()>),
}

impl<T: QueueItem> Steal<T> {
    /// Steals half (rounded up) of this queue's ring into `dst` and returns
    /// one stolen item to run now (Go's `runqsteal`/`runqgrab`). `dst`'s tail
    /// is published once for the whole batch.
    ///
    /// Takes at most as many items as `dst` has free slots; the scheduler
    /// steals when its own runq is empty, so that is normally half the victim.
    /// With `steal_runnext` (Go's last steal pass) and the ring empty, waits
    /// about 3 us for the owner to run its `runnext` itself, then takes it.
    pub(crate) fn steal_into(&self, dst: &mut Local<T>, steal_runnext: bool) -> Option<T> {
        debug_assert!(
            !Arc::ptr_eq(&self.ring, &dst.ring),
            "a P must not steal from its own runq"
        );
        let free = dst.free_slots();
        if free == 0 {
            return None;
        }
        // Only `dst` (we hold it mutably) writes its tail.
        let dst_tail = dst.ring.tail.load(Relaxed);
        match self.grab(&dst.ring, dst_tail, free, steal_runnext)? {
            Grabbed::Next(raw) => {
                // SAFETY: `raw` was `runnext` (from `into_raw`), and our
                // successful CAS in `grab_runnext` made us its only owner.
                Some(unsafe { T::from_raw(raw) })
            }
            Grabbed::Ring(n) => {
                let keep = n - 1;
                let raw = dst.ring.slot(dst_tail.wrapping_add(keep)).load(Relaxed);
                if keep > 0 {
                    // Release: publishes the copied slots to thieves of `dst`
                    // (pairs with the Acquire tail load in their `grab`).
                    dst.ring.tail.store(dst_tail.wrapping_add(keep), Release);
                }
                // SAFETY: `grab` copied `n` owned items into `dst` slots
                // `dst_tail..dst_tail+n` and its CAS made them ours; the last
                // one is not published by the tail store above, so only we
                // hold it. It is non-null (from `into_raw`).
                Some(unsafe { T::from_raw(NonNull::new_unchecked(raw)) })
            }
        }
    }

    /// Go's `runqgrab`: copies up to `max` items from this ring into `dst`'s
    /// slots starting at `dst_tail`, then commits with `CAS head`.
    fn grab(&self, dst: &Ring, dst_tail: u32, max: u32, steal_runnext: bool) -> Option<Grabbed> {
        loop {
            let head = self.ring.head.load(Acquire);
            // Acquire: pairs with the Release tail store in `push_back` (and
            // in `steal_into` when this ring's owner stole into it).
            let tail = self.ring.tail.load(Acquire);
            let avail = tail.wrapping_sub(head);
            let n = avail - avail / 2;
            if n == 0 {
                if !steal_runnext {
                    return None;
                }
                match self.grab_runnext() {
                    RunnextGrab::Took(raw) => return Some(Grabbed::Next(raw)),
                    RunnextGrab::Empty => return None,
                    RunnextGrab::Raced => continue,
                }
            }
            if n > CAP / 2 {
                // `head` and `tail` were read at different moments and many
                // items went through in between: the pair is inconsistent.
                continue;
            }
            let n = n.min(max);
            for i in 0..n {
                let raw = self.ring.slot(head.wrapping_add(i)).load(Relaxed);
                dst.slot(dst_tail.wrapping_add(i)).store(raw, Relaxed);
            }
            // AcqRel: commits the consume (see Orderings).
            if self
                .ring
                .head
                .compare_exchange(head, head.wrapping_add(n), AcqRel, Relaxed)
                .is_ok()
            {
                return Some(Grabbed::Ring(n));
            }
        }
    }

    /// Takes the victim's `runnext` after a short grace period.
    fn grab_runnext(&self) -> RunnextGrab {
        let Some(next) = NonNull::new(self.ring.runnext.load(Relaxed)) else {
            return RunnextGrab::Empty;
        };
        // The owner probably just readied this task and is about to run it
        // (a ping-pong pair): stealing it now would bounce the pair between
        // Ps. Go sleeps 3 us here; we spin on the clock (vDSO, no syscall)
        // and stop early if the owner takes it.
        runnext_grace(|| self.ring.runnext.load(Relaxed) != next.as_ptr());
        // Acquire on success pairs with the Release swap in `push_next`.
        match self
            .ring
            .runnext
            .compare_exchange(next.as_ptr(), ptr::null_mut(), Acquire, Relaxed)
        {
            Ok(_) => RunnextGrab::Took(next),
            Err(_) => RunnextGrab::Raced,
        }
    }

    /// Items queued on the victim, `runnext` included (a racy snapshot).
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the victim's ring and `runnext` looked empty (Go's `runqempty`).
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: QueueItem> Clone for Steal<T> {
    fn clone(&self) -> Self {
        Steal {
            ring: self.ring.clone(),
            _marker: PhantomData,
        }
    }
}

impl<T: QueueItem> std::fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("len", &self.len()).finish()
    }
}

impl<T: QueueItem> std::fmt::Debug for Steal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steal").field("len", &self.len()).finish()
    }
}

/// Result of one attempt at the victim's `runnext`.
enum RunnextGrab {
    Took(NonNull<()>),
    Empty,
    /// It changed during the grace period; re-read the ring.
    Raced,
}

/// How long a thief leaves a victim's `runnext` to its owner: Go's 3 us
/// (`runqgrab`), long enough for the owner to finish a short poll and pick
/// it up, short enough to be below a context switch.
#[cfg(not(loom))]
const RUNNEXT_GRACE: std::time::Duration = std::time::Duration::from_micros(3);

/// Spins for [`RUNNEXT_GRACE`] or until `taken()` is true.
#[cfg(not(loom))]
fn runnext_grace(taken: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !taken() && start.elapsed() < RUNNEXT_GRACE {
        std::hint::spin_loop();
    }
}

/// Under loom, time does not pass: one yield lets the model run the owner.
#[cfg(loom)]
fn runnext_grace(taken: impl Fn() -> bool) {
    if !taken() {
        gort_netpoll::loom::spin_loop();
    }
}
