//! The G's state word: one atomic holding the task's flags and its reference count.
//!
//! # Purpose
//! Every decision about a task (may I poll it, must I schedule it, who drops the
//! output, who frees the memory) is one read-modify-write of this word, so the
//! decision and its effect on the other parties happen at one point in time.
//!
//! # States (bit layout of the `usize`)
//! - bit 0 `RUNNING`: a thread owns the stage (future or output) exclusively.
//!   Set by [`State::transition_to_running`] / [`State::transition_to_shutdown`],
//!   cleared by [`State::transition_to_idle`] or [`State::transition_to_complete`].
//! - bit 1 `COMPLETE`: the stage holds the output (or a `JoinError`) or is
//!   consumed. Once set, never unset; `RUNNING` is clear from then on.
//! - bit 2 `NOTIFIED`: a [`Notified`](super::Notified) reference exists, or the
//!   task was woken while `RUNNING` and the runner must reschedule it.
//! - bit 3 `CANCELLED`: `abort()` or shutdown asked the task to stop; the next
//!   thread that takes `RUNNING` drops the future instead of polling it.
//!   Once set, never unset.
//! - bit 4 `JOIN_INTEREST`: the `JoinHandle` exists. Cleared only while
//!   `COMPLETE` is clear ([`State::unset_join_interest`]); the value seen by
//!   [`State::transition_to_complete`] therefore decides who drops the output.
//! - bit 5 `JOIN_WAKER`: the join waker field holds a waker the completer
//!   must wake. While set and `COMPLETE` is clear nobody touches the field.
//! - bits 6..32 reference count, in units of [`REF_ONE`] (on 32-bit
//!   targets, bits 6..). More than 2^25 references abort the process.
//! - bits 32..64 (64-bit targets) the *stamp*: when the task last became
//!   runnable or waiting, copied from the coarse clock (metrics/since.rs,
//!   units of 65.5 us, wrapping). Written by the transitions that enter
//!   those states (spawn, `transition_to_idle`, the wakes), as part of the
//!   RMW they do anyway; read only by the task dump. It costs no byte of the
//!   cell: the count never needed 58 bits.
//!
//! Go's G states are a view of these bits, see [`GStatus`].
//!
//! # Transitions (who, which atomic op)
//! - idle -> runnable: a waker, [`State::transition_to_notified_by_val`] /
//!   `_by_ref` (CAS). Abort: [`State::transition_to_notified_and_cancel`] (CAS).
//! - runnable -> running: the M holding the `Notified`, `transition_to_running` (CAS).
//! - running -> idle / runnable again: the runner, `transition_to_idle` (CAS).
//! - running -> complete: the runner, `transition_to_complete` (fetch_xor).
//! - idle/runnable -> running+cancelled: shutdown, `transition_to_shutdown` (CAS).
//! - join side: `unset_join_interest`, `set_join_waker`, `unset_join_waker` (CAS).
//! - references: `ref_inc` (fetch_add, Relaxed), `ref_dec` (fetch_sub, AcqRel).
//!
//! # Ownership
//! The word itself is shared by every reference holder. What the bits grant is
//! written in `task/mod.rs` (stage, join waker) and `task/list.rs` (links).
//!
//! # Orderings
//! - Each transition is AcqRel: the Release half of `transition_to_idle` /
//!   `transition_to_complete` publishes the stage writes of the poll to the
//!   Acquire half of the next `transition_to_running`, of `JoinHandle::poll`
//!   (which reads `COMPLETE` in `set_join_waker`/`load`) and of the dropper
//!   in `unset_join_interest`.
//! - `ref_dec` is AcqRel so that the thread that frees the memory has seen
//!   every other holder's last access (the Arc rule). `ref_inc` is Relaxed:
//!   a new reference is made from an existing one, which already orders.
//!
//! # Rejected alternatives
//! - A separate atomic reference count (async-task keeps one word too; two
//!   words would make "last ref dropped while completing" a two-step race).
//! - A lock per task: the poll path would pay a lock per wake.
//!
//! # Checked by
//! `src/tests/loom_task.rs`: wake during poll, abort during poll, and
//! `JoinHandle` dropped while the task completes; the future and the output
//! are each dropped exactly once and the memory is freed exactly once.

