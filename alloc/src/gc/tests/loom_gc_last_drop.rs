//! Loom models of a handle's drop racing a cycle (last_drop.rs, and
//! barrier.rs, "Last drop").
//!
//! A mutator drops the only handle to an object while the collector runs a
//! whole cycle: start, allocation handshake, snapshot (which traces the value
//! of every allocated, unmarked object), roots, the SWEEP handshake, the
//! sweep (which drops and frees an unmarked snapshot object) and OFF. The
//! drop runs `Gc::drop`'s protocol with the real `give_up`, `may_destroy`,
//! `Barrier` and `MutatorRecord`: with one handle it is the unique drop (a
//! load, no decrement, then a barrier operation that frees when the phase is
//! OFF and otherwise stores 0); with two handles on two threads each drop
//! takes whichever path the interleaving gives it (a `fetch_sub`, the phase
//! read before it and `may_free`, or the unique drop after the other's
//! decrement).
//!
//! Asserted: the object is freed exactly once (by a drop, by the sweep, or,
//! if the cycle counted a handle before its drop, by the next cycle, run
//! here single-threaded after the join), and its value is never dropped while
//! the snapshot reads it (loom's cell checker on the value).
//!
//! Checked by hand that the models fail without the protocol: with
//! `may_free` reduced to `phase_after_store().phase == OFF` (no comparison
//! with the phase read before the decrement) a cycle that runs entirely
//! between the decrement and the check frees the object in its sweep and the
//! drop frees it again (loom: concurrent writes to the value); with the
//! fence in `phase_after_store` removed, the drop reads a stale OFF while the
//! handshake reads a stale even `seq`, and the snapshot traces the value the
//! drop is destroying (loom: concurrent read and write); with the unique
//! drop leaving the count at 1 when it may not free, the object is never
//! freed; with the unique drop freeing without its barrier operation's
//! phase check, the snapshot reads a destroyed value.
use super::loom_gc_barrier::upgrade;
use crate::gc::barrier::{Barrier, MutatorRecord, OFF, PhaseWord, SWEEP};
use crate::gc::last_drop::{CONDEMNED, Dropped, WEAK_ONE, give_up, may_destroy};
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::Arc;
use crate::loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::loom::thread;

const EPOCH: u32 = 1;
const ALIVE: u32 = 7;
const DROPPED: u32 = 0;

/// The modelled object: its handle count, its slot's alloc and mark bits,
/// its value, and how many times anyone freed it.
struct Obj {
    handles: AtomicU64,
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

impl Obj {
    fn new(handles: u64) -> Obj {
        Obj {
            handles: AtomicU64::new(handles),
            allocated: AtomicBool::new(true),
            mark: AtomicU32::new(0),
            value: UnsafeCell::new(ALIVE),
            frees: AtomicUsize::new(0),
        }
    }
}

/// `Gc::drop` and `free_at_zero`, on the modelled object.
fn drop_handle(barrier: &Barrier, record: &MutatorRecord, obj: &Obj) {
    let dropped = give_up(barrier, &obj.handles);
    if dropped == Dropped::NotLast {
        return;
    }
    record.enter();
    if may_destroy(barrier, dropped, || &obj.handles).is_some() {
        obj.destroy();
    }
    record.exit();
}

/// One whole cycle of the collector over the one object (it holds no
/// handle, so every handle counts as outside), then, after `mutators`
/// joined, the next cycle alone: it frees the object if no handle is left.
fn cycle_races(barrier: &Barrier, obj: &Obj, mutators: Vec<thread::JoinHandle<()>>) {
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
        // Header::condemn with no `Weak`.
        let word = obj.handles.load(Ordering::Relaxed);
        obj.handles.store(word | CONDEMNED, Ordering::Relaxed);
        obj.destroy();
    }
    obj.mark.store(0, Ordering::Relaxed);
    barrier.set_phase(PhaseWord {
        phase: OFF,
        epoch: EPOCH,
    });

