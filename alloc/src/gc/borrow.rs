//! The borrow flag shared by `GcCell` and `GcMutex`: which of a mutator (shared
//! or exclusive) and the collector may read the value now; for `GcMutex`, also
//! whether a thread sleeps waiting for the exclusive holder.
//!
//! # States
//! One `AtomicUsize`:
//! - bit `usize::BITS - 1` `WRITING`: a mutator holds the value exclusively
//!   (`GcCell::borrow_mut`, `GcMutex::lock`);
//! - bit `usize::BITS - 2` `PARKED`: `GcMutex` only, set only with `WRITING`:
//!   a thread sleeps on the mutex's `Parking` until the holder lets go;
//! - bits `usize::BITS / 2 .. usize::BITS - 2`, the read id: the id of the
//!   last collector read of the value (`Barrier::begin_cell_read`). The read
//!   is in progress while `Barrier::reading` holds the same id; once the
//!   collector ends it (`end_cell_read` stores 0, the next read a fresh id)
//!   the id in the word is stale and means nothing. 0: never read, or
//!   cleared by a writer. Ids wrap after `MAX_READ_ID` reads: a stale id
//!   equal to an open read's only makes a writer wait for that read's end;
//! - the low half: how many shared mutator borrows are alive.
//!
//! `WRITING` excludes everything but `PARKED`; a read in progress excludes
//! `WRITING`; a collector read and readers coexist.
//!
//! # Transitions
//! - `0 | stale id -> WRITING`: a mutator, `acquire_write` (AcqRel CAS; it
//!   spins while the word's id is the collector's open read
//!   (`Barrier::cell_read_active`): the collector reads one value's handles,
//!   a bounded wait measured as a pause). `GcMutex::lock` always takes this
//!   path; it is the mutex's only locked instruction on the way in (the
//!   first lock after a collector read takes the word with its stale id by a
//!   second CAS, `acquire_write_contended`).
//! - `0 -> WRITING` without a locked instruction: `acquire_write_unshared`
//!   (`GcCell::borrow_mut`), a load and a plain store, only inside a barrier
//!   operation that read the phase OFF after its fence (see Orderings: no
//!   collector read can begin or be in progress then, and a `GcCell` has one
//!   mutator thread at a time, so nobody else writes the word meanwhile).
//!   A stale id does not count (no read is open while OFF). Any other
//!   phase, or a word with readers or `WRITING`, goes to `acquire_write`.
//! - `WRITING -> 0`: `release_write` (`GcCell`: a Release store; no one else
//!   writes a WRITING word of a cell). `WRITING [| PARKED] -> 0`:
//!   `release_write_shared` (`GcMutex`: a Release swap, which tells whether
//!   to wake sleepers).
//! - `WRITING -> WRITING | PARKED`: a `GcMutex` waiter, `park` (CAS under
//!   the mutex's parking lock, then it sleeps on its condition variable).
//! - `readers -> readers + 1` when not `WRITING`: `try_read` (CAS);
//!   `release_read` subtracts one.
//! - `x -> x with id` when not `WRITING`: `collector_try_read` (AcqRel CAS,
//!   the collector only), after `begin_cell_read` published the id in
//!   `Barrier::reading`. Ending the read writes `Barrier::reading`, not the
//!   word: one locked instruction per collector read instead of a CAS to set
//!   a bit and a `fetch_and` to clear it.
//!
//! # Orderings
//! - If a mutator's `acquire_write` CAS comes after `collector_try_read`'s,
//!   it reads the collector's CAS (Release, or a later RMW of its release
//!   sequence) with Acquire: the collector's `Barrier::start_cycle` happens
//!   before the borrow's phase load, which therefore sees MARK and shades
//!   (DESIGN.md, "Soundness"). If it comes before, the collector's CAS sees
//!   WRITING and skips the cell.
//! - The read id: `begin_cell_read` stores the id in `Barrier::reading`
//!   before the collector's CAS (Release) writes it into the word. A writer
//!   whose Acquire load of the word sees the id therefore reads, in
//!   `cell_read_active` (Acquire), that id or a later store: 0 from
//!   `end_cell_read` (Release, after the collector's reads of the value) or
//!   a later read's id (Release, after that end). Either way, unless it reads
//!   the id itself (and waits), the collector's reads happen before the
//!   writer's CAS and its writes. A writer that saw no id took the word
//!   before the collector's CAS, which then sees WRITING. Checked by
//!   `cell_move_races_counting_and_marking`, which fails when a writer
//!   ignores an open read or when `end_cell_read` stores Relaxed.
//! - `acquire_write_unshared`'s plain store: the caller entered a barrier
//!   operation (the odd `seq`, the store of a StoreLoad pair), fenced and read
//!   the phase OFF (`phase_after_store`, Acquire). Collector side: every
//!   `collector_try_read` of cycle e follows `start_cycle(e)` (MARK, fence)
//!   and `wait_for_mutators` (fence, Acquire loads of `seq`). If the
//!   mutator's fence is first in the SC order, the wait sees the odd `seq`
//!   and returns only after `exit` (Release), so the collector's CAS comes
//!   after the store and sees WRITING. If the collector's fence is first, the
//!   phase load reads MARK(e) or later, not OFF, so the fast path is not
//!   taken (unless cycle e finished first: its reads were released before
//!   `set_phase(OFF)`, which the Acquire phase load synchronises with, so
//!   the flag load sees them ended). Without the handshake (or the fence,
//!   or the OFF check) the collector could write its id between the load
//!   and the store, which would overwrite it: checked by
//!   `cell_move_races_counting_and_marking`, which fails without them.
//! - `release_write` / `release_write_shared` (Release) pair with the
//!   Acquire half of `collector_try_read`, `try_read` and the next
//!   `acquire_write` / `acquire_write_unshared` (a `GcMutex`'s next holder
//!   sees the value its last holder wrote).
//! - Parking: a waiter sets `PARKED` while holding `Parking::lock` and
//!   releases that lock only by sleeping on `Parking::unparked`; a holder's
//!   `release_write_shared` that sees `PARKED` takes the same lock before it
//!   notifies, so the wake cannot fall between the waiter's CAS and its sleep.
//!   A release that comes before the waiter's CAS makes the CAS fail (the
//!   word is no longer WRITING) and the waiter retries without sleeping.
//!
//! # Rejected alternatives
//! - `GcMutex` as a `std::sync::Mutex` plus this flag (the first version):
//!   two CASes per lock, on two cache lines the contending threads share.
//! - A waiter count beside the flag, so that unlock is a plain store: unlock
//!   must then load the count after its store (a StoreLoad, a full fence,
//!   which costs what the swap costs).
//! - A `COLLECTOR` bit set by a CAS and cleared by a `fetch_and` per read
//!   (until gc4): two locked instructions per cell per pass, a fifth of the
//!   samples of workload (b); the id makes the clear a store to one global
//!   word, paid for by the first writer after a read (a load of that word and
//!   a second CAS).
//! - Batching reads under one id (a store per batch): a writer would wait for
//!   the whole batch, and the collector would have to close the batch before
//!   every handshake (a writer waits inside a barrier operation).
//!
//! # Checked by
//! `alloc/src/gc/tests/loom_gc_barrier.rs`
//! (`cell_move_races_counting_and_marking`): the handle moved out of a cell
//! is marked, and the cell's contents are never read while written, with the
//! unshared fast path racing the start of a cycle;
//! (`mutex_lock_parks_and_wakes`): two threads lock one flag as `GcMutex`
//! does, one parks; mutual exclusion and no lost wake-up.

