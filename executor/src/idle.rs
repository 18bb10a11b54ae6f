//! Idle Ps, idle Ms and spinning Ms: when to wake a thread, and how one sleeps.
//!
//! # Purpose
//! New work must find an M to run it (no lost wakeup), yet waking an M for
//! every spawn would cost a futex call per task and leave threads fighting
//! over one task. Go's rule (proc.go, "Worker thread parking/unparking"):
//! wake an M only when a P is idle and no M is already *spinning* (looking
//! for work with a P in hand); a spinning M that finds work wakes the next.
//!
//! # States
//! - `npidle`: Ps in `pidle` (written under the lock, read lock-free).
//! - `nmspinning`: Ms spinning, plus one reserved by a `wakep` that is about
//!   to start a spinning M (CAS 0 -> 1 in `try_claim_wakeup`).
//! - `Lists::pidle` / `midle`: idle Ps and parked Ms. An M is in `midle`
//!   from `release_p` until `startm` pops it (handing it a P through its
//!   `MNote::nextp`) or until it takes itself out in `reacquire`.
//! - `Lists::shutdown`: false -> true once.
//! - `MNote::in_netpoll`: the idle M sleeps in netpoll rather than on its
//!   parker (it holds the netpoller role, netpoller.rs).
//!
//! # Transitions
//! - work submitter: push work; `wakep`: fence(SeqCst); `npidle == 0` or
//!   `nmspinning != 0` -> nothing; else CAS `nmspinning` 0 -> 1, then
//!   `startm(spinning)` under the lock: pop an idle P and an idle M
//!   (preferring one not in netpoll), write `nextp`, then `wake_m`: unpark
//!   its parker and, if its `in_netpoll` is set, break the netpoll. No P:
//!   undo the claim (`fetch_sub`).
//! - M running out of work (`park_m`): under the lock `pidleput` + put itself
//!   in `midle`; then, if it was spinning, `nmspinning.fetch_sub` (SeqCst);
//!   fence(SeqCst); re-check every queue (`has_work`); work found: `reacquire`
//!   a P; else wait (`m.rs` `stopm`) until `nextp` is written or shutdown.
//! - idle M becoming the netpoller: `begin_netpoll` stores `in_netpoll`
//!   (SeqCst), then looks at `nextp` under the lock; sleeps in the poller
//!   only if it is empty; `end_netpoll` clears the flag.
//! - `kick_one`: the M leaving the netpoller role unparks one idle M on
//!   its parker (no P handed over) so it takes the role.
//! - M finding work while spinning: `stop_spinning` (fetch_sub); if it was
//!   the last spinner the caller calls `wakep` (Go's `resetspinning`).
//!
//! # Ownership
//! - `Lists` (both lists, every `MNote::nextp`, `shutdown`): the `lock`.
//!   `nextp` is written by `startm` and read by its M, both under the lock.
//! - `npidle`: stored under the lock, loaded anywhere (a hint, except in the
//!   StoreLoad pairs below).
//!
//! # Orderings
//! The two mirror-image StoreLoad patterns of Go's header:
//! - `wakep`: (submitter stored work) -> `fence(SeqCst)` -> load `npidle`,
//!   `nmspinning`. `wakep_local` omits the fence: it follows pushes to the
//!   caller's own P, whose M runs that work anyway (only parallelism is at
//!   stake there, as in Go where `runqput` has no StoreLoad barrier either).
//! - `park_m`: store `npidle` (lock) and `nmspinning.fetch_sub(SeqCst)` ->
//!   `fence(SeqCst)` -> load every queue (`has_work`).
//!   With SeqCst fences on both sides, either the submitter sees the idle P
//!   and no spinner (and starts an M), or the parking M sees the work (and
//!   takes a P back). Release/Acquire alone allows both to miss.
//! - `nextp` is handed over under the lock; the parker's permit
//!   (park.rs) orders the unpark after it.
//! - `in_netpoll`: `begin_netpoll` stores it (SeqCst) before taking the
//!   lock to look at `nextp`; `startm` writes `nextp` under the lock, and
//!   `wake_m` loads `in_netpoll` (SeqCst) after releasing it. Either the M's
//!   look comes after the write (it sees the P), or the lock orders its
//!   store before `wake_m`'s load (the poll is broken; netpoll's park.rs
//!   keeps a break sent before the wait).
//!
//! # Rejected alternatives
//! - Waking an M per submitted task (a thundering herd, a syscall per spawn).
//! - No spinning Ms (every burst of work would pay a futex wake latency).
//! - A counter of sleepers without the re-check: loses the wakeup when work
//!   arrives between "queues empty" and "asleep".
//!
//! # Checked by
//! `src/tests/loom_idle.rs`: work submitted while the last spinning M goes
//! idle is run exactly once, and no thread sleeps forever (loom reports a
//! deadlock otherwise); `loom_idle_startm_breaks_the_netpoller`: a P handed
//! to an M entering netpoll is never slept through (mutation-checked:
//! storing `in_netpoll` after the look at `nextp` deadlocks the model).

