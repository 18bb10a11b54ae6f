//! The barrier: how mutators tell a running collection about handles it could
//! otherwise miss, and the handshake that tells the collector they are done.
//!
//! # Purpose
//! While the collector counts and marks, mutators keep cloning handles and
//! moving them through `GcCell`/`GcMutex`. The barrier shades (marks and
//! queues) every object such an operation could hide from the collector; the
//! handshake lets mark termination wait until no shade is half done.
//!
//! # States
//! The phase word (`Barrier::phase`, one `AtomicUsize`):
//! - bits 0..2: the phase: `OFF` (0, no cycle), `MARK` (1, counting and
//!   marking; barriers on), `SWEEP` (2, destructors and freeing; barriers off);
//! - bits 2..: the cycle's number (its epoch), for diagnostics.
//!
//! Marks live in the spans' mark bitmaps (`SpanRef::mark`, an atomic
//! fetch-or that says whether the bit was newly set); sweeping clears them.
//!
//! Each mutator thread owns a `MutatorRecord` whose `seq` is odd while the
//! thread is inside a barrier operation and even outside; `depth` counts
//! nested operations (a destructor run by a last drop runs inside one).
//!
//! # Transitions
//! - phase `OFF -> MARK(e)`: collector, `start_cycle` (store + collector
//!   fence), after `heap_api::gc_begin_mark` and before the allocation
//!   handshake and the heap snapshot (`roots::snapshot_and_count`).
//! - phase `MARK(e) -> SWEEP(e) -> OFF`: collector, `set_phase` (SeqCst).
//! - `seq` even -> odd -> even: the owning mutator, `MutatorRecord::enter`
//!   (Release store, ordered before the phase load by the fence in
//!   `phase_after_store`) and `exit` (Release store).
//! - object unmarked -> marked: anyone, `Header::try_mark` (fetch-or on the
//!   span's mark bitmap); only the caller that set the bit pushes the object
//!   on the gray queue (`Barrier::shaded`), so each object is queued at most
//!   once per cycle.
//! - object live -> freed at count zero ("Last drop"): the mutator whose
//!   `Gc::drop` took the count from 1 to 0 (`fetch_sub`, no `Weak`, not
//!   condemned). It read the phase word (`phase_before_drop`, Acquire)
//!   before the decrement; after it, it enters a barrier operation (odd
//!   `seq`), fences and reads the phase again (`may_free`). Only if both
//!   reads are OFF with the same epoch does it drop the value and free the
//!   slot (`heap_api::gc_free`), inside the operation; otherwise the object
//!   stays, with no handle, and the sweep of this or the next cycle frees it
//!   exactly as any unreachable object.
//! - Dead slots: a last drop that frees (above) may keep the slot, still
//!   allocated in the arena, in its thread's cache (`heap_api::gc_keep_dead`)
//!   tagged with the phase word it read, after writing a dead header
//!   (`CONDEMNED`, no handle, `DEAD_VTABLE`). `Gc::new` reuses it
//!   (`gc_reuse_dead`) only inside its barrier operation, when the phase word
//!   it read after its fence equals the tag: then no cycle ran since the
//!   slot died and the next one waits for this operation. A slot the thread
//!   does not reuse before the word changes stays in the arena; the next
//!   snapshot finds a condemned object with no handle and lets the arena's
//!   sweep free it (roots.rs), as for a resurrected object whose last handle
//!   went. `Gc::new` that finds none takes a batch of fresh slots under one
//!   span lock, writes dead headers into all but one and keeps them under
//!   the word it read, in any phase (gc4): during MARK or SWEEP the arena
//!   allocates them as it allocates any object then (black, or white in a
//!   span this sweep already swept), so the running cycle neither reads nor
//!   frees them, and a later phase word abandons them as above.
//! - phase `MARK -> SWEEP`: after mark termination, followed by one more
//!   `wait_for_mutators`, so no barrier that saw MARK is still shading when
//!   sweeping starts (a late shade would leave a mark bit set in a swept
//!   span, read as "marked" by the next cycle).
//!
//! # Ownership
//! - `phase`: written by the collector thread only; read by everyone.
//! - `MutatorRecord::seq`: written by its thread only; read by the collector
//!   in `wait_for_mutators`. `MutatorRecord::depth`: its thread only. A
//!   thread reaches its record through a const thread-local pointer
//!   (`RECORD`), cleared before the record is given back at thread exit.
//! - The header of an object whose count reached zero, and a dead slot:
//!   written by the thread of the last drop inside its barrier operation
//!   (after `may_free`), read by the next snapshot after the handshake.
//! - `records`: the list grows under its mutex when a thread first uses a
//!   barrier; records are reused, never freed.
//! - `gray`: pushed by anyone, popped by the collector.
//!
//! # Orderings
//! Every StoreLoad pattern uses a fence on both sides (SeqCst loads and
//! stores alone do not order a store before a later load of another location
//! in the terms loom checks; loom models SC fences). On Linux the pair is
//! asymmetric: the mutator's side (`mutator_fence`) is a compiler fence and
//! the collector's (`collector_fence`) is `membarrier(PRIVATE_EXPEDITED)`,
//! which makes every running thread of the process execute a full barrier;
//! elsewhere, under valgrind and under loom both sides are `fence(SeqCst)`.
//! - Mutator side, `phase_after_store`: its operation stores first (the odd
//!   `seq` in `MutatorRecord::enter`, the handle count in `Gc::clone`, the
//!   borrow flag in `BorrowFlag::acquire_write`), then fences, then loads
//!   `phase`. Collector side, `start_cycle`: stores `phase`, fences, then
//!   reads handle counts (`roots::find_roots`) and flags
//!   (`BorrowFlag::collector_try_read`). Of the two fences one comes first in
//!   the SC order: either the mutator sees MARK and shades, or the collector
//!   sees the mutator's store (the count includes the clone; the flag shows
//!   the borrow). `GcCell::borrow_mut` while OFF
//!   (`BorrowFlag::acquire_write_unshared`) uses the odd `seq` itself as the
//!   store: it loads the phase after the fence and only then writes its flag
//!   with a plain store, which the handshake (`wait_for_mutators` before any
//!   collector read of a cell) orders before the collector's CAS (borrow.rs,
//!   Orderings). The phase load is Acquire for it.
//! - Termination, `wait_for_mutators`: fence, then load each `seq`. A
//!   mutator whose fence came earlier is seen inside (odd) and waited for;
//!   one whose fence came later sees every mark made before the wait.
//! - `MutatorRecord::exit` (Release) pairs with both Acquire loads of `seq`
//!   in `wait_for_mutators` (the first one may already read an `exit`):
//!   every gray push and every allocated header written inside the operation
//!   is visible to what follows the wait. `enter` stores with Release too:
//!   the wait's second load may read the next operation's odd `seq` instead
//!   of the `exit` (a plain store is no release sequence), and must still
//!   see the finished operation's writes.
//! - Allocation: `Gc::new` runs inside a barrier operation and fences
//!   (`phase_after_store`) before `gc_alloc` reads the arena's phase. The
//!   collector calls `heap_api::gc_begin_mark` (SeqCst), `start_cycle`
//!   (fence) and `wait_for_mutators`: an allocation either sees MARK and is
//!   born black (never traced, never swept this cycle), or is waited for, so
//!   the collector reads only initialised objects.
//! - Last drop, `may_free`: the odd `seq` is the store, the fence in
//!   `phase_after_store` and the phase load follow; the collector's side is
//!   `start_cycle` (store MARK, fence) then `wait_for_mutators`. If the
//!   mutator's fence comes first in the SC order, the collector sees `seq`
//!   odd and its snapshot waits until the free is done (the `exit` Release
//!   pairs with the wait's Acquire, so the snapshot sees the cleared alloc
//!   bit or the new object allocated there); if the collector's fence comes
//!   first, the mutator reads MARK and does not free. A cycle that began and
//!   ended between the decrement and the check changed the epoch, so the
//!   two reads differ and the mutator does not free what that cycle's sweep
//!   may have freed. `phase_before_drop`'s Acquire pairs with `set_phase`
//!   (SeqCst) to OFF: the finished cycle's reads of the object happen before
//!   the free (the Acquire fence after the last decrement gives the same).
//! - `Barrier::end_cell_read` (Release) pairs with the Acquire of
//!   `cell_read_active`: a borrow that waited out or skipped a collector
//!   read of its cell happens after that read (borrow.rs, Orderings); a
//!   borrow whose CAS reads the collector's CAS happens after `start_cycle`
//!   and sees MARK.
//!
//! # Rejected alternatives
//! - A global reader-writer lock taken by every clone: the brief forbids a
//!   global lock on clone, drop and deref, and it would stop every mutator.
//! - One global in-flight counter instead of per-thread `seq`: a contended
//!   cache line on every clone of every thread.
//! - An intrusive gray list through the object headers: a late push from a
//!   finished cycle could link an object twice; the segmented queue cannot.
//! - Epoch numbers in object headers as marks (the first version): they make
//!   late shades harmless, but the arena's sweep is driven by its mark
//!   bitmaps, so marks live there and the SWEEP handshake rules out late
//!   shades instead.
//! - Freeing at count zero without the barrier operation (as `Arc` does):
//!   the snapshot may be tracing the value, or the sweep freeing it.
//! - Marking a dying object (or flagging it) so the snapshot skips it and
//!   running its destructor outside the operation: the free must then clear
//!   a mark bit a racing snapshot may set, so the free would need a second
//!   handshake; running the destructor inside the operation needs none, at
//!   the price of a cycle's start waiting for destructors that began before
//!   it (`collect()` from such a destructor returns at once).
//! - Only the phase read after the decrement: a whole cycle may run between
//!   the decrement and the check, counting zero handles and freeing the
//!   object; the epoch in the word catches it.
//! - A Dijkstra insertion barrier on cell release: the handle counts already
//!   make every handle stored after an object was counted look like a root
//!   (DESIGN.md, "Why no insertion barrier").
//!
//! # Checked by
//! `alloc/src/gc/tests/loom_gc_barrier.rs`, with the real `Barrier`,
//! `MutatorRecord` and `BorrowFlag`:
//! - `clone_then_drop_holder_races_counting_and_termination` and
//!   `cell_move_races_counting_and_marking`: the object a mutator keeps is
//!   marked when the collector decides (nothing reachable is freed); the
//!   second borrows as `GcCell` does, without a CAS while OFF, and fails
//!   without the allocation handshake or the OFF check;
//! - `mutex_lock_parks_and_wakes`: `GcMutex`'s flag and parking (borrow.rs);
//! - `allocation_races_the_cycle_start`: the snapshot never reads an object
//!   header before its `Gc::new` wrote it (loom's cell race checker);
//! - `weak_upgrade_races_condemn`: a `Weak::upgrade` racing the SWEEP
//!   handshake never returns an object whose value is dropped.
//!
//! `alloc/src/gc/tests/loom_gc_last_drop.rs`:
//! - `last_drop_races_a_whole_cycle`: a last drop racing a whole cycle frees
//!   the object exactly once, never while the snapshot reads it (it fails
//!   without the epoch comparison or without the fence);
//! - `dead_slot_reuse_races_a_cycle`: a dead slot is never reused after the
//!   collector released it nor read by the snapshot while it is rewritten
//!   (it fails without the tag check, and found that `enter` needs Release).
//!
//! Each fails when its barrier, the fences or the handshake is removed.

