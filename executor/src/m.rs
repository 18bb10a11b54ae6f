//! The M: an OS thread that runs a P's tasks (Go's `schedule`, `findRunnable`,
//! `stealWork`, `stopm`).
//!
//! # The loop (`run`)
//! 1. Wait for a P (`stopm`, below): `startm` hands one over.
//! 2. `find_runnable` (below); `None` means shutdown.
//! 3. If the M was spinning it stops, and wakes another spinner if it was the
//!    last one (Go's `resetspinning`): the work it found may not be alone.
//! 4. `execute`: bump `schedtick` unless the task inherits the time slice,
//!    park the P in this M's status slot (`PSlot::enter`, pstatus.rs) and
//!    poll the task. Wakes and spawns from inside the poll reach the P
//!    through `PSlot::borrow`. If the poll blocks past the threshold while
//!    work waits, sysmon takes the P from the slot and hands it to another M.
//! 5. After the poll, `PSlot::exit` returns the P, or reports it gone. A
//!    task that woke itself during its poll (a yield, a spent budget) comes
//!    back from the poll (`Notified::run_yielding`) and goes to the tail of
//!    the runq now, with the P in hand (Go's `goyield`): no `schedule`, no
//!    `borrow`. If the P is gone, the task's bookkeeping is already done
//!    (wakes went to the global queue, and so does the yielded task), so
//!    the M takes an idle P if any, else parks as a spare M
//!    (`Idle::acquire_or_idle`, then `stopm`; Go's `exitsyscall` slow path
//!    and `stopm`).
//!
//! The P moves by value through this loop (`find_runnable` to the slot and
//! back), never through a `RefCell`: per poll the M's own work is the
//! slot's handshake and a few moves (docs/BENCHMARKS.md, "Round sched3").
//!
//! # Search order (`find_runnable`)
//! 1. This P's expired timers (Go's `checkTimers`) and those of the
//!    `block_on` heap: two atomic loads when none is pending, through the
//!    P (`P::timers`) and the M (`MCore::block_on_timers`); the tasks they
//!    wake go to the local runq.
//! 2. Every 61st poll (`P::polls`, p.rs), a batch from the global queue
//!    and a non-blocking netpoll as in step 5 (fairness: a runq that never
//!    drains must not starve remote spawns or sockets).
//! 3. The local runq: `runnext` first (inherits the slice), then the ring.
//! 4. The global queue, a batch: `min(len / nprocs + 1, capacity / 2)`.
//! 5. Netpoll, non-blocking, when a socket is registered, no M is in
//!    netpoll and no poll ended in the last 20 us (`should_poll_now`:
//!    lock-free loads, so no syscall per round for a runtime without
//!    sockets). The readied tasks are collected (below) and placed on the
//!    local runq, one kept to run, without waking a helper (below).
//! 6. Steal: only while spinning Ms stay under half the busy Ps; 4 passes
//!    over the other Ps in a random coprime order, the last pass also taking
//!    `runnext` (after the victim's grace period, queue.rs) and running the
//!    victim's expired timers (Go's `stealWork`).
//! 7. Every P's expired timers: an idle P has no M to run them.
//! 8. Release the P and park (`Idle::park_m`: the "delicate dance" re-check,
//!    which also looks for due timers), then `stopm`.
//!
//! # Waiting without a P (`stopm`)
//! An idle M sits in `midle` until `startm` hands it a P. One idle M holds
//! the netpoller role (netpoller.rs) and blocks in `Driver::poll` until the
//! earliest timer of any P, or, while another M holds a P and polls the
//! sockets itself, sleeps on its parker until that timer (netpoller.rs,
//! "Two ways to wait"); the others park on their parkers, first breaking
//! the poller if their own earliest timer is sooner than its deadline, and
//! waking a timers-only holder if they released the last busy P. The
//! poller returning with readied tasks takes an idle P itself (as it does
//! when a timer is due) and places them on its runq as one batch; with no
//! idle P it pushes them to the global queue as one batch and `wakep`s. An
//! M that leaves the role for a P while timers are pending and other Ms
//! stay idle wakes one of them to take the role over (`leave_idle`); a
//! timer added while nobody holds the role `wakep`s (netpoller.rs), so
//! timers always have a watcher.
//!
//! # Helpers for a netpoll batch
//! Go's `injectglist` starts an M for every idle P when a netpoll returns
//! several goroutines. Here the M that polled keeps the batch: its tasks
//! are usually a few microseconds each (a read, a write), done before a
//! woken thread would be on a CPU, and a second busy thread on a machine
//! whose other cores are taken (by the client of a benchmark, by other
//! services) only shares those cores three ways. `place_readied` records
//! when the batch was placed (`P::backlog`; one clock read per batch);
//! after each poll, while that is set, `check_backlog` forgets it once the
//! runq is empty, or wakes a helper (`wakep_local`) once the batch has
//! waited `HELPER_DELAY`: long tasks still get every P, at most 250 us
//! late. Timer batches wake at once as before: timer precision is worth a
//! wake. Measured with the echo benchmark (2 Ps, client on the same two
//! cores): 50 connections 1.21x tokio with p99 1.3 ms against 4.2 ms
//! (waking at once: 0.96x); test `a_netpoll_batch_of_long_tasks_is_shared_with_a_helper_m`.
//!
//! # Collecting wakes
//! Waking the wakers of a netpoll batch or of expired timers schedules
//! tasks one at a time. While `collecting` is set, `schedule_local` puts
//! them in the M's `batch` instead, and the caller places them at once:
//! onto the local runq (with a P) or into the global queue with one
//! `Inject::push_batch` (without one): one lock round trip per batch, not
//! per task.
//!
//! # Exit
//! At shutdown the M drops what its P still queues (the tasks themselves are
//! cancelled through the owned-tasks list), returns the P and reports.

