//! The P status handshake: who may run a P while its M is inside a task poll.
//!
//! # Purpose
//! A future can block its thread (a slow syscall, a CPU loop, a mutex held
//! too long). Go takes the P away from such an M (`retake`/`handoffp`) so the
//! tasks queued behind it run on another M. This file decides that takeover:
//! each M has a `PSlot` where it parks its P for the length of a poll, and
//! sysmon may take the P from there, so that exactly one of them ends up
//! holding it and two Ms never run one P. The owner M does this on every
//! poll, so its side uses no locked instruction: it writes with plain
//! stores, and the rare retake pays for both sides with a process-wide
//! barrier (an asymmetric Dekker handshake).
//!
//! # States
//! Two words per slot, each with one writer.
//!
//! `word` (the owner M's; `AtomicU64`):
//! - bits 0..3: the status (Go's `_Pidle`, `_Prunning`, `_Psyscall`, plus
//!   `POLLING` for "inside a task poll", which Go does not need because it can
//!   preempt a goroutine asynchronously and a future cannot be interrupted):
//!   - `IDLE` (0): not inside a poll, or inside one whose P sysmon took; the
//!     M does not touch the cell.
//!   - `RUNNING` (1): the owner M is using the parked P for a moment
//!     (`borrow`, a wake from inside the poll). Sysmon never wins here.
//!   - `POLLING` (2): the owner M is inside a task poll; the P is parked in
//!     the cell and sysmon may take it.
//!   - `SYSCALL` (3): the owner M is inside `block_in_place` (Go's
//!     `entersyscall`); as `POLLING`, with a shorter handoff threshold.
//! - bits 3..64: `pollseq`, bumped by every `enter`. Sysmon compares whole
//!   words across its ticks: an unchanged word means "the same poll, still
//!   running" (Go compares `schedtick`/`syscalltick` the same way), so no
//!   clock is read on the hot path.
//!
//! `taken` (sysmon's; `AtomicU64`): the `pollseq` bits of the poll sysmon
//! last tried to retake, and in bits 0..3 how far it got:
//! - `CLAIM` (1): sysmon announced the retake and has not decided yet;
//! - `WON` (2): sysmon took the P out of the cell;
//! - `LOST` (3): sysmon saw the owner move on and left the P alone.
//!
//! A `taken` whose `pollseq` differs from the current poll's means nothing
//! to that poll (0, "never claimed", has `pollseq` 0, which no poll has).
//!
//! # Transitions
//! Owner M (plain stores; `handshake` = compiler fence, then load `taken`):
//! - `IDLE -> POLLING(seq+1)`: `enter`: the P into the cell, then store.
//! - `POLLING -> IDLE`: `exit`: store, handshake; the P back from the cell
//!   unless `taken` says `WON` for this poll.
//! - `POLLING|SYSCALL -> RUNNING -> same`: `borrow`: store, handshake, use
//!   the cell, restoring store.
//! - `POLLING <-> SYSCALL`: `enter_syscall` / `exit_syscall`: store,
//!   handshake.
//! - any -> `IDLE`: whenever a handshake reads `WON` for this poll: the P is
//!   gone (Go's "P was retaken"); the M never touches the cell again during
//!   this poll.
//!
//! A handshake that reads `CLAIM` for this poll waits (spins, then yields)
//! until sysmon stores its verdict: sysmon is inside `retake` between its
//! `CLAIM` and verdict stores, a stretch that waits for no one (the
//! membarrier syscall, a load, the cell's take), so the wait is short
//! unless the OS deschedules sysmon there, and it happens only when a
//! retake races the owner, at most once per sysmon tick.
//!
//! Sysmon, `retake(seen)`, for a `seen` word that was `POLLING`/`SYSCALL`
//! one tick earlier: store `CLAIM`, heavy fence, load `word`; equal to
//! `seen`: take the P from the cell and store `WON`; else store `LOST`.
//!
//! # Ownership
//! - `word`, `task_id`: written by the owner M only (its thread);
//!   read by sysmon and schedtrace.
//! - `taken`: written by sysmon only; read by the owner M's handshakes.
//! - `cell` (the parked `Box<P>`): the owner M's, except from the moment
//!   sysmon's `retake` loads a `word` equal to `seen` until the P is handed
//!   off (the cell is then empty). The M's handshake before every use of the
//!   cell (`borrow`, `exit`) sees that retake (Orderings), and the M's next
//!   `enter` follows a handshake that read `WON`, after sysmon's take.
//! - The slot belongs to one M (it lives in `MInfo`), not to a P: after a
//!   retake the blocked M may still store into its word, and the P's new M
//!   parks it in its own slot, so the two never write one word.
//!
//! # Orderings
//! The handshake is Dekker's pattern: the owner stores `word` then loads
//! `taken`; sysmon stores `taken` then loads `word`. Each side needs a
//! StoreLoad barrier between its store and its load. With membarrier
//! (membarrier.rs) the owner's is `compiler_fence(SeqCst)` and sysmon's is
//! `fence(SeqCst)` plus `membarrier(PRIVATE_EXPEDITED)`, which makes the
//! owner's thread (if running) execute a full barrier at some point of its
//! program while the call lasts (a thread not running passed through a
//! context switch, a barrier too). Before the owner's store: its load comes
//! later and reads `CLAIM`. After its load: its store is visible when the
//! call returns and sysmon's load reads it. In between (the compiler fence
//! keeps the store and the load on either side of it): a fence pair.
//! Without membarrier (`PSlot::asymmetric` false: old kernel, seccomp; and
//! under loom) both sides use `fence(SeqCst)`, one of which comes first in
//! the SC order. Either way:
//! - either the owner's load reads `CLAIM` (or the verdict after it), and
//!   it waits for the verdict before it touches the cell;
//! - or sysmon's load reads the owner's store (`RUNNING`, `IDLE`, or a new
//!   status), which is not `seen`, and sysmon loses.
//!
//! Both may happen (each sees the other): sysmon's verdict decides, and the
//! owner waits for it. Neither missing the other is what the barriers rule
//! out.
//!
//! Data, pair by pair:
//! - The owner's stores of `POLLING`/`SYSCALL` (`enter`, `borrow`'s restore,
//!   `enter_syscall`, `exit_syscall`) are Release and pair with `retake`'s
//!   Acquire load of `word`: a winning sysmon sees the P written into the
//!   cell and every push made on it inside the poll. (Release is a plain
//!   store on x86: still no locked instruction on the owner's side.)
//! - `retake`'s `WON` store is Release and pairs with the Acquire load of
//!   `taken` in `gone`: the owner's next `enter` writes the cell after
//!   sysmon's take. `CLAIM` and `LOST` carry no data (Relaxed).
//! - `task_id` is Relaxed, published by `enter`'s Release store.
//!
//! # Rejected alternatives
//! - The previous protocol (until this file's rewrite): one word per P that
//!   both sides CAS. Correct, but a CAS on every poll cost +27% instructions
//!   on `yield_many` and +7-18% wall clock on `chained_spawn`
//!   (docs/BENCHMARKS.md). Where membarrier is missing the fallback is not
//!   that CAS protocol but this handshake with symmetric fences: one
//!   `mfence`-class instruction per poll, like the CAS it replaces, and one
//!   protocol for loom to check instead of two.
//! - One word per P shared by every M that runs it: after a retake the
//!   blocked M's late plain stores would overwrite the new M's word. A CAS
//!   is what kept them out; per-M slots do it for free.
//! - The owner deciding conflicts (e.g. "the owner loses whenever it sees
//!   `CLAIM`"): sysmon, seeing `IDLE`, cannot tell whether the owner saw its
//!   claim, so one side must publish a verdict; sysmon does, as it is never
//!   on a hot path.
//! - Deferring the pushes of a poll to an M-local buffer flushed at `exit`
//!   (as a self-yield is: the poll returns the task, m.rs): `borrow` would
//!   need no handshake, but a task spawned by a long poll would be
//!   invisible to the other Ms (no steal, no handoff by sysmon since
//!   `work_waits` sees no work) until the poll returns; the handshake costs
//!   two stores and a load.
//! - Keeping the P in the slot's cell for as long as the M holds it (not
//!   only during polls), so that a poll moves nothing: tried; the
//!   `RefCell`-style guard it needs between polls cost as many instructions
//!   as the two moves it saved (yield_many 95.8 M vs 95.3 M, callgrind).
//! - A mutex per P taken for the whole poll: sysmon could not take the P
//!   while the poll holds it; a `try_lock` for it is a CAS.
//! - Timestamping every poll (`Instant::now()` twice per poll): ~40 ns per
//!   poll; comparing `pollseq` across sysmon ticks costs nothing to the M.
//!
//! # Checked by
//! `src/tests/loom_handoff.rs`: an M polling (waking tasks onto its parked
//! P, or inside `block_in_place`) while sysmon retakes its P and hands it to
//! another M: the P's holder count never exceeds one, exactly one party
//! ends up with the P, and every woken task runs exactly once. Loom cannot
//! model membarrier, so the models run the symmetric `fence(SeqCst)` pair,
//! which is what membarrier plus the compiler fence provide; deleting
//! either side's fence fails the models (the comment there says how this was
//! tried). The real asymmetric pair is exercised on hardware by
//! `tests::stress_retake_against_back_to_back_polls` (below), which failed
//! with the membarrier call removed.