#![cfg_attr(
    loom,
    allow(dead_code, reason = "loom builds only the pieces its models use")
)]

use crate::gc::barrier::{Barrier, OFF, PhaseWord};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Condvar, Mutex};

const WRITING: usize = 1 << (usize::BITS - 1);
const PARKED: usize = 1 << (usize::BITS - 2);
/// Where the collector's read id starts in the word.
const READ_SHIFT: u32 = usize::BITS / 2;
/// The collector's read id (`Barrier::begin_cell_read`): bits
/// `READ_SHIFT..usize::BITS - 2`.
const READ_MASK: usize = (PARKED - 1) & !READERS;
/// The largest read id (ids run from 1; 0 means no id).
pub(crate) const MAX_READ_ID: usize = READ_MASK >> READ_SHIFT;
const READERS: usize = (1 << READ_SHIFT) - 1;

/// Where `GcMutex` waiters sleep while another thread holds the value.
#[derive(Debug, Default)]
pub(crate) struct Parking {
    lock: Mutex<()>,
    unparked: Condvar,
}

impl Parking {
    pub(crate) fn new() -> Parking {
        Parking {
            lock: Mutex::new(()),
            unparked: Condvar::new(),
        }
    }
}

/// How many times `park` re-reads the flag before it sleeps (none under
/// loom, whose `yield_now` would let the holder finish first every time).
#[inline]
fn spins_before_park() -> u32 {
    if crate::loom::IS_LOOM { 0 } else { 100 }
}