use std::fmt;

use gort_netpoll::loom::sync::atomic::{AtomicUsize, Ordering::*};

use crate::metrics::since;

const RUNNING: usize = 1 << 0;
const COMPLETE: usize = 1 << 1;
const NOTIFIED: usize = 1 << 2;
const CANCELLED: usize = 1 << 3;
const JOIN_INTEREST: usize = 1 << 4;
const JOIN_WAKER: usize = 1 << 5;
const LIFECYCLE: usize = RUNNING | COMPLETE;
const REF_SHIFT: u32 = 6;
/// One reference in the state word.
pub(crate) const REF_ONE: usize = 1 << REF_SHIFT;
/// Where the stamp starts (the coarse clock stores its value pre-shifted);
/// `usize::BITS` where the word has no room for one.
#[cfg(target_pointer_width = "64")]
pub(crate) const STAMP_SHIFT: u32 = 32;
#[cfg(not(target_pointer_width = "64"))]
pub(crate) const STAMP_SHIFT: u32 = usize::BITS;
/// Flags and count: every bit below the stamp.
const LOW: usize = usize::MAX >> (usize::BITS - STAMP_SHIFT);
const REF_MASK: usize = !(REF_ONE - 1) & LOW;

/// A new task has three references (the owned-tasks list, the `JoinHandle`,
/// the first `Notified`), is notified (it is about to be queued) and has a
/// `JoinHandle`.
const INITIAL_STATE: usize = (3 * REF_ONE) | NOTIFIED | JOIN_INTEREST;

/// The atomic state word.
pub(crate) struct State {
    val: AtomicUsize,
}

/// A copy of the state word; bit arithmetic happens on this plain value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

/// Go's G states, decoded from the word for diagnostics (`Debug` of a
/// `JoinHandle` or a snapshot shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // Idle and Syscall are never decoded by this version
pub(crate) enum GStatus {
    /// Allocated, not yet published (`_Gidle`). Not produced: a spawn
    /// allocates the task already Runnable (`INITIAL_STATE`) and publishes it
    /// at once.
    Idle,
    /// On a run queue or about to be (`_Grunnable`).
    Runnable,
    /// Being polled by an M (`_Grunning`).
    Running,
    /// Polling inside a blocking section (`_Gsyscall`); produced once the
    /// blocking-section issue lands, never by this version.
    Syscall,
    /// Waiting for a waker (`_Gwaiting`).
    Waiting,
    /// Finished; the memory lives on only for outstanding references (`_Gdead`).
    Dead,
}

/// Result of [`State::transition_to_running`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToRunning {
    /// Poll the future.
    Success,
    /// Drop the future instead: the task was aborted.
    Cancelled,
    /// Someone else runs or ran it; the caller's reference was released.
    Failed,
    /// As `Failed`, and that was the last reference: free the task.
    Dealloc,
}

/// Result of [`State::transition_to_idle`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToIdle {
    /// The task waits for a waker; the runner's reference was released.
    Ok,
    /// Woken during the poll: the runner's reference is now a `Notified`.
    OkNotified,
    /// As `Ok`, and that was the last reference.
    OkDealloc,
    /// Aborted during the poll: the runner still owns the stage; cancel it.
    Cancelled,
}

/// Result of the wake transitions.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToNotified {
    /// Nothing to do (running, already notified or complete).
    DoNothing,
    /// A `Notified` reference was created: schedule it.
    Submit,
    /// The waker's reference was the last one: free the task.
    Dealloc,
}

impl State {
    /// The state of a task about to be spawned.
    #[inline(always)]
    pub(crate) fn new() -> State {
        State {
            val: AtomicUsize::new(INITIAL_STATE | since::stamp()),
        }
    }