#![cfg_attr(
    loom,
    allow(dead_code, reason = "loom builds only the pieces its models use")
)]

use crate::gc::borrow::MAX_READ_ID;
use crate::loom::sync::atomic::{AtomicUsize, Ordering, fence};
// Not an atomic: a compiler-only barrier, which loom does not model (under
// loom `asymmetric` is false and `fence` is used instead).
use crate::loom::sync::{Arc, Mutex};
use std::sync::atomic::compiler_fence;

/// No cycle is running; barriers are off.
pub(crate) const OFF: usize = 0;
/// Counting and marking; barriers are on.
pub(crate) const MARK: usize = 1;
/// Destructors and freeing; barriers are off.
pub(crate) const SWEEP: usize = 2;
const PHASE_MASK: usize = 0b11;
const EPOCH_SHIFT: u32 = 2;

/// A decoded phase word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PhaseWord {
    /// `OFF`, `MARK` or `SWEEP`.
    pub(crate) phase: usize,
    /// The current (or last) cycle's epoch.
    pub(crate) epoch: u32,
}

impl PhaseWord {
    fn decode(word: usize) -> PhaseWord {
        PhaseWord {
            phase: word & PHASE_MASK,
            epoch: (word >> EPOCH_SHIFT) as u32,
        }
    }

