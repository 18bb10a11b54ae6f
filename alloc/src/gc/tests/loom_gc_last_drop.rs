//! Loom model of the last drop racing a cycle (barrier.rs, "Last drop").
//!
//! A mutator drops the only handle to an object while the collector runs a
//! whole cycle: start, allocation handshake, snapshot (which traces the value
//! of every allocated, unmarked object), roots, the SWEEP handshake, the
//! sweep (which drops and frees an unmarked snapshot object) and OFF. The
//! drop runs `Gc::drop`'s protocol with the real `Barrier` and
//! `MutatorRecord`: the phase read before the decrement, the decrement, and,
//! if the count reached zero, a barrier operation that frees the object only
//! when `may_free` says so.
//!
//! Asserted: the object is freed exactly once (by the drop, by the sweep, or,
//! if the cycle counted the handle before the drop, by the next cycle, run
//! here single-threaded after the join), and its value is never dropped while
//! the snapshot reads it (loom's cell checker on the value).
//!
//! Checked by hand that the model fails without the protocol: with
//! `may_free` reduced to `phase_after_store().phase == OFF` (no comparison
//! with the phase read before the decrement) a cycle that runs entirely
//! between the decrement and the check frees the object in its sweep and the
//! drop frees it again (loom: concurrent writes to the value); with the
//! fence in
//! `phase_after_store` removed (in `may_free`), the drop reads a stale OFF
//! while the handshake reads a stale even `seq`, and the snapshot traces the
//! value the drop is destroying (loom: concurrent read and write). The
//! Acquire of `phase_before_drop` is not distinguished by this model: the
//! Acquire fence after the last decrement orders the same reads.

use crate::gc::barrier::{Barrier, MutatorRecord, OFF, PhaseWord, SWEEP};
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::Arc;
use crate::loom::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering, fence};
use crate::loom::thread;

const EPOCH: u32 = 1;
const ALIVE: u32 = 7;
const DROPPED: u32 = 0;

/// The modelled object: its handle count, its slot's alloc and mark bits,
/// its value, and how many times anyone freed it.
struct Obj {
    handles: AtomicUsize,
    allocated: AtomicBool,
    mark: AtomicU32,
    value: UnsafeCell<u32>,
    frees: AtomicUsize,
}

impl Obj {
    /// Drops the value and frees the slot (the destructor and `gc_free`, or
    /// the sweep's destructor and bitmap swap).
    fn destroy(&self) {
        // SAFETY: the model's claim: whoever frees is the only one using
        // the value; loom reports a racing read.
        self.value.with_mut(|v| unsafe { *v = DROPPED });
        self.allocated.store(false, Ordering::Relaxed);
        self.frees.fetch_add(1, Ordering::Relaxed);
    }
}

/// `Gc::drop` and `free_at_zero`, on the modelled object.
fn drop_handle(barrier: &Barrier, record: &MutatorRecord, obj: &Obj) {
    let before = barrier.phase_before_drop();
    if obj.handles.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    fence(Ordering::Acquire);
    record.enter();
    if barrier.may_free(before) {
        obj.destroy();
    }
    record.exit();
}

#[test]
fn last_drop_races_a_whole_cycle() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let obj = Arc::new(Obj {
            handles: AtomicUsize::new(1),
            allocated: AtomicBool::new(true),
            mark: AtomicU32::new(0),
            value: UnsafeCell::new(ALIVE),
            frees: AtomicUsize::new(0),
        });
        let record = barrier.register();

        let mutator = {
            let (barrier, obj) = (barrier.clone(), obj.clone());
            thread::spawn(move || drop_handle(&barrier, &record, &obj))
        };

        // run_cycle: barriers on, allocation handshake.
        barrier.start_cycle(EPOCH);
        barrier.wait_for_mutators();
        // snapshot_and_count: an allocated, unmarked slot is traced.
        let in_snapshot =
            obj.allocated.load(Ordering::Acquire) && obj.mark.load(Ordering::Relaxed) == 0;
        if in_snapshot {
            // SAFETY: the model's claim: no one drops a snapshot object's
            // value while the snapshot reads it; loom reports the race.
            let seen = obj.value.with(|v| unsafe { *v });
            assert_eq!(seen, ALIVE, "the snapshot traced a dropped value");
            // find_roots: no handle inside the heap, so any handle is outside.
            if obj.handles.load(Ordering::Relaxed) > 0 {
                obj.mark.fetch_or(1, Ordering::Relaxed);
            }
        }
        // Marking has nothing to trace; SWEEP and its handshake.
        barrier.set_phase(PhaseWord {
            phase: SWEEP,
            epoch: EPOCH,
        });
        barrier.wait_for_mutators();
        if in_snapshot && obj.mark.load(Ordering::Relaxed) == 0 {
            obj.destroy();
        }
        obj.mark.store(0, Ordering::Relaxed);
        barrier.set_phase(PhaseWord {
            phase: OFF,
            epoch: EPOCH,
        });

        mutator.join().unwrap();
        // The next cycle, alone: an object the drop left and this cycle
        // kept (it counted the handle before the drop) is garbage now.
        if obj.allocated.load(Ordering::Relaxed) {
            assert_eq!(
                obj.handles.load(Ordering::Relaxed),
                0,
                "the handle was dropped"
            );
            obj.destroy();
        }
        assert_eq!(
            obj.frees.load(Ordering::Relaxed),
            1,
            "the object must be freed exactly once"
        );
    });
}