use std::cell::{Cell, RefCell};
use std::task::Waker;
use std::time::{Duration, Instant};

use gort_netpoll::budget;
use gort_netpoll::loom::sync::Arc;
use gort_netpoll::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crate::context;
use crate::idle::{MNote, NextP};
use crate::metrics::probe::MProbe;
use crate::osthread::MThread;
use crate::p::{GLOBAL_QUEUE_INTERVAL, P};
use crate::park::Parker;
use crate::pstatus::{PSlot, PollToken};
use crate::queue::LOCAL_QUEUE_CAPACITY;
use crate::runtime::Handle;
use crate::scheduler::Shared;
use crate::task::{Hint, Notified};
use crate::time::{self, Timers, TimersGuard};

/// Steal passes over all Ps before giving up (Go's `stealTries`).
const STEAL_TRIES: usize = 4;

/// How long a netpoll batch may wait on its P's runq before the M wakes a
/// helper for it (`check_backlog`). About the time a woken thread takes to
/// start taking a share on a loaded machine: a batch that drains sooner
/// gains nothing from a helper but its wake. Echo benchmark, 50
/// connections, gort/tokio with the delay at 50 / 100 / 200 / 500 us: 1.13
/// / 1.14 / 1.21 / 1.21 (docs/BENCHMARKS.md, branch `echo4`).
const HELPER_DELAY: Duration = Duration::from_micros(250);

/// `MInfo::curp` when the M holds no P.
pub(crate) const NO_P: usize = usize::MAX;