use gort_netpoll::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*, fence};
use gort_netpoll::loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(all(test, loom))]
use crate::park::Parker;
use crate::park::Unparker;

/// What an M shares with the threads that wake it.
pub(crate) struct MNote<P> {
    unparker: Unparker,
    /// The P (and whether to start spinning) handed over by `startm`;
    /// written and taken under the `Idle` lock.
    nextp: Mutex<Option<(P, bool)>>,
    /// True while this M sleeps in netpoll instead of on its parker (from
    /// `begin_netpoll` to `end_netpoll`): waking it then needs the poller's
    /// break as well. Written by the M only; read by `wake_m` (SeqCst, see
    /// Orderings).
    in_netpoll: AtomicBool,
}

impl<P> MNote<P> {
    pub(crate) fn new(unparker: Unparker) -> Arc<MNote<P>> {
        Arc::new(MNote {
            unparker,
            nextp: Mutex::new(None),
            in_netpoll: AtomicBool::new(false),
        })
    }

    /// The note of a new M started to run `p` (sysmon's `handoffp` when no
    /// idle M exists): its first `wait_for_p` returns `p` at once.
    pub(crate) fn with_nextp(unparker: Unparker, p: P) -> Arc<MNote<P>> {
        Arc::new(MNote {
            unparker,
            nextp: Mutex::new(Some((p, false))),
            in_netpoll: AtomicBool::new(false),
        })
    }

    /// Wakes the M wherever it parks on its parker.
    pub(crate) fn unparker(&self) -> &Unparker {
        &self.unparker
    }

    /// Takes back a P handed over but never picked up (the M failed to start).
    pub(crate) fn take_nextp(&self) -> Option<P> {
        self.nextp.lock().unwrap().take().map(|(p, _)| p)
    }
}

/// What an idle M found when it looked at its note (`take_nextp`).
pub(crate) enum NextP<P> {
    /// `startm` handed it a P (and whether to spin).
    Got((P, bool)),
    /// The runtime is shutting down: exit.
    Shutdown,
    /// Nothing yet: sleep.
    Empty,
}

/// Interrupts the M blocked in netpoll (Go's `netpollBreak`).
pub(crate) type NetpollBreak = Box<dyn Fn() + Send + Sync>;

/// The lists, under one lock (Go's `sched.lock`).
pub(crate) struct Lists<P> {
    pidle: Vec<P>,
    midle: Vec<Arc<MNote<P>>>,
    shutdown: bool,
}

impl<P> Lists<P> {
    /// Takes an idle M for `startm`, preferring one parked on its parker:
    /// breaking the one in netpoll costs a syscall and leaves nobody
    /// watching sockets and timers.
    fn pop_midle(&mut self) -> Option<Arc<MNote<P>>> {
        let pick = self
            .midle
            .iter()
            .rposition(|m| !m.in_netpoll.load(Relaxed))
            .or(self.midle.len().checked_sub(1));
        pick.map(|i| self.midle.remove(i))
    }
}

/// The idle-P/idle-M bookkeeping of one runtime.
pub(crate) struct Idle<P> {
    npidle: AtomicUsize,
    nmspinning: AtomicUsize,
    closed: AtomicBool,
    nprocs: usize,
    lists: Mutex<Lists<P>>,
    /// How to wake an M sleeping in netpoll; `None` in models without one.
    netpoll_break: Option<NetpollBreak>,
}

