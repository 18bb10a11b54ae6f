//! The P status word: who may run a P while its M is inside a task poll.
//!
//! # Purpose
//! A future can block its thread (a slow syscall, a CPU loop, a mutex held
//! too long). Go takes the P away from such an M (`retake`/`handoffp`) so the
//! tasks queued behind it run on another M. This file is the one place where
//! that takeover is decided: a status word per P, CASed by the owner M and by
//! sysmon, so that exactly one of them ends up holding the P and two Ms never
//! run one P.
//!
//! # States
//! `PSlot::word`, one `AtomicU64`:
//! - bits 0..3: the status (Go's `_Pidle`, `_Prunning`, `_Psyscall`, plus
//!   `POLLING` for "inside a task poll", which Go does not need because it can
//!   preempt a goroutine asynchronously and a future cannot be interrupted):
//!   - `IDLE` (0): no M runs the P through this slot; the slot's cell is
//!     empty. The P is in the idle list, in transit, or held by an M between
//!     polls (then the M keeps it in its own `MCore::p`).
//!   - `RUNNING` (1): the owner M borrowed the parked P for a moment
//!     (`borrow`, a wake from inside the poll). Sysmon never takes it here.
//!   - `POLLING` (2): the owner M is inside a task poll; the P is parked in
//!     the cell and sysmon may take it.
//!   - `SYSCALL` (3): the owner M is inside `block_in_place` (Go's
//!     `entersyscall`); as `POLLING`, with a shorter handoff threshold.
//! - bits 3..64: `pollseq`, bumped by every `enter`. Sysmon compares whole
//!   words across its ticks: an unchanged word means "the same poll, still
//!   running" (Go compares `schedtick`/`syscalltick` the same way), so no
//!   clock is read on the hot path.
//!
//! # Transitions
//! - `IDLE -> POLLING(seq+1)`: owner M, `enter`: writes the P into the cell,
//!   then `store(Release)`.
//! - `POLLING -> IDLE`: owner M, `exit` (CAS, Acquire): the poll returned and
//!   the P is still ours; the M takes it back from the cell.
//! - `POLLING|SYSCALL -> IDLE`: sysmon, `retake` (CAS, AcqRel) on the word it
//!   saw a tick earlier; it then owns the cell and hands the P off. The owner
//!   M's next CAS fails: its P is gone (Go's "P was retaken").
//! - `POLLING|SYSCALL -> RUNNING -> same`: owner M, `borrow` (CAS Acquire,
//!   then `store(Release)` of the word it replaced).
//! - `POLLING <-> SYSCALL`: owner M, `enter_syscall` / `exit_syscall` (CAS):
//!   failure means sysmon took the P meanwhile.
//!
//! # Ownership
//! - `cell` (the parked `Box<P>`): written by the owner M before its
//!   `POLLING` store; afterwards readable/writable only by whoever moves the
//!   word out of `POLLING`/`SYSCALL` with a successful CAS (the owner M in
//!   `exit`/`borrow`, or sysmon in `retake`), until it stores a new word.
//! - `task_id`, `m_id`: diagnostics written by the owner M before `enter`'s
//!   store (Relaxed; published by it), read by sysmon after a successful
//!   `retake` or racily by schedtrace (a stale value is harmless there).
//!
//! # Orderings
//! - `enter`'s `store(Release)` pairs with the `Acquire` side of `retake`'s
//!   CAS: sysmon sees the P written into the cell and the diagnostics.
//! - `retake`'s CAS is `AcqRel`; its Release half is unused by the M (the M
//!   never reads the cell after a failed CAS) but orders sysmon's later
//!   handoff after the take, which idle.rs' lock publishes further.
//! - `borrow`'s restoring `store(Release)` pairs with `retake`'s Acquire: a
//!   task pushed on the P's runq from inside the poll is seen by sysmon's new
//!   M (the runq has its own orderings too, queue.rs).
//! - `exit`'s CAS is `Acquire` so the M sees what it last stored itself (the
//!   cell) even after a `borrow`: the borrow's restore is a Release store.
//!
//! # Rejected alternatives
//! - Keeping the P inside the M and having sysmon only raise a flag: a
//!   blocked M never reads the flag, which is the whole problem.
//! - A mutex per P taken for the whole poll: sysmon could not take the P
//!   while the poll holds it; a `try_lock` for it is exactly this CAS, slower.
//! - Timestamping every poll (`Instant::now()` twice per poll): ~40 ns per
//!   poll; comparing `pollseq` across sysmon ticks costs nothing to the M.
//!
//! # Checked by
//! `src/tests/loom_handoff.rs`: an M polling while sysmon retakes its P; a
//! wake pushed from inside the poll, the P's holder count (never two), and
//! every task run exactly once, whichever side wins.