    /// The current value (Acquire).
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.val.load(Acquire))
    }

    /// CAS loop: `f` returns the next value and an outcome, or only an outcome
    /// to leave the word unchanged.
    fn fetch_update_action<T>(&self, mut f: impl FnMut(Snapshot) -> (T, Option<Snapshot>)) -> T {
        let mut curr = self.load();
        loop {
            let (out, next) = f(curr);
            let Some(next) = next else { return out };
            match self
                .val
                .compare_exchange_weak(curr.0, next.0, AcqRel, Acquire)
            {
                Ok(_) => return out,
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    /// The holder of a `Notified` takes `RUNNING`; consumes that reference on
    /// `Failed`/`Dealloc`, turns it into the runner's reference otherwise.
    pub(crate) fn transition_to_running(&self) -> TransitionToRunning {
        self.fetch_update_action(|mut s| {
            debug_assert!(s.is_notified(), "transition_to_running: task not notified");
            if s.0 & LIFECYCLE != 0 {
                // Running elsewhere or complete: only drop our reference.
                s.ref_dec();
                let out = if s.ref_count() == 0 {
                    TransitionToRunning::Dealloc
                } else {
                    TransitionToRunning::Failed
                };
                return (out, Some(s));
            }
            s.0 = (s.0 | RUNNING) & !NOTIFIED;
            let out = if s.is_cancelled() {
                TransitionToRunning::Cancelled
            } else {
                TransitionToRunning::Success
            };
            (out, Some(s))
        })
    }

    /// After a `Pending` poll: clear `RUNNING` unless cancelled.
    pub(crate) fn transition_to_idle(&self) -> TransitionToIdle {
        self.fetch_update_action(|mut s| {
            debug_assert!(s.is_running(), "transition_to_idle: task not running");
            if s.is_cancelled() {
                return (TransitionToIdle::Cancelled, None);
            }
            s.0 = (s.0 & LOW & !RUNNING) | since::stamp();
            let out = if s.is_notified() {
                // Keep the runner's reference: it becomes the new Notified.
                TransitionToIdle::OkNotified
            } else {
                s.ref_dec();
                if s.ref_count() == 0 {
                    TransitionToIdle::OkDealloc
                } else {
                    TransitionToIdle::Ok
                }
            };
            (out, Some(s))
        })
    }

    /// The output is stored: `RUNNING` -> `COMPLETE` in one `fetch_xor`.
    /// Returns the new value; its `JOIN_INTEREST` and `JOIN_WAKER` bits decide
    /// who drops the output and whether to wake the join waker.
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        let prev = Snapshot(self.val.fetch_xor(RUNNING | COMPLETE, AcqRel));
        debug_assert!(
            prev.is_running() && !prev.is_complete(),
            "transition_to_complete: bad state"
        );
        Snapshot(prev.0 ^ (RUNNING | COMPLETE))
    }

    /// Shutdown: take `RUNNING` (to drop the future) if nobody has it, and set
    /// `CANCELLED` either way. True when the caller now owns the stage.
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.fetch_update_action(|mut s| {
            let idle = s.0 & LIFECYCLE == 0;
            if idle {
                s.0 |= RUNNING;
            }
            s.0 |= CANCELLED;
            (idle, Some(s))
        })
    }

    /// A waker consumed by value. Its reference becomes the `Notified` on `Submit`.
    pub(crate) fn transition_to_notified_by_val(&self) -> TransitionToNotified {
        self.fetch_update_action(|mut s| {
            if s.is_running() {
                // The runner reschedules after its poll; our ref goes.
                s.0 |= NOTIFIED;
                s.ref_dec();
                debug_assert!(s.ref_count() > 0, "the runner holds a reference");
                (TransitionToNotified::DoNothing, Some(s))
            } else if s.is_complete() || s.is_notified() {
                s.ref_dec();
                let out = if s.ref_count() == 0 {
                    TransitionToNotified::Dealloc
                } else {
                    TransitionToNotified::DoNothing
                };
                (out, Some(s))
            } else {
                s.0 = (s.0 & LOW) | NOTIFIED | since::stamp();
                (TransitionToNotified::Submit, Some(s))
            }
        })
    }

    /// A waker woken by reference: on `Submit` a new reference was added.
    ///
    /// An explicit CAS loop, not `fetch_update_action`: with the stamp in
    /// the closure, LLVM kept the closure's `Option` on the stack (+7
    /// instructions on `yield_now`'s wake; callgrind, sched_cost
    /// yield_many); this form is two shorter than before the stamp.
    pub(crate) fn transition_to_notified_by_ref(&self) -> TransitionToNotified {
        let now = since::stamp();
        let mut curr = self.val.load(Acquire);
        loop {
            let s = Snapshot(curr);
            let next = if s.is_complete() || s.is_notified() {
                return TransitionToNotified::DoNothing;
            } else if s.is_running() {
                curr | NOTIFIED
            } else {
                ((curr & LOW) | now) + (NOTIFIED + REF_ONE)
            };
            match self.val.compare_exchange_weak(curr, next, AcqRel, Acquire) {
                Ok(_) if s.is_running() => return TransitionToNotified::DoNothing,
                Ok(_) => return TransitionToNotified::Submit,
                Err(actual) => curr = actual,
            }
        }
    }

    /// `abort()`: set `CANCELLED`; an idle task is also notified (a new
    /// reference) so an M drops its future. A running task is cancelled by its
    /// runner after the poll (`transition_to_idle` returns `Cancelled`).
    pub(crate) fn transition_to_notified_and_cancel(&self) -> bool {
        self.fetch_update_action(|mut s| {
            if s.is_cancelled() || s.is_complete() {
                return (false, None);
            }
            s.0 |= CANCELLED;
            if s.is_running() || s.is_notified() {
                return (false, Some(s));
            }
            s.0 = (s.0 & LOW) | NOTIFIED | since::stamp();
            s.ref_inc();
            (true, Some(s))
        })
    }

    /// The `JoinHandle` goes away. `Err` when the task is already complete:
    /// the handle then owns the output and must drop it.
    pub(crate) fn unset_join_interest(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update_action(|s| {
            debug_assert!(s.is_join_interested());
            if s.is_complete() {
                return (Err(s), None);
            }
            let next = Snapshot(s.0 & !(JOIN_INTEREST | JOIN_WAKER));
            (Ok(next), Some(next))
        })
    }

    /// Hands the freshly written join waker to the completer. `Err` when the
    /// task completed first (the handle still owns the field).
    pub(crate) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update_action(|s| {
            debug_assert!(s.is_join_interested() && !s.is_join_waker_set());
            if s.is_complete() {
                return (Err(s), None);
            }
            let next = Snapshot(s.0 | JOIN_WAKER);
            (Ok(next), Some(next))
        })
    }

    /// Takes the join waker field back before replacing it. `Err` when the task
    /// completed first (the completer owns the field then).
    pub(crate) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update_action(|s| {
            debug_assert!(s.is_join_interested() && s.is_join_waker_set());
            if s.is_complete() {
                return (Err(s), None);
            }
            let next = Snapshot(s.0 & !JOIN_WAKER);
            (Ok(next), Some(next))
        })
    }

    /// Adds a reference (a waker clone).
    pub(crate) fn ref_inc(&self) {
        let prev = self.val.fetch_add(REF_ONE, Relaxed);
        // Overflow of the count would free a live task (and run into the
        // stamp): stop the process.
        if prev & LOW > LOW >> 1 {
            ref_overflow();
        }
    }

    /// Drops `n` references; true when they were the last.
    pub(crate) fn ref_dec_n(&self, n: usize) -> bool {
        let prev = Snapshot(self.val.fetch_sub(n * REF_ONE, AcqRel));
        assert!(prev.ref_count() >= n, "task reference count underflow");
        prev.ref_count() == n
    }

    /// Drops one reference; true when it was the last.
    pub(crate) fn ref_dec(&self) -> bool {
        self.ref_dec_n(1)
    }
}