    fn encode(self) -> usize {
        ((self.epoch as usize) << EPOCH_SHIFT) | self.phase
    }

    /// Whether barriers must shade.
    #[inline]
    pub(crate) fn marking(self) -> bool {
        self.phase == MARK
    }

    /// The whole word, as the tag of a thread's dead slots (heap_api.rs,
    /// `gc_keep_dead`; header, "Dead slots").
    #[inline]
    pub(crate) fn tag(self) -> usize {
        self.encode()
    }
}

/// A mutator thread's handshake word.
#[derive(Debug, Default)]
pub(crate) struct MutatorRecord {
    /// Odd while the owning thread is inside a barrier operation.
    seq: AtomicUsize,
    /// How deep the owning thread is in nested barrier operations (a
    /// destructor run by a last drop, inside its operation, may clone,
    /// allocate and drop). Owner only; `seq` is odd while it is non-zero.
    depth: AtomicUsize,
    /// Whether a live thread owns this record.
    in_use: crate::loom::sync::atomic::AtomicBool,
}

impl MutatorRecord {
    /// Enters a barrier operation. Must be followed by `exit` on the same
    /// thread. Operations nest (a last drop's destructor runs inside one):
    /// only the outermost makes `seq` odd.
    #[inline]
    pub(crate) fn enter(&self) {
        // Only the owning thread writes `depth` and `seq`, so Relaxed loads
        // read its own last stores.
        let depth = self.depth.load(Ordering::Relaxed);
        self.depth.store(depth + 1, Ordering::Relaxed);
        if depth != 0 {
            return;
        }
        let seq = self.seq.load(Ordering::Relaxed);
        debug_assert!(seq % 2 == 0, "seq is odd outside every operation");
        // `Barrier::phase_after_store`'s fence orders this store before the
        // phase load (see Orderings). Release: `wait_for_mutators` may see
        // `seq` go from the odd value of one operation straight to the odd
        // value of the next one, skipping the `exit` in between; this store
        // then carries that exit's writes (found by the loom model
        // `dead_slot_reuse_races_a_cycle`; free on x86).
        self.seq.store(seq.wrapping_add(1), Ordering::Release);
    }