// Not an atomic: a compiler-only barrier, which loom does not model (loom
// builds are symmetric and use the shim's `fence` instead).
use std::sync::atomic::compiler_fence;

use gort_netpoll::loom::cell::UnsafeCell;
use gort_netpoll::loom::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use gort_netpoll::loom::sync::atomic::{AtomicU64, fence};

use crate::membarrier;

/// Not inside a poll, or the P is gone.
pub(crate) const IDLE: u64 = 0;
/// The owner M is borrowing the parked P (a wake from inside a poll).
pub(crate) const RUNNING: u64 = 1;
/// The owner M is inside a task poll; sysmon may take the P.
pub(crate) const POLLING: u64 = 2;
/// The owner M is inside `block_in_place`; sysmon may take the P.
pub(crate) const SYSCALL: u64 = 3;

/// `taken`: sysmon announced a retake of this poll and has not decided.
const CLAIM: u64 = 1;
/// `taken`: sysmon took the P of this poll.
const WON: u64 = 2;
/// `taken`: sysmon gave up this retake (the owner had moved on).
const LOST: u64 = 3;

const STATUS_BITS: u32 = 3;
const STATUS_MASK: u64 = (1 << STATUS_BITS) - 1;

/// Spins of a handshake waiting for sysmon's verdict before it yields the
/// thread instead (sysmon may have been descheduled mid-`retake`).
const VERDICT_SPINS: u32 = 64;