use gort_netpoll::loom::cell::UnsafeCell;
use gort_netpoll::loom::sync::atomic::AtomicU64;
use gort_netpoll::loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// No M runs the P through this slot.
pub(crate) const IDLE: u64 = 0;
/// The owner M is borrowing the parked P (a wake from inside a poll).
pub(crate) const RUNNING: u64 = 1;
/// The owner M is inside a task poll; sysmon may take the P.
pub(crate) const POLLING: u64 = 2;
/// The owner M is inside `block_in_place`; sysmon may take the P.
pub(crate) const SYSCALL: u64 = 3;

const STATUS_BITS: u32 = 3;
const STATUS_MASK: u64 = (1 << STATUS_BITS) - 1;

/// The status bits of a word.
pub(crate) fn status(word: u64) -> u64 {
    word & STATUS_MASK
}

fn with_status(word: u64, status: u64) -> u64 {
    (word & !STATUS_MASK) | status
}

/// Proof that the caller is the owner M inside a poll: the word it stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the poll must end with PSlot::exit"]
pub(crate) struct PollToken(u64);

/// One P's status word and parking cell.
///
/// Aligned to 128 bytes (two cache lines, the adjacent-line prefetch unit)
/// so that each slot has its lines to itself: the owner M writes its slot on
/// every poll, and unpadded 32-byte slots of two Ps shared a line, which
/// bounced between the two Ms on every poll (yield_many 1.36x tokio).
#[repr(align(128))]
pub(crate) struct PSlot<P> {
    word: AtomicU64,
    cell: UnsafeCell<Option<P>>,
    /// Task being polled (diagnostics).
    task_id: AtomicU64,
    /// M polling it (diagnostics).
    m_id: AtomicU64,
}

// SAFETY: the cell is only touched by the single party the word grants it to
// (Ownership, above); `P: Send` lets that party be any thread.
unsafe impl<P: Send> Sync for PSlot<P> {}

impl<P> PSlot<P> {
    pub(crate) fn new() -> PSlot<P> {
        PSlot {
            word: AtomicU64::new(IDLE),
            cell: UnsafeCell::new(None),
            task_id: AtomicU64::new(0),
            m_id: AtomicU64::new(0),
        }
    }

    /// The current word (racy snapshot for sysmon and schedtrace).
    pub(crate) fn load(&self) -> u64 {
        self.word.load(Acquire)
    }

    /// Diagnostics of the last `enter`: (task id, M id).
    pub(crate) fn last_poll(&self) -> (u64, u64) {
        (self.task_id.load(Relaxed), self.m_id.load(Relaxed))
    }

    /// Owner M, before a task poll: park `p` here and let sysmon see it.
    pub(crate) fn enter(&self, p: P, task_id: u64, m_id: u64) -> PollToken {
        let prev = self.word.load(Relaxed);
        assert_eq!(
            status(prev),
            IDLE,
            "gort: PSlot::enter on a P that is not idle (two Ms on one P)"
        );
        // SAFETY: the word is IDLE and we hold the P (Ownership): nobody else
        // may touch the cell until our Release store below publishes it.
        self.cell.with_mut(|c| unsafe { *c = Some(p) });
        self.task_id.store(task_id, Relaxed);
        self.m_id.store(m_id, Relaxed);
        let word = with_status(prev.wrapping_add(1 << STATUS_BITS), POLLING);
        // Release: pairs with `retake`'s Acquire (the cell and diagnostics).
        self.word.store(word, Release);
        PollToken(word)
    }