/// What other threads (sysmon, schedtrace, shutdown) know of an M. Lives in
/// `Shared::ms` for the runtime's life.
pub(crate) struct MInfo {
    /// Index in `Shared::ms` (Go's `m.id`).
    pub(crate) id: usize,
    /// How the M is woken with a P.
    pub(crate) note: Arc<MNote<Box<P>>>,
    /// Where sysmon zeroes the budget of the M's current poll when it
    /// overruns its time slice (budget.rs; installed by `run`).
    pub(crate) preempt: budget::PreemptHandle,
    /// The P it holds or polls with (`NO_P`), for scheddetail (Relaxed hint).
    pub(crate) curp: AtomicUsize,
    /// Whether it is spinning, for scheddetail (Relaxed hint).
    pub(crate) spinning: AtomicBool,
    /// Where the M parks its P during a poll, and sysmon takes it from
    /// (pstatus.rs). Per M, not per P: see pstatus.rs' Ownership.
    pub(crate) slot: PSlot<Box<P>>,
    /// The OS's ids of the M's thread, for sysmon's preemption grace
    /// (osthread.rs; recorded by `run`).
    pub(crate) thread: MThread,
}

impl MInfo {
    pub(crate) fn new(id: usize, note: Arc<MNote<Box<P>>>) -> Arc<MInfo> {
        Arc::new(MInfo {
            id,
            note,
            preempt: budget::PreemptHandle::new(),
            curp: AtomicUsize::new(NO_P),
            spinning: AtomicBool::new(false),
            slot: PSlot::new(),
            thread: MThread::new(),
        })
    }
}

/// The running M's own state; lives on its thread's stack.
pub(crate) struct MCore {
    pub(crate) handle: Handle,
    /// The P this M holds, between `acquire` and the loop of `main_loop`
    /// (and at `exit`). The loop itself passes the P by value, from
    /// `find_runnable` to the `PSlot` for the poll and back, with no
    /// borrow flag and no store here per poll; a wake on this thread that
    /// finds the P neither here nor in the slot (inside `find_runnable`,
    /// where wakes are `collecting` anyway, or after a retake) goes to the
    /// global queue (`schedule_local`).
    p: Cell<Option<Box<P>>>,
    spinning: Cell<bool>,
    info: Arc<MInfo>,
    parker: RefCell<Parker>,
    /// Makes the held P's timers current for `Sleep` (time/context.rs);
    /// set and cleared with `p` (`set_p`).
    timers: RefCell<Option<TimersGuard>>,
    /// While set, `schedule_local` appends to `batch` (see the module doc).
    collecting: Cell<bool>,
    batch: RefCell<Vec<Notified>>,
    /// Wakers returned by netpoll, reused between polls.
    ready: RefCell<Vec<Waker>>,
    /// The `block_on` heap (`Shared::block_on_timers`), checked before
    /// every poll: kept here so that the check is one load.
    block_on_timers: Arc<Timers>,
    /// DIAG: poll counting, sampling and the execution trace (metrics/probe.rs).
    probe: MProbe,
}

/// The body of an M thread.
pub(crate) fn run(handle: Handle, info: Arc<MInfo>, parker: Parker) {
    let core = MCore {
        handle: handle.clone(),
        p: Cell::new(None),
        spinning: Cell::new(false),
        probe: MProbe::new(info.id),
        info,
        parker: RefCell::new(parker),
        timers: RefCell::new(None),
        collecting: Cell::new(false),
        batch: RefCell::new(Vec::new()),
        ready: RefCell::new(Vec::new()),
        block_on_timers: handle.shared.block_on_timers().clone(),
    };
    core.info.thread.record_current();
    let _enter = context::enter(handle.clone());
    let _netpoll = gort_netpoll::enter(handle.shared.netpoller.handle().clone());
    // SAFETY: `core` lives on this stack frame until after `_m` drops (it is
    // declared before and dropped after the guard).
    let _m = unsafe { context::set_current_m(&core) };
    // SAFETY: `core.info` (an Arc held by `core`) outlives the guard, which
    // is dropped first, on this thread.
    let _preempt = unsafe { core.info.preempt.install() };
    core.main_loop();
    drop(_preempt);
    drop(_m);
    handle.shared.m_exited();
}