/// The status bits of a word.
pub(crate) fn status(word: u64) -> u64 {
    word & STATUS_MASK
}

/// The `pollseq` of a word (or of `taken`), kept in place.
fn seq_bits(word: u64) -> u64 {
    word & !STATUS_MASK
}

fn with_status(word: u64, status: u64) -> u64 {
    seq_bits(word) | status
}

/// The poll in progress (the `POLLING` word its `enter` stored): what the
/// owner M's other operations compare the slot against. `PSlot::current`
/// gives it back, so the M need not keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PollToken(u64);

/// One M's status word, sysmon's retake word and the parking cell.
///
/// Aligned to 128 bytes (two cache lines, the adjacent-line prefetch unit)
/// so that each slot has its lines to itself: the owner M writes its slot on
/// every poll, and unpadded slots of two Ms shared a line, which bounced
/// between the two Ms on every poll (yield_many 1.36x tokio).
#[repr(align(128))]
pub(crate) struct PSlot<P> {
    /// The owner M's word (States).
    word: AtomicU64,
    /// Sysmon's word (States).
    taken: AtomicU64,
    cell: UnsafeCell<Option<P>>,
    /// Task being polled (diagnostics).
    task_id: AtomicU64,
    /// Whether sysmon's barrier is membarrier, so the owner's is a compiler
    /// fence (Orderings). Fixed at creation.
    asymmetric: bool,
}