/// What the modelled slot holds.
const OLD: u32 = 1;
const DEAD: u32 = 2;
const NEW: u32 = 3;
const FREED: u32 = 4;

/// Dead slots (barrier.rs, "Dead slots"): the mutator drops the last
/// handle to an object, keeps its slot as a dead slot tagged with the phase
/// word, then allocates again and reuses the slot if the phase word is
/// still the tag. Meanwhile the collector runs a cycle whose snapshot
/// releases a dead slot (the arena frees it) and frees unreachable objects.
/// Asserted: the slot is never reused after the collector released it, never
/// released or freed after it was reused, and the collector never reads it
/// while the mutator writes it (loom's cell checker).
///
/// Checked by hand: reusing under any OFF word (without the tag) fails ("a
/// reused slot was freed"); with `MutatorRecord::enter` storing Relaxed the
/// snapshot reads the slot while the drop writes it (the handshake saw the
/// next operation's odd `seq`, which carried no Release).
#[test]
fn dead_slot_reuse_races_a_cycle() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let handles = Arc::new(AtomicUsize::new(1));
        let allocated = Arc::new(AtomicBool::new(true));
        let slot = Arc::new(UnsafeCell::new(OLD));
        let record = barrier.register();

        let mutator = {
            let (barrier, handles, slot) = (barrier.clone(), handles.clone(), slot.clone());
            thread::spawn(move || {
                // Gc::drop of the last handle, then FreeSlot::drop.
                let before = barrier.phase_before_drop();
                handles.fetch_sub(1, Ordering::Release);
                fence(Ordering::Acquire);
                record.enter();
                let kept = barrier.may_free(before);
                if kept {
                    // SAFETY: the model's claim (see the test's doc).
                    slot.with_mut(|s| unsafe { *s = DEAD });
                }
                record.exit();
                if !kept {
                    return false;
                }
                // Gc::new: reuse only under the same OFF word.
                record.enter();
                let phase = barrier.phase_after_store();
                let reuse = phase.phase == OFF && phase.tag() == before.tag();
                if reuse {
                    // SAFETY: as above.
                    slot.with_mut(|s| unsafe { *s = NEW });
                    handles.store(1, Ordering::Relaxed);
                }
                record.exit();
                reuse
            })
        };

        barrier.start_cycle(EPOCH);
        barrier.wait_for_mutators();
        // snapshot_and_count for the one slot (never marked here).
        let mut garbage = false;
        if allocated.load(Ordering::Acquire) {
            // SAFETY: as above.
            match slot.with(|s| unsafe { *s }) {
                DEAD => {
                    // Released: the arena's sweep frees it.
                    allocated.store(false, Ordering::Relaxed);
                    // SAFETY: as above.
                    slot.with_mut(|s| unsafe { *s = FREED });
                }
                OLD | NEW => garbage = handles.load(Ordering::Relaxed) == 0,
                other => panic!("the snapshot read slot state {other}"),
            }
        }
        barrier.set_phase(PhaseWord {
            phase: SWEEP,
            epoch: EPOCH,
        });
        barrier.wait_for_mutators();
        if garbage {
            allocated.store(false, Ordering::Relaxed);
            // SAFETY: as above.
            slot.with_mut(|s| unsafe { *s = FREED });
        }
        barrier.set_phase(PhaseWord {
            phase: OFF,
            epoch: EPOCH,
        });

        let reused = mutator.join().unwrap();
        if reused {
            assert!(
                allocated.load(Ordering::Relaxed),
                "a reused slot was freed by the collector"
            );
            // SAFETY: every thread is done.
            assert_eq!(slot.with(|s| unsafe { *s }), NEW);
        }
    });
}
