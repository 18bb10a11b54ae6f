//! Loom models of the barrier and handshake (barrier.rs, borrow.rs).
//!
//! Each model races one mutator operation against a collector cycle over a
//! tiny heap and asserts the property the soundness argument rests on: the
//! object the mutator still holds at the end is marked when the collector
//! decides, so it would not be freed.
//!
//! Objects are ids with a handle count, an internal count and a mark word;
//! the collector steps (count, roots, mark, terminate) are written out with
//! the real `Barrier`, `MutatorRecord`, `BorrowFlag` and `try_mark`.

use crate::gc::barrier::{Barrier, MutatorRecord};
use crate::gc::borrow::{BorrowFlag, Conflict, Parking};
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::Arc;
use crate::loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
use crate::loom::thread;

const EPOCH: u32 = 1;

/// The model's mark bit (the arena's is a bit in a span bitmap set with
/// fetch-or; here one word per object): true if this call set it.
fn try_mark(mark: &AtomicU32, _epoch: u32) -> bool {
    mark.fetch_or(1, Ordering::Relaxed) == 0
}

fn is_marked(mark: &AtomicU32, _epoch: u32) -> bool {
    mark.load(Ordering::Relaxed) != 0
}

/// One modelled object.
struct Obj {
    handles: AtomicUsize,
    mark: AtomicU32,
}

impl Obj {
    fn new(handles: usize) -> Obj {
        Obj {
            handles: AtomicUsize::new(handles),
            mark: AtomicU32::new(0),
        }
    }
}

/// The collector's marking as `mark::mark` runs it: drain the roots, then
/// terminate with the real handshake, tracing each gray object to a fixpoint.
fn mark(barrier: &Barrier, mut stack: Vec<usize>, trace: impl Fn(usize, &mut Vec<usize>)) {
    while let Some(id) = stack.pop() {
        trace(id, &mut stack);
    }
    barrier.terminate(|id| {
        let mut local = vec![id];
        while let Some(id) = local.pop() {
            trace(id, &mut local);
        }
    });
}

/// The clone barrier exactly as `Gc::clone` runs it.
fn clone_handle(barrier: &Barrier, record: &MutatorRecord, obj: &Obj, id: usize) {
    record.enter();
    obj.handles.fetch_add(1, Ordering::Relaxed);
    if barrier.phase_after_store().marking() && try_mark(&obj.mark, EPOCH) {
        barrier.shaded(id);
    }
    record.exit();
}

/// Heap: `holder` (id 1, one stack handle) holds the only handle to `x`
/// (id 2). The mutator clones `x` out of `holder`, then drops its handle to
/// `holder`. The collector counts `x` before `holder` (the order that needs
/// the clone barrier). At the end the mutator holds `x`: `x` must be marked.
#[test]
fn clone_then_drop_holder_races_counting_and_termination() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let holder = Arc::new(Obj::new(1));
        let x = Arc::new(Obj::new(1));
        let record = barrier.register();

        let mutator = {
            let (barrier, holder, x) = (barrier.clone(), holder.clone(), x.clone());
            thread::spawn(move || {
                clone_handle(&barrier, &record, &x, 2);
                holder.handles.fetch_sub(1, Ordering::Release);
            })
        };

        // The collector: snapshot {x, holder}; barriers on.
        barrier.start_cycle(EPOCH);
        // Counting: holder's field is the one handle inside the heap.
        let internal_x = 1;
        let internal_holder = 0;
        // Roots, x first.
        let mut stack = Vec::new();
        if x.handles.load(Ordering::Relaxed) > internal_x && try_mark(&x.mark, EPOCH) {
            stack.push(2);
        }
        if holder.handles.load(Ordering::Relaxed) > internal_holder && try_mark(&holder.mark, EPOCH)
        {
            stack.push(1);
        }
        // Marking: tracing holder marks x.
        let trace = |id: usize, stack: &mut Vec<usize>| {
            if id == 1 && try_mark(&x.mark, EPOCH) {
                stack.push(2);
            }
        };
        mark(&barrier, stack, trace);
        let x_marked = is_marked(&x.mark, EPOCH);

        mutator.join().unwrap();
        assert!(
            x_marked,
            "the mutator holds x, but the collector would free it"
        );
    });
}

