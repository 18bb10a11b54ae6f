//! The drop of a `Gc` handle: how it gives up its count, and whether the
//! dropping thread may destroy and free the object at once.
//!
//! # Purpose
//! Every handle counts itself in its object's `handles` word, so the drop
//! of the last one knows the object is garbage. This file decides, with as
//! few locked instructions as the word allows, (1) whether the drop was the
//! last, and (2) whether no cycle can be looking at the object, in which case
//! the caller (`handle.rs::free_at_zero`) runs the destructor and frees the
//! slot inside the barrier operation it entered for (2).
//!
//! # States
//! The `handles` word (`Header::handles`, one `AtomicU64`):
//! - bits 0..32: the strong count, how many `Gc`s point here;
//! - bits 32..63: the weak count, how many `Weak`s;
//! - bit 63 `CONDEMNED`: a sweep found the object unreachable.
//!
//! # Transitions
//! - `1 -> 1` (untouched), then `1 -> CONDEMNED` (a dead slot's header,
//!   written by `FreeSlot` after the destructor) or `1 -> 0`: the **unique
//!   drop**. `give_up` loads the word (Acquire) and reads exactly 1: one
//!   strong handle, the caller's, no `Weak`, not condemned. It writes
//!   nothing yet; `may_destroy`, inside a barrier operation, either frees
//!   (phase OFF after its fence) or stores 0 (Release) and leaves the object
//!   to a sweep. No locked instruction.
//! - `CONDEMNED | 1 -> CONDEMNED`: the last handle to a condemned object
//!   (a destructor of the same sweep dropping a handle it held), a Release
//!   store; the sweep frees the slot.
//! - any other word: `fetch_sub(1, Release)`; the thread whose decrement
//!   read exactly 1 took the count to 0 and frees if `Barrier::may_free`
//!   says so (the phase read before the decrement and again after a fence
//!   inside the operation are the same OFF word).
//!
//! # Ownership
//! The whole argument for the stores: **a word with strong count 1 and weak
//! count 0, read by the holder of a strong handle that it has not given up,
//! is written by no one else until that holder writes it.** Who else writes
//! `handles`:
//! - `Gc::clone` (`fetch_add`) needs a handle to clone from. The count is
//!   never below the number of handles in existence (a clone counts before
//!   its handle exists, a drop gives up its count last), so a count of 1 is
//!   the caller's handle, and the caller holds it by value in `drop`: no
//!   `&Gc` to it exists to clone through.
//! - `Gc::downgrade` and `Weak::clone` (`fetch_add` of a weak) need a strong
//!   handle or a `Weak`; there is neither but the caller's.
//! - `Weak::upgrade` (CAS, and the `fetch_sub` that gives an upgrade back)
//!   and `Weak::drop` need a `Weak`: the weak count is 0, and a new `Weak`
//!   can only come from the caller's handle.
//! - The sweep's `Header::condemn` (store or `fetch_or`) touches only objects
//!   no mutator can reach (DESIGN.md, "Soundness"), while the caller holds a
//!   handle and reaches it. A destructor run by the sweep reaches a condemned
//!   object through a handle, but every condemn precedes every destructor of
//!   that sweep on the collector thread, so such a drop reads `CONDEMNED`.
//! - `FreeSlot` and the snapshot write only words whose count is 0.
//! - The collector's other accesses (`find_roots`, the snapshot, the sweep's
//!   `is_referenced`) are loads.
//!
//! So the holder may replace the `fetch_sub` with a load and a store, and the
//! unique drop may even leave the word at 1 while it decides: a count of 1 is
//! what any racing collector pass would have read before a `fetch_sub`, and
//! such a pass counts the object as a root and keeps it.
//!
//! Why the unique drop needs no phase read before it: in the `fetch_sub`
//! path the count is 0 between the decrement and the barrier operation, so a
//! whole cycle can run there, find the object with no handle and sweep it;
//! the epoch in `before` catches that cycle. The unique drop leaves the count
//! at 1 until it is inside the operation and has read OFF after its fence: a
//! cycle that ran before read 1, kept the object (root), and its sweep's
//! bitmap swap left the slot allocated and unmarked; a cycle whose start
//! fence follows ours waits for the operation (`wait_for_mutators`) before
//! its snapshot, and then finds the slot freed or a dead slot. If the phase
//! is not OFF, the drop stores 0 and does nothing else, exactly as a
//! `fetch_sub` whose `may_free` failed.
//!
//! # Orderings
//! - `give_up`'s Acquire load pairs with the Release `fetch_sub` of other
//!   handles' drops (and with the Release store of a unique condemned drop):
//!   their writes through the value happen before the destructor. A load
//!   that reads a value written inside a release sequence synchronises with
//!   its head, as the old Acquire fence after the last `fetch_sub` did.
//! - The Release store of 0 (unique drop during a cycle) and of `CONDEMNED`
//!   pair with the sweep's Acquire `is_referenced` and with the Acquire load
//!   of the next `give_up` (a resurrected handle's drop): this thread's writes
//!   through the value happen before the destructor, wherever it runs.
//! - `may_destroy`'s phase read is `Barrier::phase_after_store` (fence, then
//!   Acquire load) inside a barrier operation: the odd `seq` is the store of
//!   the StoreLoad pair whose collector side is `start_cycle`'s fence and
//!   `wait_for_mutators` (barrier.rs, "Last drop"). Its Acquire pairs with
//!   `set_phase(OFF)` (SeqCst), so the last cycle's reads and mark bits of
//!   the object happen before the free.
//!
//! # Rejected alternatives
//! - Biased counts (an owner-thread count beside a shared one, DESIGN.md
//!   section 10): removes the locked instruction from clones too, but grows
//!   the header to 32 bytes and needs a merge before every free; the unique
//!   drop covers the objects that are never cloned, with no new state.
//! - A plain store for every drop whose load reads strong count 1 with
//!   `Weak`s present: a `Weak::upgrade` may CAS the word between the load
//!   and the store (its increment would be lost).
//! - Leaving the unique drop's count at 1 when it does not free: the next
//!   snapshot would see a handle that no longer exists and keep the object
//!   as a root forever.
//!
//! # Checked by
//! `alloc/src/gc/tests/loom_gc_last_drop.rs`:
//! - `last_drop_races_a_whole_cycle`: the unique drop racing a cycle frees
//!   the object exactly once and never while the snapshot reads it;
//! - `two_last_drops_race_a_whole_cycle`: two threads drop the two handles
//!   (whichever path each takes) while a cycle runs: freed exactly once;
//! - `weak_upgrade_races_the_last_drop`: an upgrade and the drop of the
//!   strong handle race: a kept handle reads a live value, and the object is
//!   freed exactly once.