    /// Leaves a barrier operation.
    #[inline]
    pub(crate) fn exit(&self) {
        let depth = self.depth.load(Ordering::Relaxed) - 1;
        self.depth.store(depth, Ordering::Relaxed);
        if depth != 0 {
            return;
        }
        let seq = self.seq.load(Ordering::Relaxed);
        // Release: publishes the gray pushes made inside the operation (and
        // a last drop's frees) to `wait_for_mutators`' Acquire reload.
        self.seq.store(seq.wrapping_add(1), Ordering::Release);
    }
}

/// The shared gray queue: objects shaded by mutators, waiting to be traced by
/// the collector. Entries are header addresses.
#[cfg(not(loom))]
pub(crate) struct GrayQueue(crossbeam_deque::Injector<usize>);

#[cfg(not(loom))]
impl GrayQueue {
    fn new() -> GrayQueue {
        GrayQueue(crossbeam_deque::Injector::new())
    }

    fn push(&self, addr: usize) {
        self.0.push(addr);
    }

    /// Pops one entry (collector only).
    pub(crate) fn pop(&self) -> Option<usize> {
        loop {
            match self.0.steal() {
                crossbeam_deque::Steal::Success(addr) => return Some(addr),
                crossbeam_deque::Steal::Empty => return None,
                crossbeam_deque::Steal::Retry => crate::loom::spin_loop(),
            }
        }
    }
}