// SAFETY: the cell is only touched by the single party the words grant it
// to (Ownership, above); `P: Send` lets that party be any thread.
unsafe impl<P: Send> Sync for PSlot<P> {}

impl<P> PSlot<P> {
    /// A slot whose handshake uses membarrier if this process has it
    /// (`membarrier::available`, decided once per process).
    pub(crate) fn new() -> PSlot<P> {
        PSlot::with_handshake(membarrier::available())
    }

    /// A slot with the asymmetric handshake (`true`, if this process has
    /// membarrier) or the symmetric one; loom builds are always symmetric.
    pub(crate) fn with_handshake(asymmetric: bool) -> PSlot<P> {
        PSlot {
            word: AtomicU64::new(IDLE),
            taken: AtomicU64::new(0),
            cell: UnsafeCell::new(None),
            task_id: AtomicU64::new(0),
            // `available` registers the process: `retake` relies on it.
            asymmetric: asymmetric && membarrier::available(),
        }
    }

    /// The current word (racy snapshot for sysmon and schedtrace).
    pub(crate) fn load(&self) -> u64 {
        // Acquire: pairs with the owner's Release stores (Orderings).
        self.word.load(Acquire)
    }

    /// Owner M: the poll in progress and not known to be retaken (the word
    /// is `POLLING` or `SYSCALL`), read from the word this thread last
    /// stored.
    #[inline]
    pub(crate) fn current(&self) -> Option<PollToken> {
        // Relaxed: only this thread writes `word`.
        let word = self.word.load(Relaxed);
        matches!(status(word), POLLING | SYSCALL).then_some(PollToken(with_status(word, POLLING)))
    }

    /// Diagnostics of the last `enter`: the task id.
    pub(crate) fn last_task(&self) -> u64 {
        self.task_id.load(Relaxed)
    }

    /// Owner M, before a task poll: park `p` here and let sysmon see it.
    pub(crate) fn enter(&self, p: P, task_id: u64) -> PollToken {
        // Relaxed: only this thread writes `word`.
        let prev = self.word.load(Relaxed);
        // The M's loop calls `enter` once per poll and `exit` after it (m.rs,
        // syscall.rs); the slot is this M's alone, so no other M can break it.
        debug_assert_eq!(status(prev), IDLE, "gort: PSlot::enter inside a poll");
        // SAFETY: the word is IDLE: the previous poll ended with `exit` (the
        // P taken back) or with a handshake that read WON after sysmon's take
        // (Ownership), so the cell is empty and ours. Sysmon reads it only
        // after loading a POLLING/SYSCALL word, which the store below
        // publishes. `write`: the old value is `None`, nothing to drop.
        self.cell.with_mut(|c| unsafe { c.write(Some(p)) });
        self.task_id.store(task_id, Relaxed);
        let word = with_status(prev.wrapping_add(1 << STATUS_BITS), POLLING);
        // Release: pairs with `retake`'s Acquire load (the cell, diagnostics).
        self.word.store(word, Release);
        PollToken(word)
    }

    /// Owner M, after the poll: the P back, or `None` when sysmon took it.
    #[inline]
    pub(crate) fn exit(&self, token: PollToken) -> Option<P> {
        self.word.store(with_status(token.0, IDLE), Relaxed);
        if self.handshake(token) {
            return None;
        }
        // SAFETY: our IDLE store came before a handshake that found no retake
        // of this poll: sysmon will not take the cell (Orderings).
        let p = self.cell.with_mut(|c| unsafe { (*c).take() });
        Some(p.expect("gort: PSlot::exit found no P in the cell"))
    }