/// More references than the count holds: a leak of wakers (millions of
/// clones of one task's waker); continuing would free a live task.
#[cold]
fn ref_overflow() -> ! {
    use std::io::Write as _;
    // Not eprintln!: it panics on a closed stderr, and this must not unwind.
    let _ = writeln!(
        std::io::stderr(),
        "gort: a task's reference count overflowed (over 2^25 wakers alive); aborting"
    );
    std::process::abort();
}

impl Snapshot {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(crate) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    pub(crate) fn ref_count(self) -> usize {
        (self.0 & REF_MASK) >> REF_SHIFT
    }
    /// When the task last became runnable or waiting, in the coarse clock's
    /// units (metrics/since.rs); 0 where the word has no stamp.
    pub(crate) fn stamp(self) -> u32 {
        self.0.checked_shr(STAMP_SHIFT).unwrap_or(0) as u32
    }
    fn ref_inc(&mut self) {
        self.0 += REF_ONE;
    }
    fn ref_dec(&mut self) {
        debug_assert!(self.ref_count() > 0);
        self.0 -= REF_ONE;
    }

    /// Go's view of this word.
    pub(crate) fn g_status(self) -> GStatus {
        if self.is_complete() {
            GStatus::Dead
        } else if self.is_running() {
            GStatus::Running
        } else if self.is_notified() {
            GStatus::Runnable
        } else {
            GStatus::Waiting
        }
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("g_status", &self.g_status())
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("notified", &self.is_notified())
            .field("cancelled", &self.is_cancelled())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.is_join_waker_set())
            .field("refs", &self.ref_count())
            .finish()
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn initial_state_is_runnable_with_three_refs() {
        let s = State::new().load();
        assert_eq!(s.ref_count(), 3);
        assert_eq!(s.g_status(), GStatus::Runnable);
        assert!(s.is_join_interested());
    }

