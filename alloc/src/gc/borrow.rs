//! The borrow flag shared by `GcCell` and `GcMutex`: which of a mutator (shared
//! or exclusive) and the collector may read the value now.
//!
//! # States
//! One `AtomicUsize`:
//! - bit `usize::BITS - 1` `WRITING`: a mutator holds the value exclusively
//!   (`GcCell::borrow_mut`, `GcMutex::lock`);
//! - bit `usize::BITS - 2` `COLLECTOR`: the collector (or a barrier tracing a
//!   nested cell) is reading the value's handles;
//! - the low bits: how many shared mutator borrows are alive.
//!
//! `WRITING` excludes everything else; `COLLECTOR` and readers coexist.
//!
//! # Transitions
//! - `0 | COLLECTOR -> WRITING`: the mutator, `acquire_write` (AcqRel CAS; it
//!   spins while `COLLECTOR` is set: the collector reads one value's handles,
//!   a bounded wait measured as a pause). `WRITING -> 0`: `release_write`
//!   (a Release store: no one else writes a WRITING word).
//! - `readers -> readers + 1` when not `WRITING`: `try_read` (CAS);
//!   `release_read` subtracts one.
//! - `x -> x | COLLECTOR` when not `WRITING`: `collector_try_read` (AcqRel
//!   CAS); `collector_release` clears it.
//!
//! # Orderings
//! - All flag changes are RMWs on one word, so they are totally ordered. If a
//!   mutator's `acquire_write` CAS comes after `collector_try_read`'s, it
//!   reads `collector_release`'s Release write (or a later one in its release
//!   sequence) with Acquire: the collector's `Barrier::start_cycle` happens
//!   before the borrow's phase load, which therefore sees MARK and shades
//!   (DESIGN.md, "Soundness"). If it comes before, the collector's CAS sees
//!   WRITING and skips the cell.
//! - `release_write` (Release) pairs with the Acquire half of
//!   `collector_try_read` and `try_read`: the value written under the borrow
//!   is what they read.
//!
//! # Checked by
//! `alloc/src/gc/tests/loom_gc_barrier.rs`
//! (`cell_move_races_counting_and_marking`): the handle moved out of a cell
//! is marked, and the cell's contents are never read while written.

#![cfg_attr(
    loom,
    allow(dead_code, reason = "loom builds only the pieces its models use")
)]

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

const WRITING: usize = 1 << (usize::BITS - 1);
const COLLECTOR: usize = 1 << (usize::BITS - 2);
const READERS: usize = COLLECTOR - 1;

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
    pub(crate) fn release_read(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    /// Takes the value exclusively for a mutator. Waits while the collector
    /// reads it; returns how long it waited (`None` on the fast path, which
    /// reads no clock).
    pub(crate) fn acquire_write(&self) -> Result<Option<std::time::Duration>, Conflict> {
        let mut waiting_since = None;
        let mut spins = 0u32;
        loop {
            match self
                .0
                .compare_exchange(0, WRITING, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(waiting_since.map(|since: std::time::Instant| since.elapsed())),
                Err(flag) if flag & WRITING != 0 => return Err(Conflict::Writing),
                Err(flag) if flag & READERS != 0 => return Err(Conflict::Reading),
                Err(_) => {
                    // Only COLLECTOR is set: the collector is reading this
                    // value's handles, a short bounded read. Spin a little,
                    // then yield: if the collector thread lost its CPU
                    // mid-read, spinning would keep it off longer.
                    waiting_since.get_or_insert_with(std::time::Instant::now);
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

    /// Ends an exclusive mutator borrow.
    pub(crate) fn release_write(&self) {
        // While WRITING is set the word is exactly WRITING (it was taken by a
        // CAS from 0, and `try_read` and `collector_try_read` leave a WRITING
        // word alone), so a store clears it without a locked RMW.
        debug_assert_eq!(self.0.load(Ordering::Relaxed), WRITING);
        // Release: publishes the writes made under the borrow.
        self.0.store(0, Ordering::Release);
    }

    /// The collector's read: false if a mutator holds the value exclusively.
    pub(crate) fn collector_try_read(&self) -> bool {
        let mut flag = self.0.load(Ordering::Acquire);
        loop {
            if flag & WRITING != 0 {
                return false;
            }
            debug_assert!(flag & COLLECTOR == 0, "one collector read at a time");
            match self.0.compare_exchange_weak(
                flag,
                flag | COLLECTOR,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => flag = seen,
            }
        }
    }

    /// Ends the collector's read.
    pub(crate) fn collector_release(&self) {
        self.0.fetch_and(!COLLECTOR, Ordering::Release);
    }
}