    /// Owner M, after the poll: the P back, or `None` when sysmon took it.
    pub(crate) fn exit(&self, token: PollToken) -> Option<P> {
        // Acquire: see our own last cell write even if a `borrow` restored
        // the word in between (its store is Release).
        self.word
            .compare_exchange(token.0, with_status(token.0, IDLE), Acquire, Relaxed)
            .ok()?;
        // SAFETY: the CAS moved the word out of POLLING/SYSCALL for us: we own
        // the cell (Ownership).
        let p = self.cell.with_mut(|c| unsafe { (*c).take() });
        Some(p.expect("gort: PSlot::exit found no P in the cell"))
    }

    /// Owner M, inside the poll: run `f` on the parked P. `None` when sysmon
    /// took it (the caller then uses the global queue).
    pub(crate) fn borrow<R>(&self, token: PollToken, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        let cur = self.word.load(Relaxed);
        if cur != token.0 && cur != with_status(token.0, SYSCALL) {
            return None;
        }
        self.word
            .compare_exchange(cur, with_status(cur, RUNNING), Acquire, Relaxed)
            .ok()?;
        // SAFETY: the CAS above moved the word out of POLLING/SYSCALL for us:
        // we own the cell until the store below (Ownership).
        let r = self
            .cell
            .with_mut(|c| unsafe { f((*c).as_mut().expect("gort: PSlot::borrow found no P")) });
        // Release: pairs with `retake`'s Acquire (the pushes f made).
        self.word.store(cur, Release);
        Some(r)
    }

    /// Owner M, `block_in_place` begins (Go's `entersyscall`). False when the
    /// P is already gone.
    pub(crate) fn enter_syscall(&self, token: PollToken) -> bool {
        self.word
            .compare_exchange(token.0, with_status(token.0, SYSCALL), Release, Relaxed)
            .is_ok()
    }

    /// Owner M, `block_in_place` ends (Go's `exitsyscallfast`): true when the
    /// P is still ours and the slot is `POLLING` again.
    pub(crate) fn exit_syscall(&self, token: PollToken) -> bool {
        self.word
            .compare_exchange(with_status(token.0, SYSCALL), token.0, Acquire, Relaxed)
            .is_ok()
    }

    /// Sysmon: take the P if the word is still `seen` (the same poll or
    /// syscall it observed on an earlier tick). The caller must hand it off.
    pub(crate) fn retake(&self, seen: u64) -> Option<P> {
        let s = status(seen);
        if s != POLLING && s != SYSCALL {
            return None;
        }
        self.word
            .compare_exchange(seen, with_status(seen, IDLE), AcqRel, Relaxed)
            .ok()?;
        // SAFETY: the CAS moved the word out of POLLING/SYSCALL for us: we own
        // the cell (Ownership); `enter`'s Release store published its content.
        let p = self.cell.with_mut(|c| unsafe { (*c).take() });
        Some(p.expect("gort: retake found no P in a polling slot"))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn exit_returns_the_p_when_not_retaken() {
        let slot = PSlot::new();
        let t = slot.enter(7u32, 1, 0);
        assert_eq!(slot.borrow(t, |p| *p + 1), Some(8));
        assert_eq!(slot.exit(t), Some(7));
        assert_eq!(status(slot.load()), IDLE);
    }

    #[test]
    fn retake_wins_and_exit_finds_the_p_gone() {
        let slot = PSlot::new();
        let t = slot.enter(7u32, 1, 0);
        let seen = slot.load();
        assert_eq!(slot.retake(seen), Some(7));
        assert_eq!(slot.borrow(t, |p| *p), None, "borrow after retake");
        assert!(!slot.enter_syscall(t));
        assert_eq!(slot.exit(t), None);
    }

    #[test]
    fn retake_of_an_old_word_fails() {
        let slot = PSlot::new();
        let t = slot.enter(1u32, 1, 0);
        let seen = slot.load();
        assert_eq!(slot.exit(t), Some(1));
        let t2 = slot.enter(2u32, 2, 0);
        assert_eq!(slot.retake(seen), None, "a new poll has a new pollseq");
        assert!(slot.enter_syscall(t2));
        assert!(slot.exit_syscall(t2));
        assert_eq!(slot.exit(t2), Some(2));
    }
}