/// The shared gray queue (loom build: a locked vector loom can see).
#[cfg(loom)]
pub(crate) struct GrayQueue(Mutex<Vec<usize>>);

#[cfg(loom)]
impl GrayQueue {
    fn new() -> GrayQueue {
        GrayQueue(Mutex::new(Vec::new()))
    }

    fn push(&self, addr: usize) {
        self.0.lock().unwrap().push(addr);
    }

    /// Pops one entry (collector only).
    pub(crate) fn pop(&self) -> Option<usize> {
        self.0.lock().unwrap().pop()
    }
}

/// The phase word, the mutator records and the gray queue.
pub(crate) struct Barrier {
    phase: AtomicUsize,
    records: Mutex<Vec<Arc<MutatorRecord>>>,
    gray: GrayQueue,
    /// Objects pushed on `gray` by mutators, ever; mark termination compares
    /// it across a handshake.
    shades: AtomicUsize,
    /// Whether the collector's fences are process-wide (`membarrier`), so a
    /// mutator's half of a StoreLoad pair needs only a compiler fence.
    asymmetric: bool,
    /// The collector's cell reads, on a cache line of their own: the
    /// collector writes it twice per read, and every mutator operation loads
    /// `phase`.
    reads: CellReads,
}

/// The collector's cell-read state (`Barrier::begin_cell_read`).
#[derive(Debug, Default)]
#[repr(align(128))]
struct CellReads {
    /// The id of the collector's open cell read, 0 when none is open
    /// (`begin_cell_read`): a cell whose borrow flag carries it may be being
    /// read. Written by the collector (Release), read by a writer that finds
    /// an id in a flag (`cell_read_active`, Acquire).
    reading: AtomicUsize,
    /// The last read id handed out (collector only).
    read_seq: AtomicUsize,
    /// How deep the collector is in nested cell reads (collector only).
    read_depth: AtomicUsize,
}

impl Barrier {
    pub(crate) fn new() -> Barrier {
        Barrier {
            phase: AtomicUsize::new(
                PhaseWord {
                    phase: OFF,
                    epoch: 0,
                }
                .encode(),
            ),
            records: Mutex::new(Vec::new()),
            gray: GrayQueue::new(),
            shades: AtomicUsize::new(0),
            asymmetric: heavy_fence::register(),
            reads: CellReads::default(),
        }
    }

    /// Opens a collector read of a cell's value (the collector only): the id
    /// to leave in the cell's borrow flag (`BorrowFlag::collector_try_read`).
    /// Reads nest (a value may hold cells); the outermost one takes a fresh
    /// id and publishes it in `reads.reading` before the flag's CAS.
    #[inline]
    pub(crate) fn begin_cell_read(&self) -> usize {
        // Only the collector touches `read_depth` and `read_seq` (one cycle
        // at a time, handed over under the collector's mutex).
        let depth = self.reads.read_depth.load(Ordering::Relaxed);
        self.reads.read_depth.store(depth + 1, Ordering::Relaxed);
        if depth != 0 {
            return self.reads.reading.load(Ordering::Relaxed);
        }
        let last = self.reads.read_seq.load(Ordering::Relaxed);
        let id = if last >= MAX_READ_ID { 1 } else { last + 1 };
        self.reads.read_seq.store(id, Ordering::Relaxed);
        // Release: a writer that reads this id here (not the flag's) must
        // see the end of the read before it (`end_cell_read`'s store).
        self.reads.reading.store(id, Ordering::Release);
        id
    }

    /// Closes the read `begin_cell_read` opened: every id it left in a flag
    /// is stale from here, and a writer may take those cells.
    #[inline]
    pub(crate) fn end_cell_read(&self) {
        let depth = self.reads.read_depth.load(Ordering::Relaxed) - 1;
        self.reads.read_depth.store(depth, Ordering::Relaxed);
        if depth == 0 {
            // Release: the collector's reads of the values happen before a
            // writer's access that reads this store (`cell_read_active`).
            self.reads.reading.store(0, Ordering::Release);
        }
    }