impl<P> Idle<P> {
    /// `nprocs` Ps of which `ps` are idle, and the parked Ms `ms` (at runtime
    /// start every P is idle and every M parked).
    pub(crate) fn new(nprocs: usize, ps: Vec<P>, ms: Vec<Arc<MNote<P>>>) -> Idle<P> {
        Idle {
            npidle: AtomicUsize::new(ps.len()),
            nmspinning: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            nprocs,
            lists: Mutex::new(Lists {
                pidle: ps,
                midle: ms,
                shutdown: false,
            }),
            netpoll_break: None,
        }
    }

    /// Sets how `wake_m` interrupts an M that sleeps in netpoll.
    pub(crate) fn with_netpoll_break(mut self, netpoll_break: NetpollBreak) -> Idle<P> {
        self.netpoll_break = Some(netpoll_break);
        self
    }

    /// Wakes `m` wherever it sleeps: its parker's permit always (it may be
    /// about to park there), and the netpoll break if it is in netpoll.
    fn wake_m(&self, m: &MNote<P>) {
        m.unparker.unpark();
        // SeqCst: pairs with the store in `begin_netpoll`; see Orderings.
        if m.in_netpoll.load(SeqCst)
            && let Some(netpoll_break) = &self.netpoll_break
        {
            netpoll_break();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lists<P>> {
        self.lists.lock().expect("gort: idle lists poisoned")
    }

    /// Number of Ps.
    pub(crate) fn nprocs(&self) -> usize {
        self.nprocs
    }

    /// Idle Ps (a hint).
    pub(crate) fn npidle(&self) -> usize {
        self.npidle.load(Relaxed)
    }

    /// Idle Ps, read with SeqCst (sysmon's StoreLoad check before sleeping).
    pub(crate) fn npidle_seqcst(&self) -> usize {
        self.npidle.load(SeqCst)
    }

    /// Go's `exitsyscall` slow path: take any idle P, if there is one.
    pub(crate) fn try_take_p(&self) -> Option<P> {
        let mut lists = self.lock();
        if lists.shutdown {
            return None;
        }
        let p = lists.pidle.pop()?;
        self.npidle.store(lists.pidle.len(), SeqCst);
        Some(p)
    }

    /// Spinning Ms (a hint).
    pub(crate) fn nmspinning(&self) -> usize {
        self.nmspinning.load(Relaxed)
    }

    /// Whether shutdown started (checked by Ms at the top of findrunnable).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    /// Go's bound: spinning Ms stay under half the busy Ps. When allowed the
    /// caller becomes a spinner; `start_spinning` counts it.
    pub(crate) fn spinning_allowed(&self) -> bool {
        let busy = self.nprocs.saturating_sub(self.npidle.load(SeqCst));
        2 * self.nmspinning.load(SeqCst) < busy
    }

    /// Counts a new spinning M.
    pub(crate) fn start_spinning(&self) {
        self.nmspinning.fetch_add(1, SeqCst);
    }

    /// A spinning M found work. True when it was the last spinner: the caller
    /// must then `wakep` so that remaining work still has a spinner.
    #[must_use]
    pub(crate) fn stop_spinning(&self) -> bool {
        let prev = self.nmspinning.fetch_sub(1, SeqCst);
        assert!(prev > 0, "gort: nmspinning underflow in stop_spinning");
        prev == 1
    }

    /// Go's `wakep`: start one spinning M if a P is idle and nobody spins.
    /// Called after work was made visible in a queue no running M may look
    /// at again (the global queue, a timer heap).
    pub(crate) fn wakep(&self) {
        // Pairs with the fence in `park_m`: see Orderings.
        fence(SeqCst);
        self.wakep_local();
    }

    /// `wakep` for work pushed to the caller's own P, which the caller's M
    /// runs itself in any case: the wakeup only adds parallelism, so it
    /// skips the StoreLoad fence (a full barrier on every wake and yield, 14%
    /// of yield_many's time). A wakeup missed by this race costs parallelism
    /// until the next wakep, never the work.
    pub(crate) fn wakep_local(&self) {
        if self.npidle.load(SeqCst) == 0 {
            return;
        }
        if self.nmspinning.load(SeqCst) != 0
            || self
                .nmspinning
                .compare_exchange(0, 1, SeqCst, SeqCst)
                .is_err()
        {
            return;
        }
        self.startm_spinning();
    }

    /// Go's `startm(nil, spinning=true)` with the claim already counted in
    /// `nmspinning`.
    fn startm_spinning(&self) {
        let mut lists = self.lock();
        if lists.shutdown {
            drop(lists);
            self.nmspinning.fetch_sub(1, SeqCst);
            return;
        }
        let Some(p) = lists.pidle.pop() else {
            drop(lists);
            // No idle P after all: someone took it and will find the work.
            self.nmspinning.fetch_sub(1, SeqCst);
            return;
        };
        self.npidle.store(lists.pidle.len(), SeqCst);
        let Some(m) = lists.pop_midle() else {
            // Every M holds a P or is between releasing its P and parking
            // (then it is in midle): cannot happen while Ms == Ps.
            lists.pidle.push(p);
            self.npidle.store(lists.pidle.len(), SeqCst);
            drop(lists);
            self.nmspinning.fetch_sub(1, SeqCst);
            return;
        };
        *m.nextp.lock().unwrap() = Some((p, true));
        drop(lists);
        self.wake_m(&m);
    }

    /// Go's "delicate dance" (findRunnable, after the last look for work):
    /// release `p`, stop spinning, re-check every queue (and timer) with
    /// `has_work`, and `wait` until handed a P (`m.rs` `stopm`, or
    /// [`wait_for_p`](Self::wait_for_p)). Returns the P to run with and
    /// whether the M is spinning, or `None` at shutdown.
    pub(crate) fn park_m(
        &self,
        p: P,
        note: &Arc<MNote<P>>,
        was_spinning: bool,
        has_work: impl Fn() -> bool,
        wait: impl FnOnce() -> Option<(P, bool)>,
    ) -> Option<(P, bool)> {
        {
            let mut lists = self.lock();
            if lists.shutdown {
                lists.pidle.push(p);
                return None;
            }
            lists.pidle.push(p);
            self.npidle.store(lists.pidle.len(), SeqCst);
            lists.midle.push(note.clone());
        }
        if was_spinning {
            let prev = self.nmspinning.fetch_sub(1, SeqCst);
            assert!(prev > 0, "gort: nmspinning underflow in park_m");
        }
        // Pairs with the fence in `wakep`: see Orderings. After it, work
        // submitted before a submitter saw `nmspinning == 0` is visible here.
        fence(SeqCst);
        if has_work()
            && let Some(got) = self.reacquire(note, was_spinning)
        {
            return Some(got);
        }
        wait()
    }

    /// Parks an M that is in `midle` on its parker until `startm` hands it
    /// a P, or until shutdown (`None`). Spurious unparks loop. (The Ms of a
    /// runtime use `m.rs`'s `stopm`, which may sleep in netpoll instead.)
    #[cfg(all(test, loom))]
    pub(crate) fn wait_for_p(
        &self,
        note: &Arc<MNote<P>>,
        parker: &mut Parker,
    ) -> Option<(P, bool)> {
        loop {
            match self.take_nextp(note) {
                NextP::Got(got) => return Some(got),
                NextP::Shutdown => return None,
                NextP::Empty => parker.park(),
            }
        }
    }

    /// The P `startm` handed to this M, or shutdown, or nothing yet.
    pub(crate) fn take_nextp(&self, note: &MNote<P>) -> NextP<P> {
        let lists = self.lock();
        if let Some(got) = note.nextp.lock().unwrap().take() {
            return NextP::Got(got);
        }
        if lists.shutdown {
            return NextP::Shutdown;
        }
        NextP::Empty
    }

    /// An idle M (in `midle`) is about to sleep in netpoll: publish that
    /// (so `wake_m` also breaks the poll), then look at the note once more.
    /// Unless this returns `Empty` the M must not sleep (and is no longer
    /// marked in netpoll); otherwise it sleeps and then calls `end_netpoll`.
    pub(crate) fn begin_netpoll(&self, note: &MNote<P>) -> NextP<P> {
        // SeqCst store, then the lock: pairs with `wake_m`'s SeqCst load
        // after `startm` wrote `nextp` under the same lock (see Orderings).
        note.in_netpoll.store(true, SeqCst);
        let next = self.take_nextp(note);
        if !matches!(next, NextP::Empty) {
            note.in_netpoll.store(false, SeqCst);
        }
        next
    }

    /// The M is back from netpoll.
    pub(crate) fn end_netpoll(&self, note: &MNote<P>) {
        note.in_netpoll.store(false, SeqCst);
    }

    /// Wakes one idle M parked on its parker (not the one in netpoll)
    /// without handing it a P, so that it re-evaluates how to sleep: the
    /// M leaving the netpoller role calls this so that someone takes it
    /// over. Returns whether an M was woken.
    pub(crate) fn kick_one(&self) -> bool {
        let m = {
            let lists = self.lock();
            lists
                .midle
                .iter()
                .rev()
                .find(|m| !m.in_netpoll.load(Relaxed))
                .cloned()
        };
        match m {
            Some(m) => {
                m.unparker.unpark();
                true
            }
            None => false,
        }
    }

    /// Work appeared while this M was idle (the dance, or a netpoll that
    /// readied tasks or found a timer due): take a P back (or the one a
    /// `startm` just handed us). A spinning M resumes spinning.
    pub(crate) fn reacquire(&self, note: &Arc<MNote<P>>, was_spinning: bool) -> Option<(P, bool)> {
        let mut lists = self.lock();
        if let Some(got) = note.nextp.lock().unwrap().take() {
            return Some(got);
        }
        let pos = lists.midle.iter().position(|m| Arc::ptr_eq(m, note))?;
        let p = lists.pidle.pop()?;
        self.npidle.store(lists.pidle.len(), SeqCst);
        lists.midle.swap_remove(pos);
        if was_spinning {
            self.nmspinning.fetch_add(1, SeqCst);
        }
        Some((p, was_spinning))
    }

    /// Go's `startm(p, spinning=false)` for a P sysmon took from a blocked M
    /// (`handoffp`): hand `p` to an idle M. `Err(p)` when no M is idle (the
    /// caller starts a new M) or at shutdown (the caller keeps the P idle).
    pub(crate) fn startm_with(&self, p: P) -> Result<(), P> {
        let mut lists = self.lock();
        if lists.shutdown {
            return Err(p);
        }
        let Some(m) = lists.pop_midle() else {
            return Err(p);
        };
        *m.nextp.lock().unwrap() = Some((p, false));
        drop(lists);
        self.wake_m(&m);
        Ok(())
    }

    /// Puts a P nobody runs on the idle list (a handoff with every M busy
    /// and `max_threads` reached; the next M looking for a P takes it).
    pub(crate) fn put_idle_p(&self, p: P) {
        let mut lists = self.lock();
        lists.pidle.push(p);
        self.npidle.store(lists.pidle.len(), SeqCst);
    }

    /// An M whose P was taken while it was blocked (Go's `exitsyscall` slow
    /// path, then `stopm`): take an idle P if there is one (`Got`), else
    /// join `midle` as a spare M (`Empty`: the caller then waits in `stopm`
    /// until `startm` hands it a P). Both choices are made under the lock,
    /// so a P put idle meanwhile is never missed: either we see it, or
    /// `startm` sees us in `midle`.
    pub(crate) fn acquire_or_idle(&self, note: &Arc<MNote<P>>) -> NextP<P> {
        let mut lists = self.lock();
        if lists.shutdown {
            return NextP::Shutdown;
        }
        if let Some(p) = lists.pidle.pop() {
            self.npidle.store(lists.pidle.len(), SeqCst);
            return NextP::Got((p, false));
        }
        lists.midle.push(note.clone());
        NextP::Empty
    }

    /// Parked Ms (Go's `sched.nmidle`), for schedtrace.
    pub(crate) fn nmidle(&self) -> usize {
        self.lock().midle.len()
    }

    /// Shutdown: no more `startm`; every parked M wakes and exits.
    pub(crate) fn shutdown(&self) {
        self.closed.store(true, Release);
        let lists = {
            let mut lists = self.lock();
            lists.shutdown = true;
            lists.midle.clone()
        };
        for m in lists {
            self.wake_m(&m);
        }
    }

    /// An M leaving at shutdown gives its P back (so it is dropped with the
    /// runtime, its runq already drained).
    pub(crate) fn put_p_at_exit(&self, p: P) {
        self.lock().pidle.push(p);
    }

    /// Unparks every M (parked or not); used by shutdown for Ms that were
    /// running when it started and may park later.
    pub(crate) fn unpark_all(&self, notes: &[Arc<MNote<P>>]) {
        for m in notes {
            self.wake_m(m);
        }
    }
}