impl MCore {
    fn main_loop(&self) {
        let shared = &self.handle.shared;
        let idle = &shared.idle;
        let Some(got) = self.stopm() else {
            return;
        };
        self.acquire(got);
        // The P goes from find_runnable to the slot and back by value; it is
        // in `self.p` only at the edges (acquire, exit).
        let mut held = self.p.take().expect("gort: acquire holds a P");
        loop {
            let Some((mut p, task, inherit)) = self.find_runnable(held) else {
                break;
            };
            if self.spinning.replace(false) {
                self.info.spinning.store(false, Relaxed);
                if idle.stop_spinning() {
                    idle.wakep();
                }
            }
            p.on_execute(inherit);
            let id = p.id;
            // The token is read back from the slot after the poll
            // (`current`): `block_in_place` may have replaced it.
            let _ = self.info.slot.enter(p, task.id().as_u64());
            // The task comes back if it woke itself during the poll (a
            // yield): it is queued below with the P in hand, not through
            // `schedule_local` and the slot's `borrow`.
            let yielded = self.probe.poll(task, &shared.diag, id); // DIAG: polls the task
            let back = self.info.slot.exit_current();
            match back {
                Some(mut p) => {
                    if let Some(task) = yielded {
                        self.probe.woken(task.header()); // DIAG
                        if p.push_yielded(task, &shared.inject) {
                            idle.wakep_local();
                        }
                    }
                    if let Some(since) = p.backlog {
                        self.check_backlog(&mut p, since);
                    }
                    held = p;
                }
                None => {
                    // Sysmon handed our P to another M while the poll blocked.
                    if let Some(task) = yielded
                        && shared.inject.push(task).is_ok()
                    {
                        idle.wakep();
                    }
                    self.info.curp.store(NO_P, Relaxed);
                    self.set_p(None);
                    let got = match idle.acquire_or_idle(&self.info.note) {
                        NextP::Got(got) => Some(got),
                        NextP::Shutdown => None,
                        NextP::Empty => self.stopm(),
                    };
                    let Some(got) = got else {
                        break;
                    };
                    self.acquire(got);
                    held = self.p.take().expect("gort: acquire holds a P");
                }
            }
        }
        self.exit();
    }

    /// Takes `p` (handed over by `startm`, or found idle) to run with.
    fn acquire(&self, (p, spinning): (Box<P>, bool)) {
        self.info.curp.store(p.id, Relaxed);
        self.info.spinning.store(spinning, Relaxed);
        self.set_p(Some(p));
        self.spinning.set(spinning);
        self.handle.shared.sysmon.wake();
    }

    /// `block_in_place` on this M (syscall.rs): the poll in progress, if the
    /// M is inside one and still holds its P.
    pub(crate) fn polling(&self) -> Option<PollToken> {
        self.info.slot.current()
    }

    /// `block_in_place`'s slow path (syscall.rs) took P `p` for the rest of
    /// the poll, or none. The timers follow (as in `set_p`): a `Sleep` made
    /// in the rest of the poll, and every task this M polls with `p` after
    /// it, registers with `p`'s heap. Without a P, with the `block_on`
    /// heap, which every M checks and sysmon watches (sysmon.rs). Taking a
    /// P wakes sysmon, as `acquire` does.
    pub(crate) fn took_p_in_poll(&self, p: Option<usize>) {
        let shared = &self.handle.shared;
        self.info.curp.store(p.unwrap_or(NO_P), Relaxed);
        if p.is_some() {
            shared.sysmon.wake();
        }
        self.probe.p_changed(&shared.diag, p); // DIAG
        self.switch_timers(Some(p.map_or_else(
            || shared.block_on_timers().clone(),
            |id| shared.timers[id].clone(),
        )));
    }

    /// Makes `timers` (or none) the heap that this thread's sleeps register
    /// with. The old guard drops first: guards restore what they replaced.
    fn switch_timers(&self, timers: Option<Arc<Timers>>) {
        *self.timers.borrow_mut() = None;
        *self.timers.borrow_mut() = timers.map(time::enter);
    }