    for mutator in mutators {
        mutator.join().unwrap();
    }
    // The next cycle, alone: an object the drops left and this cycle kept
    // (it counted a handle before its drop) is garbage now.
    if obj.allocated.load(Ordering::Relaxed) {
        assert_eq!(
            obj.handles.load(Ordering::Relaxed),
            0,
            "every handle was dropped, and the count must say so"
        );
        obj.destroy();
    }
    assert_eq!(
        obj.frees.load(Ordering::Relaxed),
        1,
        "the object must be freed exactly once"
    );
}

/// The unique drop (one handle, no `Weak`) racing a whole cycle.
#[test]
fn last_drop_races_a_whole_cycle() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let obj = Arc::new(Obj::new(1));
        let record = barrier.register();
        let mutator = {
            let (barrier, obj) = (barrier.clone(), obj.clone());
            thread::spawn(move || drop_handle(&barrier, &record, &obj))
        };
        cycle_races(&barrier, &obj, vec![mutator]);
    });
}

/// Two handles dropped on two threads while a cycle runs: each drop takes
/// the `fetch_sub` path or, after the other's decrement, the unique one.
#[test]
fn two_last_drops_race_a_whole_cycle() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let obj = Arc::new(Obj::new(2));
        let mutators = (0..2)
            .map(|_| {
                let (barrier, obj) = (barrier.clone(), obj.clone());
                let record = barrier.register();
                thread::spawn(move || drop_handle(&barrier, &record, &obj))
            })
            .collect();
        cycle_races(&barrier, &obj, mutators);
    });
}

/// One strong handle (thread A) and one `Weak` (thread B): A drops its
/// handle while B upgrades, uses the value, drops the upgraded handle, then
/// its `Weak`. Either drop may be the last and take either path (the unique
/// drop once the other thread's counts are gone). Asserted: an upgrade that
/// succeeds reads a live value, never one the last drop destroys (loom's
/// cell checker), and the object is freed exactly once (by a drop, or by the
/// cycle run after the join, when the strong count reached 0 while the
/// `Weak` still counted).
///
/// Checked by hand: with `give_up` taking the unique path for strong count
/// 1 whatever the weak count, the drop of A frees the value while B reads it.
#[test]
fn weak_upgrade_races_the_last_drop() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let obj = Arc::new(Obj::new(1 + WEAK_ONE));
        let dropper = {
            let (barrier, obj) = (barrier.clone(), obj.clone());
            let record = barrier.register();
            thread::spawn(move || drop_handle(&barrier, &record, &obj))
        };
        let record = barrier.register();
        // `Weak::upgrade` (no cycle runs: no mark or sweep check applies).
        if upgrade(&barrier, &record, &obj.handles, &obj.mark) {
            // SAFETY: the model's claim: a kept handle means the value is not
            // dropped while we hold it; loom reports the race.
            let seen = obj.value.with(|v| unsafe { *v });
            assert_eq!(seen, ALIVE, "upgrade returned a dropped value");
            drop_handle(&barrier, &record, &obj);
        }
        // Weak::drop.
        obj.handles.fetch_sub(WEAK_ONE, Ordering::Release);
        dropper.join().unwrap();
        // The next cycle, alone: no handle left, so garbage if still there.
        if obj.allocated.load(Ordering::Relaxed) {
            assert_eq!(obj.handles.load(Ordering::Relaxed), 0);
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
        let handles = Arc::new(AtomicU64::new(1));
        let allocated = Arc::new(AtomicBool::new(true));
        let slot = Arc::new(UnsafeCell::new(OLD));
        let record = barrier.register();

        let mutator = {
            let (barrier, handles, slot) = (barrier.clone(), handles.clone(), slot.clone());
            thread::spawn(move || {
                // Gc::drop of the last handle, then FreeSlot::drop.
                let dropped = give_up(&barrier, &handles);
                record.enter();
                let tag = may_destroy(&barrier, dropped, || &*handles);
                let kept = tag.is_some();
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
                let reuse = tag.is_some_and(|tag| phase.phase == OFF && phase.tag() == tag.tag());
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