/// Heap: a cell `c` (a root, its handle on the mutator's stack) holds the only
/// handle to `x`. The mutator takes `x` out of the cell
/// (`borrow_mut().take()`), keeping it on its stack. The collector starts the
/// cycle as `run_cycle` does (`start_cycle`, the allocation handshake) and
/// reads the cell while counting and again while marking. `x` must be
/// marked, and the cell's contents are never read and written at once
/// (loom's race checker).
///
/// The borrow is `GcCell::borrow_mut`'s: `acquire_write_unshared`, a load
/// and a plain store while the phase is OFF. Checked by hand: without the
/// collector's `wait_for_mutators` before counting, or with the fast path
/// taken whatever the phase, loom finds the collector's CAS landing between
/// the mutator's load and store and reports the cell read and written at
/// once.
#[test]
fn cell_move_races_counting_and_marking() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let flag = Arc::new(BorrowFlag::new());
        // The cell's contents: whether it holds the handle to x.
        let holds_x = Arc::new(UnsafeCell::new(true));
        let x = Arc::new(Obj::new(1));
        let record = barrier.register();

        let mutator = {
            let (barrier, flag, holds_x, x) =
                (barrier.clone(), flag.clone(), holds_x.clone(), x.clone());
            thread::spawn(move || {
                // `GcCell::borrow_mut`: acquire, deletion barrier.
                record.enter();
                let (phase, _) = flag
                    .acquire_write_unshared(&barrier)
                    .expect("no other mutator borrows");
                let marking = phase.marking();
                // SAFETY: we hold WRITING (acquire_write above).
                if marking && holds_x.with(|held| unsafe { *held }) && try_mark(&x.mark, EPOCH) {
                    barrier.shaded(2);
                }
                record.exit();
                // `take()`: the handle moves to the stack.
                // SAFETY: still WRITING (released below): no reader or
                // writer of the cell runs concurrently.
                holds_x.with_mut(|held| unsafe { *held = false });
                flag.release_write();
            })
        };

        barrier.start_cycle(EPOCH);
        // The allocation handshake, which the unshared borrow relies on.
        barrier.wait_for_mutators();
        // Counting: read the cell if no mutator holds it.
        let mut internal_x = 0;
        if flag.collector_try_read(&barrier) {
            // SAFETY: the collector's read holds the flag (no writer until
            // `end_cell_read`).
            if holds_x.with(|held| unsafe { *held }) {
                internal_x += 1;
            }
            barrier.end_cell_read();
        }
        // Roots: the cell is a root (its handle is on the stack); x is one
        // if its handle is not (only) inside the cell.
        let mut stack = vec![1];
        if x.handles.load(Ordering::Relaxed) > internal_x && try_mark(&x.mark, EPOCH) {
            stack.push(2);
        }
        let trace = |id: usize, stack: &mut Vec<usize>| {
            if id == 1 && flag.collector_try_read(&barrier) {
                // SAFETY: as above, read under the collector's read flag.
                let held = holds_x.with(|held| unsafe { *held });
                barrier.end_cell_read();
                if held && try_mark(&x.mark, EPOCH) {
                    stack.push(2);
                }
            }
        };
        mark(&barrier, stack, trace);
        let x_marked = is_marked(&x.mark, EPOCH);

        mutator.join().unwrap();
        assert!(
            x_marked,
            "x moved to the stack, but the collector would free it"
        );
    });
}

/// The allocation handshake: a mutator runs `Gc::new` (a barrier operation:
/// `enter`, fence, the arena's phase load, black or white slot, header write,
/// `exit`) while the collector starts a cycle (the arena's MARK, `start_cycle`,
/// `wait_for_mutators`) and snapshots the heap. The snapshot must never read
/// a header that is not written yet: a white slot it sees allocated was
/// initialised before the handshake let it through (loom's cell checker
/// fails on an unsynchronised read), and a slot allocated after is black.
///
/// The arena's slot bits are modelled as the protocol needs them: the mark
/// bit is set before the alloc bit, published with Release and read with
/// Acquire (DESIGN.md, "Known limits").
#[test]
fn allocation_races_the_cycle_start() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let arena_marking = Arc::new(AtomicU32::new(0));
        let allocated = Arc::new(AtomicU32::new(0));
        let marked = Arc::new(AtomicU32::new(0));
        let header = Arc::new(UnsafeCell::new(false));
        let record = barrier.register();

        let mutator = {
            let (barrier, arena_marking, allocated, marked, header) = (
                barrier.clone(),
                arena_marking.clone(),
                allocated.clone(),
                marked.clone(),
                header.clone(),
            );
            thread::spawn(move || {
                record.enter();
                barrier.phase_after_store();
                // gc_alloc: black during MARK, mark bit before alloc bit.
                if arena_marking.load(Ordering::Relaxed) == 1 {
                    marked.store(1, Ordering::Relaxed);
                }
                allocated.store(1, Ordering::Release);
                // SAFETY: the slot is ours until `exit` publishes it (model).
                header.with_mut(|written| unsafe { *written = true });
                record.exit();
            })
        };

        // gc_begin_mark, start_cycle, the allocation handshake.
        arena_marking.store(1, Ordering::SeqCst);
        barrier.start_cycle(EPOCH);
        barrier.wait_for_mutators();
        // roots::snapshot_and_count for the one slot.
        if allocated.load(Ordering::Acquire) == 1 && marked.load(Ordering::Relaxed) == 0 {
            // SAFETY: the protocol under test says this read is synchronised
            // with the header write; loom reports it if not.
            let written = header.with(|written| unsafe { *written });
            assert!(written, "the snapshot read an uninitialised header");
        }
        mutator.join().unwrap();
    });
}

