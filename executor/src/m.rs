//! The M: an OS thread that runs a P's tasks (Go's `schedule`, `findRunnable`,
//! `stealWork`, `stopm`).
//!
//! # The loop (`run`)
//! 1. Wait for a P (`Idle::park_m` / the first wait): `startm` hands one over.
//! 2. `find_runnable` (below); `None` means shutdown.
//! 3. If the M was spinning it stops, and wakes another spinner if it was the
//!    last one (Go's `resetspinning`): the work it found may not be alone.
//! 4. `execute`: bump `schedtick` unless the task inherits the time slice,
//!    then poll it with no borrow of the P held (the task may wake others
//!    onto this P through `schedule_local`).
//!
//! # Search order (`find_runnable`)
//! 0. Fire expired timers of every heap (Go's `pp.timers.check`).
//! 1. Every 61st poll, a batch from the global queue (fairness).
//! 2. The local runq: `runnext` first (inherits the slice), then the ring.
//! 3. The global queue, a batch: `min(len / nprocs + 1, capacity / 2)`.
//! 4. [hook] a non-blocking netpoll, once netpoll is wired in.
//! 5. Steal: only while spinning Ms stay under half the busy Ps; 4 passes
//!    over the other Ps in a random coprime order, the last pass also taking
//!    `runnext` (after the victim's grace period, queue.rs).
//! 6. Release the P and park (`Idle::park_m`: the "delicate dance" re-check,
//!    timers included), at most until the earliest timer deadline.
//!
//! # Exit
//! At shutdown the M drops what its P still queues (the tasks themselves are
//! cancelled through the owned-tasks list), returns the P and reports.

use std::cell::{Cell, RefCell};

use gort_netpoll::loom::sync::Arc;

use crate::context;
use crate::idle::MNote;
use crate::p::{GLOBAL_QUEUE_INTERVAL, P};
use crate::park::Parker;
use crate::queue::LOCAL_QUEUE_CAPACITY;
use crate::runtime::Handle;
use crate::task::{Hint, Notified};
use crate::time::{self, TimersGuard};

/// Steal passes over all Ps before giving up (Go's `stealTries`).
const STEAL_TRIES: usize = 4;

/// The running M's own state; lives on its thread's stack.
pub(crate) struct MCore {
    pub(crate) handle: Handle,
    /// The P this M holds, if any. Borrowed briefly: never across a poll.
    p: RefCell<Option<Box<P>>>,
    spinning: Cell<bool>,
    /// Makes the held P's timer heap current for the tasks this M polls.
    timers: RefCell<Option<TimersGuard>>,
    note: Arc<MNote<Box<P>>>,
    parker: RefCell<Parker>,
}

/// The body of an M thread.
pub(crate) fn run(handle: Handle, note: Arc<MNote<Box<P>>>, parker: Parker) {
    let core = MCore {
        handle: handle.clone(),
        p: RefCell::new(None),
        spinning: Cell::new(false),
        timers: RefCell::new(None),
        note,
        parker: RefCell::new(parker),
    };
    let _enter = context::enter(handle.clone());
    // SAFETY: `core` lives on this stack frame until after `_m` drops (it is
    // declared before and dropped after the guard).
    let _m = unsafe { context::set_current_m(&core) };
    core.main_loop();
    drop(_m);
    handle.shared.m_exited();
}

impl MCore {
    fn main_loop(&self) {
        let shared = &self.handle.shared;
        let idle = &shared.idle;
        let first = idle.wait_for_p(&self.note, &mut self.parker.borrow_mut(), || {
            shared.next_deadline()
        });
        let Some((p, spinning)) = first else {
            return;
        };
        self.acquire_p(p, spinning);
        while let Some((task, inherit)) = self.find_runnable() {
            if self.spinning.replace(false) && idle.stop_spinning() {
                idle.wakep();
            }
            self.p
                .borrow_mut()
                .as_mut()
                .expect("gort: M runs a task without a P")
                .on_execute(inherit);
            task.run();
        }
        self.exit();
    }

    fn exit(&self) {
        let idle = &self.handle.shared.idle;
        if self.spinning.replace(false) {
            let _ = idle.stop_spinning();
        }
        *self.timers.borrow_mut() = None;
        if let Some(mut p) = self.p.borrow_mut().take() {
            p.drain();
            idle.put_p_at_exit(p);
        }
    }

    /// Takes `p` (from `startm` or the idle list) and makes its timer heap
    /// current.
    fn acquire_p(&self, p: Box<P>, spinning: bool) {
        let heap = self.handle.shared.timers[p.id].clone();
        let mut guard = self.timers.borrow_mut();
        *guard = None; // restore the previous heap before entering the next
        *guard = Some(time::enter(heap));
        *self.p.borrow_mut() = Some(p);
        self.spinning.set(spinning);
    }