    /// This M's status slot (pstatus.rs).
    pub(crate) fn slot(&self) -> &PSlot<Box<P>> {
        &self.info.slot
    }

    fn exit(&self) {
        let idle = &self.handle.shared.idle;
        if self.spinning.replace(false) {
            let _ = idle.stop_spinning();
        }
        if let Some(mut p) = self.take_p() {
            p.drain();
            idle.put_p_at_exit(p);
        }
    }

    /// Holds `p` (or none), making its timers the current ones.
    fn set_p(&self, p: Option<Box<P>>) {
        self.probe
            .p_changed(&self.handle.shared.diag, p.as_ref().map(|p| p.id)); // DIAG
        self.switch_timers(p.as_ref().map(|p| self.handle.shared.timers[p.id].clone()));
        self.p.set(p);
    }

    /// Releases the held P (if any): the inverse of `set_p`.
    fn take_p(&self) -> Option<Box<P>> {
        self.release_p();
        self.p.take()
    }

    /// What `take_p` does besides taking the P out of `self.p`.
    fn release_p(&self) {
        self.probe.p_changed(&self.handle.shared.diag, None); // DIAG
        self.switch_timers(None);
    }

    /// Go's `findRunnable` on the held P `p`: the P to run with (another
    /// one if the M parked meanwhile) and a task (`true`: it inherits the
    /// time slice). `None` at shutdown, the P (if any) left in `self.p`
    /// for `exit`.
    fn find_runnable(&self, mut p: Box<P>) -> Option<(Box<P>, Notified, bool)> {
        loop {
            if self.handle.shared.idle.is_closed() {
                self.p.set(Some(p));
                return None;
            }
            if let Some((task, inherit)) = self.find_with(&mut p) {
                return Some((p, task, inherit));
            }
            // Nothing anywhere: release the P and park (the delicate dance).
            let shared = &self.handle.shared;
            self.release_p();
            let was_spinning = self.spinning.replace(false);
            self.info.curp.store(NO_P, Relaxed);
            self.probe.park(false); // DIAG
            let got = shared.idle.park_m(
                p,
                &self.info.note,
                was_spinning,
                || shared.has_work(),
                || self.stopm(),
            )?;
            self.probe.park(true); // DIAG
            self.acquire(got);
            p = self.p.take().expect("gort: acquire holds a P");
        }
    }

    /// Steps 1-7 of the search order (module doc) on the held P `p`. Steps
    /// 1 and 3 (and the test of step 2) are the per-poll path, inlined into
    /// the M's loop; the rest is `find_elsewhere`.
    #[inline]
    fn find_with(&self, p: &mut P) -> Option<(Notified, bool)> {
        let shared = &self.handle.shared;
        // This P's heap and the block_on heap (which no P owns): a load
        // each while no timer is pending.
        if p.timers.next_deadline().is_some() {
            self.run_timers(p, &shared.timers[p.id]);
        }
        if self.block_on_timers.next_deadline().is_some() {
            self.run_timers(p, &self.block_on_timers);
        }
        if p.polls % GLOBAL_QUEUE_INTERVAL == 0
            && let Some(task) = self.fairness_check(p)
        {
            return Some((task, false));
        }
        if let Some(found) = p.runq.pop() {
            return Some(found);
        }
        self.find_elsewhere(p)
    }

    /// Step 2: every 61st poll, the global queue and netpoll first.
    #[inline(never)]
    fn fairness_check(&self, p: &mut P) -> Option<Notified> {
        let shared = &self.handle.shared;
        if !shared.inject.is_empty()
            && let Some(task) = self.global_batch(p)
        {
            return Some(task);
        }
        // The same fairness for I/O: a P whose runq never drains would
        // otherwise leave ready sockets unpolled until another M goes idle
        // (or sysmon polls).
        if shared.netpoller.should_poll_now() {
            self.netpoll_into_runq(p);
        }
        None
    }