    /// Whether the collector read whose id a borrow flag carries may still
    /// be open. Acquire: false means this load read `end_cell_read`'s store
    /// of that read, or a later store, which follows it: the read's accesses
    /// to the value happen before the caller's.
    #[inline]
    pub(crate) fn cell_read_active(&self, id: usize) -> bool {
        self.reads.reading.load(Ordering::Acquire) == id
    }

    /// The mutator's half of a StoreLoad pair: a compiler fence when the
    /// collector's half is a process-wide barrier, else a SeqCst fence.
    #[inline]
    fn mutator_fence(&self) {
        if self.asymmetric {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The collector's half of a StoreLoad pair: every mutator thread
    /// executes a full barrier (membarrier) or, without it, a SeqCst fence
    /// that pairs with the mutators' own.
    fn collector_fence(&self) {
        fence(Ordering::SeqCst);
        if self.asymmetric {
            heavy_fence::all_threads();
        }
    }

    /// Reads the phase word without a fence (assertions and diagnostics).
    #[inline]
    pub(crate) fn phase(&self) -> PhaseWord {
        PhaseWord::decode(self.phase.load(Ordering::Acquire))
    }

    /// Reads the phase word after a SeqCst fence: the load half of the
    /// mutator's StoreLoad pattern (see Orderings). The caller has already
    /// made its store (the odd `seq`, the handle count, the borrow flag).
    /// Acquire: a caller that reads OFF sees everything the last cycle did
    /// before `set_phase(OFF)` (`BorrowFlag::acquire_write_unshared` relies
    /// on it for the cell reads the collector released; a plain load on x86).
    #[inline]
    pub(crate) fn phase_after_store(&self) -> PhaseWord {
        self.mutator_fence();
        PhaseWord::decode(self.phase.load(Ordering::Acquire))
    }

    /// The phase word read before a `Gc` handle's decrement: the first half
    /// of the last-drop check (`may_free`). Acquire: pairs with the
    /// collector's SeqCst `set_phase` to OFF, so everything the last cycle
    /// did to the object happens before a free that follows.
    #[inline]
    pub(crate) fn phase_before_drop(&self) -> PhaseWord {
        PhaseWord::decode(self.phase.load(Ordering::Acquire))
    }

    /// Whether a drop that took an object's count to zero may drop and free
    /// it now, on this thread. Called inside a barrier operation (the odd
    /// `seq` is the store of the StoreLoad pair), with `before` from
    /// `phase_before_drop` read before the decrement. True only if no cycle
    /// ran or started between the two reads: then no collector pass read
    /// the count after it reached zero, and the next cycle's snapshot waits
    /// for this operation (header, "Last drop").
    #[inline]
    pub(crate) fn may_free(&self, before: PhaseWord) -> bool {
        before.phase == OFF && self.phase_after_store() == before
    }

    /// Starts cycle `epoch`: barriers on. The caller then waits for the
    /// mutators (`wait_for_mutators`), so every `Gc::new` that might have
    /// allocated white has finished initialising its object, and only then
    /// reads the heap. The fence here is the collector's half of the
    /// StoreLoad pattern.
    pub(crate) fn start_cycle(&self, epoch: u32) {
        debug_assert_eq!(self.phase().phase, OFF, "cycles do not overlap");
        self.set_phase(PhaseWord { phase: MARK, epoch });
        self.collector_fence();
    }

    /// Moves to `phase`, keeping the epoch (collector only).
    pub(crate) fn set_phase(&self, word: PhaseWord) {
        self.phase.store(word.encode(), Ordering::SeqCst);
    }

    /// Records that a mutator's barrier newly marked the object at `addr`:
    /// queues it for the collector to trace.
    #[inline]
    pub(crate) fn shaded(&self, addr: usize) {
        self.gray.push(addr);
        // SeqCst: read by `terminate` around a handshake.
        self.shades.fetch_add(1, Ordering::SeqCst);
    }

    /// How many objects mutators have shaded, ever.
    pub(crate) fn shades(&self) -> usize {
        self.shades.load(Ordering::SeqCst)
    }

    /// Mark termination: traces every gray object with `trace` (which must
    /// also trace everything it marks, to a fixpoint) until a handshake round
    /// ends with no new shade. Returns the number of handshake rounds.
    ///
    /// A barrier operation that began before the round's
    /// `wait_for_mutators` has finished its shades when the wait returns;
    /// one that begins after it can only shade objects already marked
    /// (DESIGN.md, "Termination"), which pushes nothing.
    pub(crate) fn terminate(&self, mut trace: impl FnMut(usize)) -> usize {
        let mut rounds = 0;
        loop {
            while let Some(addr) = self.gray.pop() {
                trace(addr);
            }
            let before = self.shades();
            self.wait_for_mutators();
            rounds += 1;
            match self.gray.pop() {
                Some(addr) => trace(addr),
                None if self.shades() == before => return rounds,
                None => {}
            }
        }
    }

    /// Drops entries left in the gray queue (collector only, before a cycle
    /// starts; there are none unless a barrier outlived its cycle).
    pub(crate) fn clear_gray(&self) -> usize {
        let mut stale = 0;
        while self.gray.pop().is_some() {
            stale += 1;
        }
        stale
    }

    /// Gives the calling thread a record, reusing one a finished thread left.
    pub(crate) fn register(&self) -> Arc<MutatorRecord> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for record in records.iter() {
            if record
                .in_use
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return record.clone();
            }
        }
        let record = Arc::new(MutatorRecord::default());
        record.in_use.store(true, Ordering::Relaxed);
        records.push(record.clone());
        record
    }