    /// Gives up the P (to the idle list, by the caller).
    fn release_p(&self) -> Box<P> {
        *self.timers.borrow_mut() = None;
        self.p
            .borrow_mut()
            .take()
            .expect("gort: release_p without a P")
    }

    /// Go's `findRunnable`. `None` at shutdown.
    fn find_runnable(&self) -> Option<(Notified, bool)> {
        let shared = &self.handle.shared;
        loop {
            if shared.idle.is_closed() {
                return None;
            }
            // Go's `pp.timers.check`: fire expired timers first; the woken
            // tasks land in this P's runq through `schedule`.
            shared.run_timers();
            {
                let mut guard = self.p.borrow_mut();
                let p = guard.as_mut().expect("gort: find_runnable without a P");
                if p.polls % GLOBAL_QUEUE_INTERVAL == 0
                    && !shared.inject.is_empty()
                    && let Some(task) = self.global_batch(p)
                {
                    return Some((task, false));
                }
                if let Some(found) = p.runq.pop() {
                    return Some(found);
                }
                if !shared.inject.is_empty()
                    && let Some(task) = self.global_batch(p)
                {
                    return Some((task, false));
                }
                // HOOK (netpoll issue): a non-blocking netpoll goes here;
                // inject what it readied and return the first task.
                if self.spinning.get() || shared.idle.spinning_allowed() {
                    if !self.spinning.replace(true) {
                        shared.idle.start_spinning();
                    }
                    if let Some(task) = self.steal_work(p) {
                        return Some((task, false));
                    }
                }
            }
            // Nothing anywhere: release the P and park (the delicate dance),
            // at most until the earliest timer. HOOK (netpoll issue): the
            // last idle M blocks in netpoll with that timeout instead.
            let p = self.release_p();
            let was_spinning = self.spinning.replace(false);
            let (p, spinning) = shared.idle.park_m(
                p,
                &self.note,
                &mut self.parker.borrow_mut(),
                was_spinning,
                || shared.has_work(),
                || shared.next_deadline(),
            )?;
            self.acquire_p(p, spinning);
        }
    }

    /// Go's `globrunqgetbatch`: one task to run, up to `n - 1` more moved to
    /// the local runq, `n = min(len / nprocs + 1, capacity / 2)`. Taking a
    /// batch (not one task) keeps remote spawns from waiting behind local work.
    fn global_batch(&self, p: &mut P) -> Option<Notified> {
        let shared = &self.handle.shared;
        let n = (shared.inject.len() / shared.idle.nprocs() + 1).min(LOCAL_QUEUE_CAPACITY / 2);
        let mut first = None;
        shared.inject.pop_batch(n, |task| {
            if first.is_none() {
                first = Some(task);
            } else {
                p.runq.push_back(task, &shared.inject);
            }
        });
        first
    }

    /// Go's `stealWork`: 4 passes in a random coprime order, skipping our own
    /// P; the last pass may take a victim's `runnext`.
    fn steal_work(&self, p: &mut P) -> Option<Notified> {
        let shared = &self.handle.shared;
        let n = shared.stealers.len();
        if n < 2 {
            return None;
        }
        for pass in 0..STEAL_TRIES {
            let steal_runnext = pass == STEAL_TRIES - 1;
            let r = p.fastrand() as usize;
            let start = r % n;
            let stride = shared.coprimes[(r / n) % shared.coprimes.len()];
            for i in 0..n {
                let victim = (start + i * stride) % n;
                if victim == p.id {
                    continue;
                }
                if let Some(task) = shared.stealers[victim].steal_into(&mut p.runq, steal_runnext) {
                    return Some(task);
                }
            }
            if !shared.inject.is_empty() {
                return self.global_batch(p);
            }
        }
        None
    }

    /// `Schedule::schedule` on this M's own runtime. Returns the task when
    /// the P is unavailable (no P, or borrowed by `find_runnable`), for the
    /// caller to send to the global queue.
    pub(crate) fn schedule_local(&self, task: Notified, hint: Hint) -> Option<Notified> {
        let shared = &self.handle.shared;
        let Ok(mut guard) = self.p.try_borrow_mut() else {
            return Some(task);
        };
        let Some(p) = guard.as_mut() else {
            return Some(task);
        };
        let more = match hint {
            Hint::Wake => p.push_woken(task, &shared.inject),
            Hint::Yield => p.push_yielded(task, &shared.inject),
        };
        drop(guard);
        if more {
            shared.idle.wakep_local();
        }
        None
    }
}