    /// Steps 4-7: the local runq is empty.
    #[inline(never)]
    fn find_elsewhere(&self, p: &mut P) -> Option<(Notified, bool)> {
        let shared = &self.handle.shared;
        if !shared.inject.is_empty()
            && let Some(task) = self.global_batch(p)
        {
            return Some((task, false));
        }
        if shared.netpoller.should_poll_now()
            && self.netpoll_into_runq(p) > 0
            && let Some((task, _)) = p.runq.pop()
        {
            return Some((task, false));
        }
        if self.spinning.get() || shared.idle.spinning_allowed() {
            if !self.spinning.replace(true) {
                shared.idle.start_spinning();
                self.info.spinning.store(true, Relaxed);
            }
            if let Some(task) = self.steal_work(p) {
                return Some((task, false));
            }
        }
        for timers in shared.timers.iter() {
            self.run_timers(p, timers);
        }
        p.runq.pop()
    }

    /// Runs `f` with wakes of this runtime's tasks on this thread collected
    /// into `batch` instead of queued one by one.
    fn collecting<R>(&self, f: impl FnOnce() -> R) -> R {
        let prev = self.collecting.replace(true);
        let out = f();
        self.collecting.set(prev);
        out
    }

    /// Moves the collected tasks to the tail of `p`'s runq (overflow to the
    /// global queue); `wakep` when another M could take some. Returns how
    /// many were placed.
    fn place_batch(&self, p: &mut P) -> usize {
        let n = self.place(p);
        if n > 1 {
            // Our own runq: this M runs them anyway (idle.rs, `wakep_local`).
            self.handle.shared.idle.wakep_local();
        }
        n
    }

    /// `place_batch` for the tasks a netpoll readied: no helper M now.
    /// The P notes when (`P::backlog`), and the M wakes a helper only if
    /// they are still queued `HELPER_DELAY` later (`check_backlog`). See
    /// "Helpers for a netpoll batch" in the module doc.
    fn place_readied(&self, p: &mut P) -> usize {
        let n = self.place(p);
        if n > 1 && p.backlog.is_none() && self.handle.shared.idle.npidle() > 0 {
            p.backlog = Some(Instant::now());
        }
        n
    }

    /// Moves the collected tasks to the tail of `p`'s runq (overflow to
    /// the global queue). Returns how many.
    fn place(&self, p: &mut P) -> usize {
        let shared = &self.handle.shared;
        let mut batch = self.batch.borrow_mut();
        let n = batch.len();
        for task in batch.drain(..) {
            p.runq.push_back(task, &shared.inject);
        }
        n
    }

    /// After a poll, while a netpoll batch waits without a helper
    /// (`place_readied`): forget it once the runq is empty; wake a helper
    /// once it has waited `HELPER_DELAY`.
    #[inline(never)]
    fn check_backlog(&self, p: &mut P, since: Instant) {
        if p.runq.is_empty() {
            p.backlog = None;
        } else if since.elapsed() >= HELPER_DELAY {
            p.backlog = None;
            self.handle.shared.idle.wakep_local();
        }
    }

    /// Fires `timers`' expired entries; their tasks go onto `p`'s runq.
    /// One atomic load and no clock read when the heap is empty.
    fn run_timers(&self, p: &mut P, timers: &Timers) -> usize {
        let Some(next) = timers.next_deadline() else {
            return 0;
        };
        let now = Instant::now();
        if next > now {
            return 0;
        }
        self.collecting(|| timers.run_expired(now));
        self.place_batch(p)
    }