    /// Returns a record when its thread ends. Its `seq` is even: a thread
    /// cannot end inside a barrier operation.
    pub(crate) fn unregister(&self, record: &MutatorRecord) {
        record.in_use.store(false, Ordering::Release);
    }

    /// The handshake: returns once every mutator that was inside a barrier
    /// operation when this was called has left it (collector only).
    pub(crate) fn wait_for_mutators(&self) {
        let records: Vec<Arc<MutatorRecord>> = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // The collector's half of the handshake's StoreLoad pattern: a
        // mutator whose fence comes later sees every mark made before this.
        self.collector_fence();
        for record in records {
            // Acquire: an even value may be a finished operation's `exit`;
            // its writes (an allocation's header) must be visible after the
            // wait (checked by `allocation_races_the_cycle_start`).
            let seq = record.seq.load(Ordering::Acquire);
            if seq % 2 == 0 {
                continue;
            }
            let mut spins = 0u32;
            // Acquire: pairs with `exit`'s Release.
            while record.seq.load(Ordering::Acquire) == seq {
                spins += 1;
                if spins < 64 {
                    crate::loom::spin_loop();
                } else {
                    crate::loom::thread::yield_now();
                }
            }
        }
    }
}

/// Linux `membarrier(2)`: the collector's fence reaches every thread of the
/// process, so mutators' fences can be compiler-only (the asymmetric fence
/// of liburcu and Folly). Falls back to symmetric fences where the syscall
/// is missing (old kernels, valgrind) and always under loom.
mod heavy_fence {
    /// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (linux/membarrier.h).
    #[cfg(all(target_os = "linux", not(loom)))]
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    /// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED` (linux/membarrier.h).
    #[cfg(all(target_os = "linux", not(loom)))]
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    /// Registers the process for expedited membarriers; true if they work.
    pub(super) fn register() -> bool {
        #[cfg(all(target_os = "linux", not(loom)))]
        {
            // SAFETY: membarrier takes two integer arguments and touches no
            // memory of ours; failure is reported by the return value.
            let registered =
                unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0) } == 0;
            // Check the command itself works before relying on it.
            // SAFETY: as above.
            registered && unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0) } == 0
        }
        #[cfg(not(all(target_os = "linux", not(loom))))]
        {
            false
        }
    }

    /// Makes every running thread of the process execute a full barrier.
    pub(super) fn all_threads() {
        #[cfg(all(target_os = "linux", not(loom)))]
        {
            // SAFETY: as in `register`.
            let result = unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0) };
            // Registration succeeded, so this cannot fail (EINTR is not
            // possible for this command); a failure would break the
            // protocol, so stop rather than free live objects.
            if result != 0 {
                eprintln!("gort_alloc: membarrier failed after registration; aborting");
                std::process::abort();
            }
        }
    }
}