    #[test]
    fn run_idle_wake_cycle() {
        let st = State::new();
        assert_eq!(st.transition_to_running(), TransitionToRunning::Success);
        assert_eq!(st.load().g_status(), GStatus::Running);
        assert_eq!(st.transition_to_idle(), TransitionToIdle::Ok);
        assert_eq!(st.load().g_status(), GStatus::Waiting);
        assert_eq!(st.load().ref_count(), 2);
        assert_eq!(
            st.transition_to_notified_by_ref(),
            TransitionToNotified::Submit
        );
        assert_eq!(
            st.transition_to_notified_by_ref(),
            TransitionToNotified::DoNothing
        );
        assert_eq!(st.load().ref_count(), 3);
    }

    #[test]
    fn wake_while_running_reschedules() {
        let st = State::new();
        assert_eq!(st.transition_to_running(), TransitionToRunning::Success);
        st.ref_inc(); // a waker clone
        assert_eq!(
            st.transition_to_notified_by_val(),
            TransitionToNotified::DoNothing
        );
        assert_eq!(st.transition_to_idle(), TransitionToIdle::OkNotified);
        assert_eq!(st.load().ref_count(), 3);
    }

    #[test]
    fn abort_while_running_cancels_after_poll() {
        let st = State::new();
        assert_eq!(st.transition_to_running(), TransitionToRunning::Success);
        assert!(
            !st.transition_to_notified_and_cancel(),
            "running: no new Notified"
        );
        assert_eq!(st.transition_to_idle(), TransitionToIdle::Cancelled);
        let done = st.transition_to_complete();
        assert!(done.is_complete() && !done.is_running());
    }

    #[test]
    fn join_interest_after_complete_is_refused() {
        let st = State::new();
        assert_eq!(st.transition_to_running(), TransitionToRunning::Success);
        let _ = st.transition_to_complete();
        assert!(st.unset_join_interest().is_err());
    }

    #[test]
    fn last_ref_reports_dealloc() {
        let st = State::new();
        assert!(!st.ref_dec());
        assert!(st.ref_dec_n(2));
    }
}