    /// A non-blocking netpoll: the readied tasks go onto `p`'s runq as one
    /// batch. Returns how many.
    fn netpoll_into_runq(&self, p: &mut P) -> usize {
        let shared = &self.handle.shared;
        let mut ready = self.ready.borrow_mut();
        let t0 = self.probe.netpoll_start(); // DIAG
        if let Err(e) = shared.netpoller.poll_now(&mut ready) {
            tracing::warn!(error = %e, "gort: non-blocking netpoll failed");
        }
        self.probe.netpoll_done(&shared.diag, t0, ready.len()); // DIAG
        if ready.is_empty() {
            return 0;
        }
        self.collecting(|| ready.drain(..).for_each(Waker::wake));
        drop(ready);
        self.place_readied(p)
    }

    /// Go's `stopm` with the blocking netpoll of `findRunnable`: waits, in
    /// `midle` and holding no P, until handed a P (`None` at shutdown). See
    /// "Waiting without a P" in the module doc.
    fn stopm(&self) -> Option<(Box<P>, bool)> {
        let shared = &self.handle.shared;
        let (idle, np) = (&shared.idle, &shared.netpoller);
        let mut held_role = false;
        // Timers were due but no P was idle: every P's M runs its own heap
        // (and the block_on heap) in findrunnable, so the poll must not
        // keep returning at once for them (a busy loop for as long as a
        // task runs).
        let mut skip_due = false;
        loop {
            match idle.take_nextp(&self.info.note) {
                NextP::Got(got) => return Some(self.leave_idle(got, held_role)),
                NextP::Shutdown => return None,
                NextP::Empty => {}
            }
            if !np.try_claim() {
                if np.is_claimed() {
                    // The poller watches every P's timers; ours may have
                    // become earlier than its deadline since it computed it.
                    np.break_if_later(shared.earliest_timer());
                    // If that holder waits for timers only and we released
                    // the last busy P, nobody polls the sockets now.
                    np.wake_timers_only_holder(|| idle.npidle_seqcst() == idle.nprocs());
                    self.probe.flush(); // DIAG: nothing buffered while asleep
                    self.parker.borrow_mut().park();
                }
                continue;
            }
            held_role = true;
            let earliest = || match skip_due {
                false => shared.earliest_timer(),
                true => shared.earliest_timer_after(Instant::now()),
            };
            // While another M holds a P it polls the sockets between its
            // tasks: wait for timers only (netpoller.rs, "Two ways to
            // wait"), so that readiness does not wake a second thread.
            let timers_only = np.choose_timers_only(self.info.note.unparker(), || {
                idle.npidle_seqcst() < idle.nprocs()
            });
            let next = match timers_only {
                true => idle.take_nextp(&self.info.note),
                false => idle.begin_netpoll(&self.info.note),
            };
            if !matches!(next, NextP::Empty) {
                if timers_only {
                    np.end_timers_only();
                }
                np.release();
                return match next {
                    NextP::Got(got) => Some(self.leave_idle(got, true)),
                    _ => None,
                };
            }
            self.probe.flush(); // DIAG: nothing buffered while asleep
            if timers_only {
                np.wait_timers(earliest, &mut self.parker.borrow_mut());
                np.release();
                let due = shared.has_expired_timers();
                if due && let Some(got) = idle.reacquire(&self.info.note, false) {
                    return Some(self.leave_idle(got, true));
                }
                skip_due = due;
                continue;
            }
            let mut ready = self.ready.borrow_mut();
            let t0 = self.probe.netpoll_start(); // DIAG
            let polled = np.block(earliest, &mut ready);
            self.probe.netpoll_done(&shared.diag, t0, ready.len()); // DIAG
            idle.end_netpoll(&self.info.note);
            np.release();
            if let Err(e) = polled {
                tracing::warn!(error = %e, "gort: blocking netpoll failed");
            }
            self.collecting(|| ready.drain(..).for_each(Waker::wake));
            drop(ready);
            // Go's findRunnable after netpoll: take an idle P and run the
            // readied tasks on it (one batch on the local runq; a helper
            // M only if they outlast `HELPER_DELAY`, `place_readied`).
            let readied = !self.batch.borrow().is_empty();
            let due = shared.has_expired_timers();
            if (readied || due)
                && let Some(mut got) = idle.reacquire(&self.info.note, false)
            {
                self.place_readied(&mut got.0);
                return Some(self.leave_idle(got, true));
            }
            skip_due = due;
            if readied {
                // No idle P: the running Ms take them from the global queue.
                let mut batch = self.batch.borrow_mut();
                shared.inject.push_batch(batch.drain(..));
                drop(batch);
                idle.wakep();
            }
        }
    }

