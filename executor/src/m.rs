//! The M: an OS thread that runs a P's tasks (Go's `schedule`, `findRunnable`,
//! `stealWork`, `stopm`).
//!
//! # The loop (`run`)
//! 1. Wait for a P (`Idle::park_m` / the first wait): `startm` hands one over.
//! 2. `find_runnable` (below); `None` means shutdown.
//! 3. If the M was spinning it stops, and wakes another spinner if it was the
//!    last one (Go's `resetspinning`): the work it found may not be alone.
//! 4. `execute`: bump `schedtick` unless the task inherits the time slice,
//!    park the P in its status slot (`PSlot::enter`, pstatus.rs) and poll
//!    the task. Wakes from inside the poll reach the P through
//!    `PSlot::borrow`. If the poll blocks past the threshold while work
//!    waits, sysmon takes the P from the slot and hands it to another M.
//! 5. After the poll, `PSlot::exit` returns the P, or reports it gone: the
//!    task's bookkeeping is already done (wakes went to the global queue), so
//!    the M takes an idle P if any, else parks as a spare M
//!    (`Idle::acquire_or_stop`; Go's `exitsyscall` slow path and `stopm`).
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

use gort_netpoll::budget;
use gort_netpoll::loom::sync::Arc;
use gort_netpoll::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crate::context;
use crate::idle::MNote;
use crate::p::{GLOBAL_QUEUE_INTERVAL, P};
use crate::park::Parker;
use crate::pstatus::PollToken;
use crate::queue::LOCAL_QUEUE_CAPACITY;
use crate::runtime::Handle;
use crate::task::{Hint, Notified};
use crate::time::{self, TimersGuard};

/// Steal passes over all Ps before giving up (Go's `stealTries`).
const STEAL_TRIES: usize = 4;

/// `MInfo::curp` when the M holds no P.
pub(crate) const NO_P: usize = usize::MAX;

/// What other threads (sysmon, schedtrace, shutdown) know of an M. Lives in
/// `Shared::ms` for the runtime's life.
pub(crate) struct MInfo {
    /// Index in `Shared::ms` (Go's `m.id`).
    pub(crate) id: usize,
    /// How the M is woken with a P.
    pub(crate) note: Arc<MNote<Box<P>>>,
    /// Set by sysmon when the M's current poll overran its time slice; read
    /// by the budget (`budget::install_preempt_flag`), cleared by the M when
    /// a new slice starts. Relaxed: it carries no data (budget.rs).
    pub(crate) preempt: AtomicBool,
    /// The P it holds or polls with (`NO_P`), for scheddetail (Relaxed hint).
    pub(crate) curp: AtomicUsize,
    /// Whether it is spinning, for scheddetail (Relaxed hint).
    pub(crate) spinning: AtomicBool,
}

impl MInfo {
    pub(crate) fn new(id: usize, note: Arc<MNote<Box<P>>>) -> Arc<MInfo> {
        Arc::new(MInfo {
            id,
            note,
            preempt: AtomicBool::new(false),
            curp: AtomicUsize::new(NO_P),
            spinning: AtomicBool::new(false),
        })
    }
}

/// The running M's own state; lives on its thread's stack.
pub(crate) struct MCore {
    pub(crate) handle: Handle,
    /// The P this M holds between polls. Borrowed briefly: never across a
    /// poll (during one, the P is parked in its `PSlot`).
    p: RefCell<Option<Box<P>>>,
    spinning: Cell<bool>,
    info: Arc<MInfo>,
    /// Makes the held P's timer heap current for the tasks this M polls.
    timers: RefCell<Option<TimersGuard>>,
    parker: RefCell<Parker>,
    /// The slot and token of the poll in progress (P id), if any.
    polling: Cell<Option<(usize, PollToken)>>,
}

/// The body of an M thread.
pub(crate) fn run(handle: Handle, info: Arc<MInfo>, parker: Parker) {
    let core = MCore {
        handle: handle.clone(),
        p: RefCell::new(None),
        spinning: Cell::new(false),
        info,
        timers: RefCell::new(None),
        parker: RefCell::new(parker),
        polling: Cell::new(None),
    };
    let _enter = context::enter(handle.clone());
    // SAFETY: `core` lives on this stack frame until after `_m` drops (it is
    // declared before and dropped after the guard).
    let _m = unsafe { context::set_current_m(&core) };
    // SAFETY: `core.info` (an Arc held by `core`) outlives the guard, which
    // is dropped first, on this thread.
    let _preempt = unsafe { budget::install_preempt_flag(&core.info.preempt) };
    core.main_loop();
    drop(_preempt);
    drop(_m);
    handle.shared.m_exited();
}