/// `Weak::upgrade` as handle.rs runs it, on a modelled object: `handles`
/// (strong count plus `CONDEMNED`) and `mark`. True if it kept a handle.
pub(super) fn upgrade(
    barrier: &Barrier,
    record: &MutatorRecord,
    handles: &AtomicU64,
    mark: &AtomicU32,
) -> bool {
    const CONDEMNED: u64 = 1 << 63;
    record.enter();
    let mut current = handles.load(Ordering::Acquire);
    let kept = loop {
        if current & CONDEMNED != 0 {
            break false;
        }
        match handles.compare_exchange(current, current + 1, Ordering::Relaxed, Ordering::Acquire) {
            Ok(_) => {
                let phase = barrier.phase_after_store();
                let keep = if phase.marking() {
                    if try_mark(mark, EPOCH) {
                        barrier.shaded(3);
                    }
                    true
                } else if phase.phase == crate::gc::barrier::SWEEP {
                    is_marked(mark, EPOCH)
                } else {
                    true
                };
                fence(Ordering::Acquire);
                if !keep || handles.load(Ordering::Relaxed) & CONDEMNED != 0 {
                    handles.fetch_sub(1, Ordering::Release);
                    break false;
                }
                break true;
            }
            Err(seen) => current = seen,
        }
    };
    record.exit();
    kept
}

/// An object reachable only through a `Weak` (no strong handle, so no root)
/// while a cycle runs: the mutator upgrades it while the collector marks,
/// terminates, switches to SWEEP, waits, condemns it if unmarked and drops
/// its value. An upgrade that succeeds must read the value intact and never
/// race with the drop (loom's cell checker); one that fails must leave the
/// count as it was.
#[test]
fn weak_upgrade_races_condemn() {
    loom::model(|| {
        const CONDEMNED: u64 = 1 << 63;
        let barrier = Arc::new(Barrier::new());
        let handles = Arc::new(AtomicU64::new(0));
        let mark = Arc::new(AtomicU32::new(0));
        let value = Arc::new(UnsafeCell::new(7u32));
        let record = barrier.register();

        let mutator = {
            let (barrier, handles, mark, value) = (
                barrier.clone(),
                handles.clone(),
                mark.clone(),
                value.clone(),
            );
            thread::spawn(move || {
                if upgrade(&barrier, &record, &handles, &mark) {
                    // SAFETY: the model's claim: a kept handle means the
                    // value is not dropped, now or while we hold it.
                    let read = value.with(|v| unsafe { *v });
                    assert_eq!(read, 7, "upgrade returned a dropped value");
                    handles.fetch_sub(1, Ordering::Release);
                }
            })
        };

        // The collector: no roots (the count is 0 at tc), marking drains
        // whatever the upgrade shaded, then SWEEP and the second handshake.
        barrier.start_cycle(EPOCH);
        let stack = if handles.load(Ordering::Relaxed) > 0 && try_mark(&mark, EPOCH) {
            vec![3]
        } else {
            Vec::new()
        };
        mark_and_terminate(&barrier, stack);
        barrier.set_phase(crate::gc::barrier::PhaseWord {
            phase: crate::gc::barrier::SWEEP,
            epoch: EPOCH,
        });
        barrier.wait_for_mutators();
        if !is_marked(&mark, EPOCH) {
            handles.fetch_or(CONDEMNED, Ordering::Relaxed);
            fence(Ordering::Release);
            // SAFETY: the model's claim: no mutator reads a condemned value.
            value.with_mut(|v| unsafe { *v = 0 });
        }
        mutator.join().unwrap();
    });
}

/// `mark` with no edges to follow.
fn mark_and_terminate(barrier: &Barrier, stack: Vec<usize>) {
    mark(barrier, stack, |_, _| {});
}

/// `GcMutex::lock` and its guard's drop, on the real flag and `Parking`: two
/// threads each lock once and do a non-atomic increment of the value (loom's
/// cell checker fails if both hold it at once); a waiter that finds the flag
/// held parks. Both increments land and neither thread sleeps forever (loom
/// reports a deadlock on a lost wake-up). Checked by hand: without the
/// parking lock around the wake-up's `notify_all`, loom finds the lost
/// wake-up.
#[test]
fn mutex_lock_parks_and_wakes() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new());
        let flag = Arc::new(BorrowFlag::new());
        let parking = Arc::new(Parking::new());
        let value = Arc::new(UnsafeCell::new(0usize));
        let lock_and_add = {
            let (barrier, flag, parking, value) = (
                barrier.clone(),
                flag.clone(),
                parking.clone(),
                value.clone(),
            );
            move || {
                loop {
                    match flag.acquire_write(&barrier) {
                        Ok(_) => break,
                        Err(Conflict::Writing) => flag.park(&parking),
                        Err(Conflict::Reading) => unreachable!("no readers in this model"),
                    }
                }
                // SAFETY: we hold WRITING (acquire_write above).
                value.with_mut(|v| unsafe { *v += 1 });
                flag.release_write_shared(&parking);
            }
        };
        let other = thread::spawn(lock_and_add.clone());
        lock_and_add();
        other.join().unwrap();
        // SAFETY: both threads have released the flag and been joined.
        assert_eq!(value.with(|v| unsafe { *v }), 2, "an increment was lost");
    });
}