    /// The M leaves `stopm` with a P. If it held the netpoller role while
    /// timers are pending and other Ms stay idle, one of them takes the
    /// role over, so that those timers keep a watcher. (Sockets do not
    /// need one: the running Ms poll without blocking whenever their runq
    /// runs dry, and sysmon polls when nobody has for 10 ms; waking an M
    /// for them on every exit from netpoll doubled the context switches of
    /// the echo benchmark.)
    fn leave_idle(&self, got: (Box<P>, bool), held_role: bool) -> (Box<P>, bool) {
        let shared = &self.handle.shared;
        if held_role && shared.idle.npidle() > 0 && shared.earliest_timer().is_some() {
            shared.idle.kick_one();
        }
        got
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
                if steal_runnext
                    && self.run_timers(p, &shared.timers[victim]) > 0
                    && let Some((task, _)) = p.runq.pop()
                {
                    return Some(task);
                }
                let before = p.runq.len(); // DIAG
                if let Some(task) = shared.stealers[victim].steal_into(&mut p.runq, steal_runnext) {
                    let n = p.runq.len().saturating_sub(before) + 1;
                    self.probe.steal(&shared.diag, p.id, victim, n); // DIAG
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
    #[inline]
    pub(crate) fn schedule_local(&self, task: Notified, hint: Hint) -> Option<Notified> {
        let shared = &self.handle.shared;
        self.probe.woken(task.header()); // DIAG: sampled schedule latency
        if self.collecting.get() {
            self.batch.borrow_mut().push(task);
            return None;
        }
        if hint != Hint::Wake {
            // A yield reaches `schedule` only from `Notified::run` (the M
            // queues its own tasks' yields itself: main_loop).
            return self.schedule_other(task, hint);
        }
        // The common case: the running task wakes or spawns one. Inside a
        // poll the P is parked in the slot: borrow it there.
        let more = match self
            .info
            .slot
            .borrow(task, |p, task| p.push_woken(task, &shared.inject))
        {
            Ok(more) => more,
            Err(task) => return self.schedule_other(task, hint),
        };
        if more {
            shared.idle.wakep_local();
        }
        None
    }

    /// `schedule_local` for a yield, outside a poll, or after sysmon took
    /// the P: the P parked in the slot, else the P in `self.p` if it is
    /// there (only between `acquire` and the loop taking it, where nothing
    /// wakes tasks today: a guard for future callers). Otherwise the task
    /// is returned for the global queue.
    #[cold]
    #[inline(never)]
    fn schedule_other(&self, task: Notified, hint: Hint) -> Option<Notified> {
        let shared = &self.handle.shared;
        let task = match self
            .info
            .slot
            .borrow(task, |p, task| push(p, task, hint, shared))
        {
            Ok(more) => {
                if more {
                    shared.idle.wakep_local();
                }
                return None;
            }
            Err(task) => task,
        };
        let Some(mut p) = self.p.take() else {
            return Some(task);
        };
        let more = push(&mut p, task, hint, shared);
        self.p.set(Some(p));
        if more {
            shared.idle.wakep_local();
        }
        None
    }
}

/// Queues `task` on `p` as `hint` says; true when another M could take work.
#[inline]
fn push(p: &mut P, task: Notified, hint: Hint, shared: &Shared) -> bool {
    match hint {
        Hint::Wake => p.push_woken(task, &shared.inject),
        Hint::Yield => p.push_yielded(task, &shared.inject),
    }
}