impl MCore {
    fn main_loop(&self) {
        let shared = &self.handle.shared;
        let idle = &shared.idle;
        let first = idle.wait_for_p(&self.info.note, &mut self.parker.borrow_mut(), || {
            shared.next_deadline()
        });
        let Some(got) = first else {
            return;
        };
        self.acquire(got);
        while let Some((task, inherit)) = self.find_runnable() {
            if self.spinning.replace(false) && idle.stop_spinning() {
                idle.wakep();
            }
            self.info.spinning.store(false, Relaxed);
            let mut p = self
                .p
                .borrow_mut()
                .take()
                .expect("gort: M runs a task without a P");
            if !inherit && self.info.preempt.load(Relaxed) {
                // A new time slice: forget sysmon's request for the old one.
                self.info.preempt.store(false, Relaxed);
            }
            p.on_execute(inherit);
            let id = p.id;
            let token = shared.allp[id].enter(p, task.id().as_u64(), self.info.id as u64);
            self.polling.set(Some((id, token)));
            task.run();
            let back = self
                .polling
                .take()
                .and_then(|(id, token)| shared.allp[id].exit(token));
            match back {
                Some(p) => *self.p.borrow_mut() = Some(p),
                None => {
                    // Sysmon handed our P to another M while the poll blocked.
                    self.info.curp.store(NO_P, Relaxed);
                    *self.timers.borrow_mut() = None;
                    let got = idle.acquire_or_stop(
                        &self.info.note,
                        &mut self.parker.borrow_mut(),
                        || shared.next_deadline(),
                    );
                    match got {
                        Some(got) => self.acquire(got),
                        None => break,
                    }
                }
            }
        }
        self.exit();
    }

    /// Takes `p` (handed over by `startm`, or found idle) to run with.
    fn acquire(&self, (p, spinning): (Box<P>, bool)) {
        self.info.curp.store(p.id, Relaxed);
        self.info.spinning.store(spinning, Relaxed);
        self.acquire_p(p, spinning);
        self.handle.shared.sysmon.wake();
    }

    /// `block_in_place` on this M (syscall.rs): the slot and token of the
    /// poll in progress, if the M is inside one and still holds its P.
    pub(crate) fn polling(&self) -> Option<(usize, PollToken)> {
        self.polling.get()
    }

    /// `block_in_place`'s slow path took a different P (or none).
    pub(crate) fn set_polling(&self, polling: Option<(usize, PollToken)>) {
        self.info
            .curp
            .store(polling.map_or(NO_P, |(id, _)| id), Relaxed);
        self.polling.set(polling);
    }

    /// This M's id (Go's `m.id`).
    pub(crate) fn id(&self) -> usize {
        self.info.id
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
                        self.info.spinning.store(true, Relaxed);
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
            self.info.curp.store(NO_P, Relaxed);
            let got = shared.idle.park_m(
                p,
                &self.info.note,
                &mut self.parker.borrow_mut(),
                was_spinning,
                || shared.has_work(),
                || shared.next_deadline(),
            )?;
            self.acquire(got);
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
        let push = |p: &mut P, task: Notified| match hint {
            Hint::Wake => p.push_woken(task, &shared.inject),
            Hint::Yield => p.push_yielded(task, &shared.inject),
        };
        let more = if let Some(p) = guard.as_mut() {
            push(p, task)
        } else {
            drop(guard);
            // Inside a poll the P is parked in its slot: borrow it there,
            // unless sysmon took it (then the global queue).
            let Some((id, token)) = self.polling.get() else {
                return Some(task);
            };
            let mut task = Some(task);
            let pushed = shared.allp[id].borrow(token, |p| {
                push(p, task.take().expect("gort: borrow runs its closure once"))
            });
            match pushed {
                Some(more) => more,
                None => return task,
            }
        };
        if more {
            shared.idle.wakep_local();
        }
        None
    }
}