#[cfg(not(loom))]
mod global {
    use super::{Barrier, MutatorRecord};
    use std::cell::Cell;
    use std::sync::{Arc, LazyLock};

    /// The process's barrier.
    pub(crate) static BARRIER: LazyLock<Barrier> = LazyLock::new(Barrier::new);

    /// A thread's registration; returns the record when the thread ends.
    struct Local(Arc<MutatorRecord>);

    impl Drop for Local {
        fn drop(&mut self) {
            // From here on this thread's operations borrow a record each
            // (`with_barrier`): another thread may take this one.
            RECORD.set(std::ptr::null());
            BARRIER.unregister(&self.0);
        }
    }

    thread_local! {
        static LOCAL: Local = Local(BARRIER.register());
        /// `LOCAL`'s record while the thread owns it, else null: a
        /// thread-local with no destructor and a constant initialiser, so
        /// reading it is one load (`LOCAL` needs a state check per access).
        static RECORD: Cell<*const MutatorRecord> = const { Cell::new(std::ptr::null()) };
    }

    /// The calling thread's record, registering the thread on first use;
    /// `None` once its thread-locals are being destroyed.
    #[inline]
    fn record() -> Option<&'static MutatorRecord> {
        let mut ptr = RECORD.get();
        if ptr.is_null() {
            ptr = register_thread()?;
        }
        // SAFETY: `ptr` came from `Arc::as_ptr` of a record that
        // `Barrier::records` (inside the static `BARRIER`) keeps for the life
        // of the process (records are reused, never freed), and RECORD holds
        // it only while this thread owns the record (`Local::drop` clears it
        // before giving the record back).
        Some(unsafe { &*ptr })
    }

    #[cold]
    fn register_thread() -> Option<*const MutatorRecord> {
        LOCAL
            .try_with(|local| {
                let ptr = Arc::as_ptr(&local.0);
                RECORD.set(ptr);
                ptr
            })
            .ok()
    }

    /// Whether the calling thread is inside a barrier operation (a
    /// destructor run by a last drop is): a cycle cannot start until it
    /// leaves, so it must not wait for one.
    pub(crate) fn inside_operation() -> bool {
        record().is_some_and(|record| record.depth.load(super::Ordering::Relaxed) != 0)
    }

    /// Leaves the operation when dropped, also when `f` unwinds.
    struct Exit<'a>(&'a MutatorRecord);

    impl Drop for Exit<'_> {
        #[inline]
        fn drop(&mut self) {
            self.0.exit();
        }
    }

    #[inline(always)]
    fn run<R>(record: &MutatorRecord, barrier: &Barrier, f: impl FnOnce(&Barrier) -> R) -> R {
        record.enter();
        let _exit = Exit(record);
        f(barrier)
    }

    /// Runs `f` inside a barrier operation of the calling thread: between
    /// `enter` and `exit` of its record.
    #[inline]
    pub(crate) fn with_barrier<R>(f: impl FnOnce(&Barrier) -> R) -> R {
        let barrier: &Barrier = &BARRIER;
        match record() {
            Some(record) => run(record, barrier, f),
            // The thread's record is gone (this runs from another
            // thread-local's destructor): borrow a record for this one
            // operation.
            None => {
                let record = barrier.register();
                let value = run(&record, barrier, f);
                barrier.unregister(&record);
                value
            }
        }
    }
}

#[cfg(not(loom))]
pub(crate) use global::{BARRIER, inside_operation, with_barrier};