/// Why a borrow was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// A mutator holds the value exclusively.
    Writing,
    /// Mutators hold shared borrows.
    Reading,
}

/// The borrow flag of one `GcCell` or `GcMutex`.
#[derive(Debug, Default)]
pub(crate) struct BorrowFlag(AtomicUsize);

impl BorrowFlag {
    pub(crate) fn new() -> BorrowFlag {
        BorrowFlag(AtomicUsize::new(0))
    }

    /// Takes a shared mutator borrow.
    #[inline]
    pub(crate) fn try_read(&self) -> Result<(), Conflict> {
        let mut flag = self.0.load(Ordering::Acquire);
        loop {
            if flag & WRITING != 0 {
                return Err(Conflict::Writing);
            }
            if flag & READERS == READERS {
                // 2^62 live borrows: only reachable by leaking guards.
                return Err(Conflict::Reading);
            }
            match self
                .0
                .compare_exchange_weak(flag, flag + 1, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(seen) => flag = seen,
            }
        }
    }

    /// Ends a shared mutator borrow.
    #[inline]
    pub(crate) fn release_read(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    /// Takes the value exclusively for a mutator. Waits while the collector
    /// reads it; returns how long it waited (`None` on the fast path, which
    /// reads no clock).
    #[inline]
    pub(crate) fn acquire_write(
        &self,
        barrier: &Barrier,
    ) -> Result<Option<std::time::Duration>, Conflict> {
        match self
            .0
            .compare_exchange(0, WRITING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(None),
            Err(_) => self.acquire_write_contended(barrier),
        }
    }

    /// `acquire_write` after its first CAS failed: reports the conflict,
    /// waits out the collector's read, or takes a word that carries the id
    /// of a finished collector read.
    #[cold]
    fn acquire_write_contended(
        &self,
        barrier: &Barrier,
    ) -> Result<Option<std::time::Duration>, Conflict> {
        let mut waiting_since = None;
        let mut spins = 0u32;
        let mut flag = self.0.load(Ordering::Acquire);
        loop {
            if flag & WRITING != 0 {
                return Err(Conflict::Writing);
            }
            if flag & READERS != 0 {
                return Err(Conflict::Reading);
            }
            if Self::read_in_progress(flag, barrier) {
                // The collector is reading this value's handles, a short
                // bounded read. Spin a little, then yield: if the collector
                // thread lost its CPU mid-read, spinning would keep it off
                // longer.
                waiting_since.get_or_insert_with(std::time::Instant::now);
                spins += 1;
                if spins < 64 {
                    crate::loom::spin_loop();
                } else {
                    crate::loom::thread::yield_now();
                }
                flag = self.0.load(Ordering::Acquire);
                continue;
            }
            // The word is free, or carries the id of a read that ended
            // (`cell_read_active` synchronised with its end): take it.
            match self
                .0
                .compare_exchange(flag, WRITING, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(waiting_since.map(|since: std::time::Instant| since.elapsed())),
                Err(seen) => flag = seen,
            }
        }
    }

    /// `GcCell::borrow_mut`'s acquisition, called inside a barrier operation
    /// of the calling thread (after `MutatorRecord::enter`). Returns the phase
    /// the deletion barrier must act on and how long the borrow waited for
    /// the collector. While no cycle runs this is a load and a plain store
    /// (header, Transitions and Orderings); the caller must be the only
    /// mutator that can reach the cell (`GcCell` is not `Sync`).
    #[inline]
    pub(crate) fn acquire_write_unshared(
        &self,
        barrier: &Barrier,
    ) -> Result<(PhaseWord, Option<std::time::Duration>), Conflict> {
        let phase = barrier.phase_after_store();
        if phase.phase == OFF {
            // Acquire: the last collector read of this cell was released
            // before `set_phase(OFF)`, which the phase load synchronised
            // with; this pairs with our own previous `release_write` too.
            let flag = self.0.load(Ordering::Acquire);
            if flag & !READ_MASK == 0 {
                // No collector read can begin before our `exit` (the
                // handshake waits for it), and no other mutator reaches the
                // cell: nobody writes the word between the load and here.
                // A read id left in the word is stale: every read of the
                // last cycle ended before its `set_phase(OFF)`.
                self.0.store(WRITING, Ordering::Relaxed);
                return Ok((phase, None));
            }
            if flag & WRITING != 0 {
                return Err(Conflict::Writing);
            }
            if flag & READERS != 0 {
                return Err(Conflict::Reading);
            }
        }
        self.acquire_write_shared(barrier)
    }

    /// `GcMutex::lock`'s acquisition (and the slow path of
    /// `acquire_write_unshared`), inside a barrier operation: the CAS of
    /// `acquire_write`, then the fence and phase load of the StoreLoad pair.
    #[inline]
    pub(crate) fn acquire_write_shared(
        &self,
        barrier: &Barrier,
    ) -> Result<(PhaseWord, Option<std::time::Duration>), Conflict> {
        let waited = self.acquire_write(barrier)?;
        Ok((barrier.phase_after_store(), waited))
    }

    /// A `GcMutex` waiter's sleep: returns once the holder seen by an
    /// `acquire_write` that failed with `Writing` may have let go (or
    /// spuriously); the caller retries. Called outside barrier operations: a
    /// holder may run a whole collection (`collect()`) before it lets go.
    pub(crate) fn park(&self, parking: &Parking) {
        let mut spins = 0;
        while spins < spins_before_park() {
            if self.0.load(Ordering::Relaxed) & WRITING == 0 {
                return;
            }
            crate::loom::spin_loop();
            spins += 1;
        }
        let guard = parking.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut flag = self.0.load(Ordering::Relaxed);
        loop {
            if flag & WRITING == 0 {
                return;
            }
            if flag & PARKED != 0 {
                break;
            }
            // Relaxed: the flag's value is not read through this; the
            // parking lock orders the sleep against the holder's wake-up.
            match self.0.compare_exchange_weak(
                flag,
                flag | PARKED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => flag = seen,
            }
        }
        // PARKED is set under `parking.lock`: the holder's release sees it
        // and takes the lock to notify, which it can only do once we sleep.
        drop(
            parking
                .unparked
                .wait(guard)
                .unwrap_or_else(|e| e.into_inner()),
        );
    }

    /// Ends a `GcMutex`'s exclusive borrow and wakes the threads that sleep
    /// on `parking`, if any.
    #[inline]
    pub(crate) fn release_write_shared(&self, parking: &Parking) {
        // Release: publishes the writes made under the lock to the next
        // holder's Acquire CAS and to the collector's read.
        let flag = self.0.swap(0, Ordering::Release);
        debug_assert!(flag & WRITING != 0, "released a GcMutex not held");
        if flag & PARKED != 0 {
            // Taking the lock waits until the parked thread sleeps (it set
            // PARKED under this lock).
            let _guard = parking.lock.lock().unwrap_or_else(|e| e.into_inner());
            parking.unparked.notify_all();
        }
    }

    /// Ends an exclusive mutator borrow.
    #[inline]
    pub(crate) fn release_write(&self) {
        // While WRITING is set the word is exactly WRITING (it was taken by a
        // CAS from 0, and `try_read` and `collector_try_read` leave a WRITING
        // word alone), so a store clears it without a locked RMW.
        debug_assert_eq!(self.0.load(Ordering::Relaxed), WRITING);
        // Release: publishes the writes made under the borrow.
        self.0.store(0, Ordering::Release);
    }

    /// The collector's read (the collector only): false if a mutator holds
    /// the value exclusively. On true the caller reads the value and then
    /// calls `Barrier::end_cell_read`; the flag keeps the read's id, which
    /// the end makes stale, so the read costs one locked instruction.
    #[inline]
    pub(crate) fn collector_try_read(&self, barrier: &Barrier) -> bool {
        let id = barrier.begin_cell_read();
        let mut flag = self.0.load(Ordering::Acquire);
        loop {
            if flag & WRITING != 0 {
                barrier.end_cell_read();
                return false;
            }
            // AcqRel: Acquire for the last writer's release; Release so a
            // writer that reads this id sees `begin_cell_read`'s store (or a
            // later one) in `Barrier::cell_read_active`.
            match self.0.compare_exchange_weak(
                flag,
                (flag & !READ_MASK) | (id << READ_SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => flag = seen,
            }
        }
    }

    /// Whether a collector read of the value may be in progress: the word
    /// carries the id of the read the collector has open.
    #[inline]
    fn read_in_progress(flag: usize, barrier: &Barrier) -> bool {
        let id = (flag & READ_MASK) >> READ_SHIFT;
        id != 0 && barrier.cell_read_active(id)
    }
}