#![cfg_attr(
    loom,
    allow(dead_code, reason = "loom builds only the pieces its models use")
)]

use crate::gc::barrier::{Barrier, OFF, PhaseWord};
use crate::loom::sync::atomic::{AtomicU64, Ordering, fence};

/// The top bit of `Header::handles`: the collector found the object
/// unreachable; its value is dropped or being dropped.
pub(crate) const CONDEMNED: u64 = 1 << 63;
/// One `Weak` handle in `Header::handles` (bits 32..63 count them).
pub(crate) const WEAK_ONE: u64 = 1 << 32;
/// The strong (`Gc`) count: bits 0..32.
pub(crate) const STRONG_MASK: u64 = WEAK_ONE - 1;
/// The weak count's bits.
pub(crate) const WEAK_MASK: u64 = CONDEMNED - WEAK_ONE;

/// How a drop gave up its handle's count.
#[must_use = "a drop that was the last must go on to `may_destroy`"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Other handles remain, or the object is condemned: nothing to do.
    NotLast,
    /// The word read exactly 1 and was left so: the caller's handle was the
    /// only one, no `Weak` exists, and no one else writes the word.
    Unique,
    /// The caller's `fetch_sub` took the word from 1 to 0, after reading
    /// the phase word it carries.
    Zero(PhaseWord),
}

/// Gives up the count of a strong handle whose object has the `handles`
/// word `handles`. Outside any barrier operation.
#[inline]
pub(crate) fn give_up(barrier: &Barrier, handles: &AtomicU64) -> Dropped {
    // Acquire: see Orderings (the other handles' Release decrements).
    let word = handles.load(Ordering::Acquire);
    if word & !CONDEMNED == 1 {
        // Strong count 1, the caller's, and no `Weak`: nobody else writes the
        // word (Ownership).
        if word == 1 {
            return Dropped::Unique;
        }
        // Release: this thread's writes through the value happen before the
        // sweep's check of the count and the slot's free.
        handles.store(CONDEMNED, Ordering::Release);
        return Dropped::NotLast;
    }
    // Read before the decrement: the first half of the last-drop check
    // (barrier.rs, "Last drop").
    let before = barrier.phase_before_drop();
    // Release: whatever this thread wrote through the value happens before
    // the collector's count load and the destructor, wherever it runs.
    if handles.fetch_sub(1, Ordering::Release) != 1 {
        return Dropped::NotLast;
    }
    // Acquire: pairs with the other handles' Release decrements, so their
    // writes through the value happen before its destructor.
    fence(Ordering::Acquire);
    Dropped::Zero(before)
}

/// Whether the drop that gave up the last count (`dropped`, from
/// `give_up`) may destroy and free the object now, on this thread: the phase
/// word to tag its slot with if so. Called inside a barrier operation of the
/// calling thread, which must last until the object is freed. A unique drop
/// that may not free stores the count 0 here, leaving the object to a sweep.
/// `handles` gives the object's word; it is called only for a unique drop
/// (after a `fetch_sub` to 0 the object may already be swept).
#[inline]
pub(crate) fn may_destroy<'a>(
    barrier: &Barrier,
    dropped: Dropped,
    handles: impl FnOnce() -> &'a AtomicU64,
) -> Option<PhaseWord> {
    match dropped {
        Dropped::NotLast => None,
        Dropped::Unique => {
            let handles = handles();
            let now = barrier.phase_after_store();
            if now.phase == OFF {
                Some(now)
            } else {
                // Release: as in `give_up`; the object now has no handle and
                // the sweep of this cycle or the next one frees it.
                handles.store(0, Ordering::Release);
                None
            }
        }
        Dropped::Zero(before) => barrier.may_free(before).then_some(before),
    }
}