    /// Owner M, after the poll: `exit` of the poll in progress (`current`),
    /// or `None` when the P is gone (taken by sysmon during the poll or
    /// during a `block_in_place` that replaced the token).
    #[inline]
    pub(crate) fn exit_current(&self) -> Option<P> {
        self.current().and_then(|token| self.exit(token))
    }

    /// Owner M, inside the poll: run `f(p, arg)` on the P parked for the
    /// poll in progress (the word is `POLLING` or `SYSCALL`). `Err(arg)`
    /// (the caller then uses the global queue) when no poll is in progress
    /// or sysmon took its P. The path of every wake and spawn made by a
    /// running task: one load of the word, no token to compare (the word
    /// is the poll's own; a retake shows in `taken`).
    #[inline]
    pub(crate) fn borrow<T, R>(&self, arg: T, f: impl FnOnce(&mut P, T) -> R) -> Result<R, T> {
        // Relaxed: only this thread writes `word`.
        let cur = self.word.load(Relaxed);
        if !matches!(status(cur), POLLING | SYSCALL) {
            return Err(arg);
        }
        self.word.store(with_status(cur, RUNNING), Relaxed);
        if self.handshake(PollToken(with_status(cur, POLLING))) {
            return Err(arg);
        }
        // SAFETY: our RUNNING store came before a handshake that found no
        // retake of this poll: sysmon will not take the cell until it loads
        // the restoring store below (Orderings).
        let r = self.cell.with_mut(|c| unsafe {
            f((*c).as_mut().expect("gort: PSlot::borrow found no P"), arg)
        });
        // Release: pairs with `retake`'s Acquire (the pushes f made).
        self.word.store(cur, Release);
        Ok(r)
    }

    /// Owner M, `block_in_place` begins (Go's `entersyscall`). False when the
    /// P is already gone.
    pub(crate) fn enter_syscall(&self, token: PollToken) -> bool {
        if self.word.load(Relaxed) != token.0 {
            return false;
        }
        // Release: pairs with `retake`'s Acquire, as `enter`'s.
        self.word.store(with_status(token.0, SYSCALL), Release);
        !self.handshake(token)
    }

    /// Owner M, `block_in_place` ends (Go's `exitsyscallfast`): true when the
    /// P is still ours and the slot is `POLLING` again.
    pub(crate) fn exit_syscall(&self, token: PollToken) -> bool {
        if self.word.load(Relaxed) != with_status(token.0, SYSCALL) {
            return false;
        }
        // Release: pairs with `retake`'s Acquire, as `enter`'s.
        self.word.store(token.0, Release);
        !self.handshake(token)
    }

    /// The owner's half of the Dekker pair, after its store to `word`: true
    /// (and the word set to `IDLE`) when sysmon took the P of this poll.
    #[inline(always)]
    fn handshake(&self, token: PollToken) -> bool {
        if !self.asymmetric {
            fence(SeqCst);
        }
        // With membarrier, sysmon's call supplies the hardware barrier and
        // this only keeps the compiler from moving the load above the store.
        compiler_fence(SeqCst);
        if !self.gone(token) {
            return false;
        }
        self.word.store(with_status(token.0, IDLE), Relaxed);
        true
    }

    /// Reads `taken` for this poll, waiting out an undecided `CLAIM`.
    #[inline(always)]
    fn gone(&self, token: PollToken) -> bool {
        // Acquire: pairs with `retake`'s Release WON store.
        let taken = self.taken.load(Acquire);
        if seq_bits(taken) != seq_bits(token.0) {
            return false;
        }
        self.verdict(taken)
    }

    /// Slow path of `gone`: sysmon has claimed this poll.
    #[cold]
    fn verdict(&self, mut taken: u64) -> bool {
        let mut spins = 0u32;
        while status(taken) == CLAIM {
            spins += 1;
            if spins < VERDICT_SPINS {
                gort_netpoll::loom::spin_loop();
            } else {
                gort_netpoll::loom::thread::yield_now();
            }
            // Acquire: as in `gone`.
            taken = self.taken.load(Acquire);
        }
        status(taken) == WON
    }

    /// Sysmon: take the P if the word is still `seen` (the same poll or
    /// syscall it observed on an earlier tick). The caller must hand it off.
    pub(crate) fn retake(&self, seen: u64) -> Option<P> {
        let s = status(seen);
        if s != POLLING && s != SYSCALL {
            return None;
        }
        let seq = seq_bits(seen);
        // Relaxed: sysmon reads its own last store.
        if self.taken.load(Relaxed) == seq | WON {
            return None; // taken on an earlier tick; the M is still blocked
        }
        // Relaxed: the barrier below orders it before the load of `word`.
        self.taken.store(seq | CLAIM, Relaxed);
        fence(SeqCst);
        if self.asymmetric {
            membarrier::all_threads();
        }
        // Acquire: pairs with the owner's Release stores of POLLING/SYSCALL.
        if self.word.load(Acquire) != seen {
            // Relaxed: sysmon did not touch the cell; the owner needs no data.
            self.taken.store(seq | LOST, Relaxed);
            return None;
        }
        // SAFETY: `word` still reads `seen` after our CLAIM and barrier: the
        // owner's next handshake sees the claim and waits for our verdict
        // before touching the cell (Ownership, Orderings).
        let p = self.cell.with_mut(|c| unsafe { (*c).take() });
        let p = p.expect("gort: retake found no P in a polling slot");
        // Release: pairs with `gone`'s Acquire (the cell is empty again).
        self.taken.store(seq | WON, Release);
        Some(p)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn both() -> [PSlot<u32>; 2] {
        [PSlot::with_handshake(false), PSlot::with_handshake(true)]
    }

    #[test]
    fn exit_returns_the_p_when_not_retaken() {
        for slot in both() {
            let t = slot.enter(7u32, 1);
            assert_eq!(slot.borrow(1, |p, n| *p + n), Ok(8));
            assert_eq!(status(slot.load()), POLLING, "borrow restores the word");
            assert_eq!(slot.exit(t), Some(7));
            assert_eq!(status(slot.load()), IDLE);
        }
    }

    #[test]
    fn retake_wins_and_exit_finds_the_p_gone() {
        for slot in both() {
            let t = slot.enter(7u32, 1);
            let seen = slot.load();
            assert_eq!(slot.last_task(), 1);
            assert_eq!(slot.retake(seen), Some(7));
            assert_eq!(slot.retake(seen), None, "one P is taken once");
            assert_eq!(slot.borrow((), |p, ()| *p), Err(()), "borrow after retake");
            assert_eq!(status(slot.load()), IDLE, "a gone P leaves the word IDLE");
            assert!(!slot.enter_syscall(t));
            assert_eq!(slot.exit(t), None);
            // The M parks another P for its next poll.
            let t2 = slot.enter(8u32, 2);
            assert_eq!(slot.exit(t2), Some(8), "an old WON does not match");
        }
    }

    #[test]
    fn retake_loses_when_the_owner_moved_on() {
        for slot in both() {
            let t = slot.enter(1u32, 1);
            let seen = slot.load();
            assert_eq!(slot.exit(t), Some(1));
            let t2 = slot.enter(2u32, 2);
            assert_eq!(slot.retake(seen), None, "a new poll has a new pollseq");
            assert!(slot.enter_syscall(t2));
            let in_syscall = slot.load();
            assert!(slot.exit_syscall(t2));
            assert_eq!(slot.retake(in_syscall), None, "the syscall ended");
            assert_eq!(slot.exit(t2), Some(2), "a LOST verdict leaves the P");
        }
    }

    /// A P reduced to a holder count: `hold` panics if two parties hold it.
    struct CountedP {
        holders: std::sync::atomic::AtomicUsize,
        runs: usize,
    }

    impl CountedP {
        fn run(&mut self) {
            let prev = self.holders.fetch_add(1, SeqCst);
            assert_eq!(prev, 0, "two parties hold one P");
            self.runs += 1;
            self.holders.fetch_sub(1, SeqCst);
        }
    }

    /// The real handshake on this machine (membarrier where available, so
    /// what loom cannot model): an owner thread polls as fast as it can
    /// (enter, two borrows, exit) while a sysmon thread retakes every poll
    /// it sees, runs the P and hands it back. Every run is counted once and
    /// no run overlaps another. With the `membarrier` call deleted from
    /// `retake` this failed one run in three on the 2-core test machine
    /// ("borrow found no P": sysmon took the P under the owner's borrow).
    #[test]
    fn stress_retake_against_back_to_back_polls() {
        use std::sync::mpsc;
        use std::sync::{Arc, atomic::AtomicBool};
        use std::time::{Duration, Instant};

        for asymmetric in [true, false] {
            let slot = Arc::new(PSlot::<Box<CountedP>>::with_handshake(asymmetric));
            let stop = Arc::new(AtomicBool::new(false));
            let (handoff, back) = mpsc::channel::<Box<CountedP>>();
            let sysmon = {
                let (slot, stop) = (slot.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut taken, mut runs) = (0usize, 0usize);
                    while !stop.load(Relaxed) {
                        let seen = slot.load();
                        if let Some(mut p) = slot.retake(seen) {
                            taken += 1;
                            p.run();
                            runs += 1;
                            handoff.send(p).unwrap();
                        }
                    }
                    (taken, runs)
                })
            };
            let mut p = Some(Box::new(CountedP {
                holders: std::sync::atomic::AtomicUsize::new(0),
                runs: 0,
            }));
            let (mut polls, mut owner_runs, mut lost) = (0usize, 0usize, 0usize);
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline || lost < 100 {
                let t = slot.enter(p.take().unwrap(), polls as u64);
                polls += 1;
                for _ in 0..2 {
                    if slot.borrow((), |p, ()| p.run()).is_ok() {
                        owner_runs += 1;
                    }
                    // Polls of every length, so that retakes win (long
                    // ones) and race the owner's stores (short ones).
                    for _ in 0..polls % 512 {
                        std::hint::spin_loop();
                    }
                }
                match slot.exit(t) {
                    Some(mut back_p) => {
                        back_p.run();
                        owner_runs += 1;
                        p = Some(back_p);
                    }
                    None => {
                        lost += 1;
                        p = Some(
                            back.recv_timeout(Duration::from_secs(10))
                                .expect("sysmon took the P and must hand it back"),
                        );
                    }
                }
                if lost > 1_000_000 {
                    break;
                }
            }
            stop.store(true, Relaxed);
            let (taken, sysmon_runs) = sysmon.join().unwrap();
            // The owner's last `exit` kept the P: nothing left in transit.
            let p = p.unwrap();
            assert!(back.try_recv().is_err());
            assert_eq!(taken, lost, "asymmetric={asymmetric}");
            eprintln!("asymmetric={asymmetric}: {polls} polls, {lost} retaken");
            assert_eq!(
                p.runs,
                owner_runs + sysmon_runs,
                "every run counted once (asymmetric={asymmetric}, polls={polls}, taken={taken})"
            );
        }
    }

    #[test]
    fn retake_of_a_syscall_wins_and_exit_syscall_reports_it() {
        for slot in both() {
            let t = slot.enter(5u32, 1);
            assert!(slot.enter_syscall(t));
            let seen = slot.load();
            assert_eq!(status(seen), SYSCALL);
            assert_eq!(slot.retake(seen), Some(5));
            assert!(!slot.exit_syscall(t), "the fast path fails");
            assert_eq!(status(slot.load()), IDLE);
        }
    }
}
