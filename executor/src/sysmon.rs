//! sysmon: the monitor thread that keeps one blocked task from stalling the
//! tasks behind it (Go's `sysmon`, `retake`, `handoffp`), and schedtrace.
//!
//! # Purpose
//! A future that blocks its thread inside `poll` cannot be interrupted. One
//! thread per runtime, holding no P, watches every M's status slot
//! (pstatus.rs): a P whose M stays inside *one* poll past
//! `Builder::blocking_threshold` (10 ms) while work waits for it is taken
//! from that M and handed to an idle or a new M, so the queued tasks run.
//! The same watch asks overrunning polls to yield through the budget (time
//! slice), polls the network when nobody did for 10 ms, and
//! prints `GORT_DEBUG=schedtrace` lines.
//!
//! # States
//! - Per M, sysmon's own record (`PRecord`, sysmon-private): the slot word
//!   it saw, when it first saw it, and when it first zeroed that poll's
//!   budget. Equal words on two ticks mean the same poll is still running
//!   (the word carries a poll sequence number).
//!   Sysmon keeps its own copy of `Shared::ms` (append-only), refreshed
//!   when its length changes.
//! - `SysmonShared::sleeping`: false -> true when sysmon parks with every P
//!   idle and no schedtrace due (Go's `sysmonwait`); true -> false by the
//!   first M to acquire a P (`wake`). Sysmon parks so only once every P has
//!   looked idle at each of its ticks for `IDLE_BEFORE_SLEEP` (`Quiet`).
//! - Delay: 20 us after a tick that did something; after 50 idle ticks it
//!   doubles each tick up to 10 ms (Go's numbers), capped at 2 ms while any P
//!   is busy so that a blocked poll is seen within threshold + 2 ms. Woken
//!   from the deep sleep, it starts at 2 ms (not Go's 20 us: see `run`).
//!
//! # Transitions (per tick, for each M)
//! 1. Load the slot word. Not `POLLING`/`SYSCALL`: forget the record.
//! 2. A new word: record it with the time now.
//! 3. `POLLING`, the same word for >= 10 ms, or past `blocking_threshold`
//!    while work waits (the P's runq/runnext or an expired timer of its
//!    heap; with no idle P, the global queue or an expired `block_on`
//!    timer): zero the M's budget (`PreemptHandle::preempt`; its next gort
//!    leaf future yields, budget.rs), again on every later tick of the same
//!    poll (the M's own budget stores may overwrite a zero). Go preempts a
//!    running P; it never hands one off.
//! 4. Handoff, when work waits and the word is still the same: for
//!    `POLLING`, past `blocking_threshold`, once the preempted poll has had
//!    its chance to yield and did not (`Preempted::ignored`): 1 ms
//!    (`PREEMPT_GRACE`) after step 3, its thread has used that much CPU
//!    since (it ignores the budget) or sleeps in the kernel (blocked); a
//!    thread the OS kept from a CPU is given up to `blocking_threshold`
//!    more (osthread.rs); for `SYSCALL`, past 20 us (Go's one tick), or
//!    past 10 ms with no work (Go's rule). `PSlot::retake` (claim, membarrier,
//!    and the P only if the word is still the one seen), warn, and
//!    `handoff`: an idle M (`Idle::startm_with`), else a new M if under
//!    `max_threads`, else the idle list.
//!
//! # Ownership
//! `PRecord`s, the delay and the trace clock are locals of the sysmon
//! thread. A retaken P is sysmon's until `handoff` gives it away.
//!
//! # Orderings
//! - The P's hand-over is pstatus.rs' handshake (`retake`'s Acquire load
//!   pairs with `PSlot::enter`'s Release store), then idle.rs' lock
//!   (`startm_with` -> `wait_for_p`), or the spawn of the new M's thread.
//! - `sleeping`: sysmon stores true (SeqCst) then re-reads `npidle` (SeqCst);
//!   `wake` runs after an M took a P (idle.rs stores `npidle` SeqCst under
//!   the lock) and swaps `sleeping` (SeqCst): either sysmon sees the busy P
//!   or the M sees `sleeping` and unparks it; the parker keeps the permit.
//! - The racy loads (queue lengths, `npidle`) are hints, as in Go's `retake`:
//!   a wrong guess costs one handoff or one tick of delay, never safety.
//!
//! # Rejected alternatives
//! - Timing every poll on the M: two clock reads per poll; sysmon's
//!   sequence comparison costs the M two plain stores (pstatus.rs).
//! - Handing off every long poll, work or not: a lone CPU-bound task would
//!   make sysmon start Ms that find nothing to do.
//! - Preempting and handing off at the same tick (until branch `sysfix`):
//!   a task that yields on its budget, preempted at 10 ms, lost its P at
//!   that same tick, so a new M started (threads=3 with one worker) for a
//!   task about to yield; `a_preempted_poll_yields_instead_of_losing_its_p`
//!   counted a handoff for each of its hog's 20 preempted polls.
//! - A grace in wall time alone: under load the OS keeps the preempted M
//!   from a CPU for milliseconds, and the same test, with three CPU
//!   spinners beside it, still counted 6-18 handoffs in 20 polls (0-7 with
//!   four spinners once the thread's CPU clock and run state decide).
//! - Sleeping a fixed 10 ms: a blocked poll would then stall its P's queue
//!   for up to 30 ms; 20 us while busy is Go's compromise.
//! - Parking at the first tick that sees every P idle (as Go's sysmon
//!   does; Go wakes it on `entersyscall`, gort on every P acquisition): a
//!   loaded server's Ps all go idle for a moment between netpoll batches,
//!   so sysmon parked and was unparked (a futex wake on the M's path to its
//!   tasks, and a context switch) hundreds of times a second. Echo
//!   benchmark, 500 connections: 0.059 futex calls per message before,
//!   0.011 after (docs/BENCHMARKS.md).
//!
//! # Checked by
//! `src/tests/loom_handoff.rs` (the P moves between Ms without ever being
//! held by two; no task lost or run twice), and the integration tests in
//! `tests/sysmon.rs` (50 tickers keep ticking while one task blocks 500 ms;
//! a hog that yields on its budget is preempted, not handed off:
//! `a_preempted_poll_yields_instead_of_losing_its_p`);
//! `src/tests/exitsyscall.rs` (an expired `block_on` timer counts as
//! waiting work; exitsyscall's P acquisition wakes a sleeping sysmon).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use gort_netpoll::loom::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};

use gort_netpoll::loom::sync::Arc;

use crate::m::{MInfo, NO_P};
use crate::membarrier;
use crate::p::P;
use crate::park::{Parker, Unparker};
use crate::pstatus::{self, POLLING, RUNNING, SYSCALL};
use crate::runtime::Handle;

/// Go's `forcePreemptNS`: a poll running longer than this is asked to yield.
const TIME_SLICE: Duration = Duration::from_millis(10);
/// The chance a poll whose budget sysmon zeroed has to return before sysmon
/// treats it as blocked and hands its P off (`Preempted::ignored`). A
/// cooperative task yields at its next gort leaf future, microseconds after
/// the zero (the hog of `tests/sysmon.rs`'
/// `a_preempted_poll_yields_instead_of_losing_its_p` spends 200 us between
/// leaves); one still running after 1 ms of CPU, or asleep 1 ms after the
/// zero, is blocked, and the wait adds only that to a blocked poll's
/// handoff.
const PREEMPT_GRACE: Duration = Duration::from_millis(1);
/// Go's threshold for taking the P of an M in a syscall when work waits: one
/// sysmon tick. Applies to `block_in_place`.
const SYSCALL_THRESHOLD: Duration = Duration::from_micros(20);
/// Go's rule: a syscall longer than this loses its P even if no work waits
/// yet (timers may fire, tasks be woken).
const SYSCALL_MAX: Duration = Duration::from_millis(10);
/// Go's sysmon delays: 20 us while busy, doubling after 50 idle ticks, at
/// most 10 ms.
const MIN_DELAY: Duration = Duration::from_micros(20);
const MAX_DELAY: Duration = Duration::from_millis(10);
const IDLE_TICKS_BEFORE_BACKOFF: u32 = 50;
/// Go's sysmon polls the network when nobody has for this long.
const NETPOLL_PERIOD: Duration = Duration::from_millis(10);
/// The same while an idle M waits for timers only and a busy M is the only
/// one polling sockets: bounds how long readiness waits behind its long
/// polls (plus one tick, at most `BUSY_MAX_DELAY` while a P is busy).
const TIMERS_ONLY_NETPOLL_PERIOD: Duration = Duration::from_millis(1);
/// Cap on the delay while some P is busy: bounds how late a blocked poll is
/// noticed (threshold + this) without sysmon waking 50,000 times a second.
const BUSY_MAX_DELAY: Duration = Duration::from_millis(2);
/// Sysmon parks until an M takes a P only after every P has looked idle at
/// each of its ticks for this long (see `Quiet`). An idle runtime pays about
/// ten 2 ms ticks for it, once.
pub(crate) const IDLE_BEFORE_SLEEP: Duration = Duration::from_millis(20);

/// `GORT_DEBUG` settings, Go's `GODEBUG=schedtrace=X,scheddetail=1`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DebugConfig {
    /// Print a schedtrace line this often.
    pub(crate) schedtrace: Option<Duration>,
    /// Add a line per P and per M.
    pub(crate) scheddetail: bool,
    /// Print the task dump on SIGQUIT (dump.rs).
    pub(crate) sigquit: bool,
}

impl DebugConfig {
    /// Parses `key=value` pairs separated by commas. Unknown keys are an
    /// error (a typo would otherwise silently disable the trace).
    pub(crate) fn parse(s: &str) -> Result<DebugConfig, String> {
        let mut cfg = DebugConfig::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {item:?}"))?;
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{key}: expected a non-negative integer, got {value:?}"))?;
            match key.trim() {
                "schedtrace" => cfg.schedtrace = (n > 0).then(|| Duration::from_millis(n)),
                "scheddetail" => cfg.scheddetail = n != 0,
                "sigquit" => cfg.sigquit = n != 0,
                other => {
                    return Err(format!(
                        "unknown setting {other:?} (known: schedtrace, scheddetail, sigquit)"
                    ));
                }
            }
        }
        Ok(cfg)
    }
}

/// What the Ms share with sysmon.
pub(crate) struct SysmonShared {
    unparker: Unparker,
    sleeping: AtomicBool,
    /// Time zero of schedtrace.
    pub(crate) start: Instant,
}

impl SysmonShared {
    pub(crate) fn new(unparker: Unparker) -> SysmonShared {
        SysmonShared {
            unparker,
            sleeping: AtomicBool::new(false),
            start: Instant::now(),
        }
    }

    /// Called after an M acquired a P: wakes sysmon from its deep sleep.
    #[inline]
    pub(crate) fn wake(&self) {
        if self.sleeping.load(Relaxed) && self.sleeping.swap(false, SeqCst) {
            crate::metrics::since::advance(); // DIAG: no tick ran while asleep
            self.unparker.unpark();
        }
    }

    /// Whether sysmon is in its deep sleep (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_sleeping(&self) -> bool {
        self.sleeping.load(SeqCst)
    }

    /// Shutdown: ends sysmon's sleep so it sees the runtime closed.
    pub(crate) fn wake_for_shutdown(&self) {
        self.sleeping.store(false, SeqCst);
        self.unparker.unpark();
    }
}

/// Since when every P has looked idle at sysmon's ticks: the hysteresis
/// before sysmon's deep sleep (`IDLE_BEFORE_SLEEP`, and "Rejected
/// alternatives" in the module doc). Sampled, not exact: a P busy only
/// between two ticks goes unseen, which costs at most one early sleep.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Quiet {
    since: Option<Instant>,
}

impl Quiet {
    /// Records one tick's view: whether every P was idle at `now`.
    pub(crate) fn observe(&mut self, all_idle: bool, now: Instant) {
        if !all_idle {
            self.since = None;
        } else if self.since.is_none() {
            self.since = Some(now);
        }
    }

    /// Whether every P has looked idle for `IDLE_BEFORE_SLEEP` at `now`.
    pub(crate) fn long_enough(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|s| now.saturating_duration_since(s) >= IDLE_BEFORE_SLEEP)
    }
}

/// Sysmon's memory of one P: the word it saw, since when, and when sysmon
/// first zeroed that poll's budget.
#[derive(Clone, Copy)]
struct PRecord {
    word: u64,
    since: Instant,
    preempted: Option<Preempted>,
}

/// When sysmon first zeroed a poll's budget, and what the OS said of the
/// M's thread then (osthread.rs).
#[derive(Clone, Copy)]
struct Preempted {
    at: Instant,
    /// The thread's CPU time at `at`, if known.
    cpu: Option<Duration>,
    /// The last time `ignored` asked the OS, to ask at most every
    /// `PREEMPT_GRACE / 4` per M.
    asked: Option<Instant>,
}

impl Preempted {
    fn new(m: &MInfo, now: Instant) -> Preempted {
        Preempted {
            at: now,
            cpu: m.thread.ids().and_then(|t| t.cpu_time()),
            asked: None,
        }
    }

    /// Whether the preempted poll has had its chance to yield and did not:
    /// `PREEMPT_GRACE` has passed and its thread either used that much CPU
    /// since (it ignores the budget) or is asleep in the kernel (a blocking
    /// call). A thread the OS kept waiting for a CPU is given up to `cap`
    /// (it yields as soon as it runs); without the OS's view, the grace in
    /// wall time decides alone. Updates `asked`.
    fn ignored(&mut self, m: &MInfo, now: Instant, cap: Duration) -> bool {
        let waited = now.saturating_duration_since(self.at);
        if waited < PREEMPT_GRACE {
            return false;
        }
        if waited >= cap {
            return true;
        }
        let Some(ids) = m.thread.ids() else {
            return true;
        };
        if self
            .asked
            .is_some_and(|t| now.saturating_duration_since(t) < PREEMPT_GRACE / 4)
        {
            return false;
        }
        self.asked = Some(now);
        if let (Some(c0), Some(c1)) = (self.cpu, ids.cpu_time())
            && c1.saturating_sub(c0) >= PREEMPT_GRACE
        {
            return true;
        }
        // Runnable (`R`) but hardly any CPU: starved, not blocked.
        ids.is_runnable() != Some(true)
    }
}

/// The body of the sysmon thread.
pub(crate) fn run(handle: Handle, mut parker: Parker) {
    let shared = &handle.shared;
    let mut ms: Vec<Arc<MInfo>> = Vec::new();
    let mut records: Vec<Option<PRecord>> = Vec::new();
    let mut idle_ticks = 0u32;
    let mut delay = MIN_DELAY;
    let trace = shared.config.debug.schedtrace;
    let mut next_trace = trace.map(|t| shared.sysmon.start + t);
    let mut next_netpoll = Instant::now() + NETPOLL_PERIOD;
    let mut ready: Vec<std::task::Waker> = Vec::new();
    let mut quiet = Quiet::default();
    if trace.is_some() {
        eprintln!("{}", handshake_line());
    }
    loop {
        let nap = next_trace.map_or(delay, |t| {
            delay.min(t.saturating_duration_since(Instant::now()))
        });
        if trace.is_none()
            && shared.idle.npidle() == shared.idle.nprocs()
            && quiet.long_enough(Instant::now())
        {
            // Nothing runs: sleep until an M takes a P (Go's sysmonwait).
            shared.sysmon.sleeping.store(true, SeqCst);
            if shared.idle.npidle_seqcst() == shared.idle.nprocs() && !shared.idle.is_closed() {
                parker.park();
            }
            shared.sysmon.sleeping.store(false, SeqCst);
            records.iter_mut().for_each(|r| *r = None);
            quiet = Quiet::default();
            // Work appearing is not a sign of trouble: resume at the busy
            // cadence, not Go's 20 us, which on a 2-core machine stole
            // enough CPU from the Ms to double `yield_many` (measured).
            idle_ticks = IDLE_TICKS_BEFORE_BACKOFF;
            delay = BUSY_MAX_DELAY;
        } else {
            parker.park_timeout(nap);
        }
        if shared.idle.is_closed() {
            return;
        }
        crate::metrics::since::advance(); // DIAG: the task stamps' clock
        let now = Instant::now();
        quiet.observe(shared.idle.npidle() == shared.idle.nprocs(), now);
        {
            let all = shared.ms.lock().unwrap();
            if all.len() != ms.len() {
                ms.clone_from(&all);
                records.resize(ms.len(), None);
            }
        }
        let acted = retake(&handle, &ms, &mut records, now);
        if acted {
            idle_ticks = 0;
            delay = MIN_DELAY;
        } else {
            idle_ticks = idle_ticks.saturating_add(1);
            if idle_ticks > IDLE_TICKS_BEFORE_BACKOFF {
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
        if shared.idle.npidle() < shared.idle.nprocs() {
            delay = delay.min(BUSY_MAX_DELAY);
        }
        if now >= next_netpoll || shared.netpoller.timers_only() {
            next_netpoll = now + NETPOLL_PERIOD;
            netpoll(&handle, &mut ready);
        }
        if let (Some(period), Some(due)) = (trace, next_trace)
            && now >= due
        {
            let detail = shared.config.debug.scheddetail;
            eprint!("{}", schedtrace(&handle, now, detail));
            next_trace = Some(due + period);
        }
    }
}

/// Go's sysmon netpoll: when sockets are registered, no M sleeps in
/// netpoll (the busy Ms poll only when their runq runs dry, and every 61st
/// poll) and nobody polled for `NETPOLL_PERIOD` (Go's `sched.lastpoll`),
/// poll without blocking. While the idle M waits for timers only
/// (netpoller.rs, "Two ways to wait") the period is
/// `TIMERS_ONLY_NETPOLL_PERIOD`: an idle P is there to run what the poll
/// finds. Waking the readied tasks from this thread, which is not an M,
/// puts them on the global queue and `wakep`s (`schedule_remote`).
fn netpoll(handle: &Handle, ready: &mut Vec<std::task::Waker>) {
    let np = &handle.shared.netpoller;
    let h = np.handle();
    let period = match np.timers_only() {
        true => TIMERS_ONLY_NETPOLL_PERIOD,
        false => NETPOLL_PERIOD,
    };
    if !h.has_registrations()
        || np.watches_sockets()
        || h.last_poll().is_some_and(|t| t.elapsed() < period)
    {
        return;
    }
    if let Err(e) = np.poll_now(ready) {
        tracing::warn!(target: "gort", error = %e, "sysmon: non-blocking netpoll failed");
    }
    ready.drain(..).for_each(std::task::Waker::wake);
}

/// Go's `retake`, over every M inside a poll. True when it preempted or
/// handed off.
fn retake(
    handle: &Handle,
    ms: &[Arc<MInfo>],
    records: &mut [Option<PRecord>],
    now: Instant,
) -> bool {
    let shared = &handle.shared;
    let mut acted = false;
    for (i, m) in ms.iter().enumerate() {
        let slot = &m.slot;
        let word = slot.load();
        let status = pstatus::status(word);
        if status != POLLING && status != SYSCALL {
            // RUNNING is a wake from inside the poll, a moment long: keep the
            // record, the word returns to what it was.
            if status != RUNNING {
                records[i] = None;
            }
            continue;
        }
        let rec = match records[i] {
            Some(r) if r.word == word => r,
            _ => {
                records[i] = Some(PRecord {
                    word,
                    since: now,
                    preempted: None,
                });
                // DIAG: the dump's "running for" (metrics/mod.rs).
                let since = now.saturating_duration_since(shared.sysmon.start);
                shared.diag.saw_poll(i, word, since);
                continue;
            }
        };
        let blocked = now.saturating_duration_since(rec.since);
        // A hint: the P the M polls with (`MInfo::curp`, set when it takes
        // one); `NO_P` only in a moment of `block_in_place`'s slow path.
        let p_id = m.curp.load(Relaxed);
        let handoff_due = if status == SYSCALL {
            p_id != NO_P
                && blocked >= SYSCALL_THRESHOLD
                && (blocked >= SYSCALL_MAX || work_waits(handle, p_id, now))
        } else {
            let waits = p_id != NO_P
                && blocked >= shared.config.blocking_threshold
                && work_waits(handle, p_id, now);
            if blocked >= TIME_SLICE || waits {
                // Zero the poll's budget (budget.rs), again on every tick
                // while the poll overruns: the M's own stores (a leaf's, a
                // refund, the end of an `unconstrained` section) may
                // overwrite a zero.
                m.preempt.preempt();
                if rec.preempted.is_none() {
                    records[i] = Some(PRecord {
                        preempted: Some(Preempted::new(m, now)),
                        ..rec
                    });
                    acted = true;
                }
            }
            // Preemption first: only a poll that ignored it is blocked
            // (Transitions, step 4).
            let cap = shared.config.blocking_threshold;
            let mut rec = rec;
            let ignored = waits
                && rec
                    .preempted
                    .as_mut()
                    .is_some_and(|p| p.ignored(m, now, cap));
            if rec.preempted.is_some() {
                records[i] = Some(rec);
            }
            ignored
        };
        if !handoff_due {
            continue;
        }
        if let Some(p) = slot.retake(word) {
            records[i] = None;
            acted = true;
            shared.diag.handoffs.add_shared(1); // DIAG
            crate::trace::handoff(p.id); // DIAG
            let task_id = slot.last_task();
            let m = m.id;
            if status == POLLING {
                let spawned_at = shared
                    .owned
                    .spawn_location(task_id)
                    .map_or_else(|| "?".to_string(), |l| l.to_string());
                tracing::warn!(
                    target: "gort",
                    task_id,
                    spawned_at,
                    m,
                    blocked_ms = blocked.as_secs_f64() * 1e3,
                    "a task blocked its thread inside one poll; handing its P to another M \
                     (use spawn_blocking or block_in_place for blocking work)"
                );
            }
            handoff(handle, p);
        }
    }
    acted
}

/// Whether tasks wait for P `i`: its runq (or runnext), an expired timer
/// on its heap, or, while no P is idle to take them, the global queue or an
/// expired timer of the `block_on` heap (which only Ms holding a P run;
/// `block_in_place`'s slow path without a P registers there too).
fn work_waits(handle: &Handle, i: usize, now: Instant) -> bool {
    let shared = &handle.shared;
    let due = |d: Instant| d <= now;
    !shared.stealers[i].is_empty()
        || shared.timers[i].next_deadline().is_some_and(due)
        || (shared.idle.npidle() == 0
            && (!shared.inject.is_empty()
                || shared.block_on_timers().next_deadline().is_some_and(due)))
}

/// Go's `handoffp` for a P taken from a blocked M: an idle M, else a new M,
/// else (every M busy and `max_threads` reached) the idle list.
fn handoff(handle: &Handle, p: Box<P>) {
    let shared = &handle.shared;
    let Err(p) = shared.idle.startm_with(p) else {
        return;
    };
    if let Err(p) = handle.start_m(p) {
        tracing::warn!(
            target: "gort",
            max_threads = shared.config.max_threads,
            "sysmon: cannot start an M for a handed-off P (max_threads reached or the OS \
             refused a thread); it waits on the idle list"
        );
        shared.idle.put_idle_p(p);
    }
}

/// The line schedtrace prints once at start: which P status handshake this
/// process uses (pstatus.rs).
pub(crate) fn handshake_line() -> String {
    format!(
        "gort schedtrace: P status handshake: {}",
        membarrier::describe()
    )
}

/// One schedtrace report in Go's format (with `scheddetail`, a line per P
/// and per M follows the header).
pub(crate) fn schedtrace(handle: &Handle, now: Instant, detail: bool) -> String {
    let shared = &handle.shared;
    let idle = &shared.idle;
    let ms: Vec<_> = shared.ms.lock().unwrap().clone();
    let threads = *shared.live_ms.lock().unwrap();
    let mut out = format!(
        "SCHED {}ms: gomaxprocs={} idleprocs={} threads={} spinningthreads={} idlethreads={} runqueue={}",
        now.saturating_duration_since(shared.sysmon.start)
            .as_millis(),
        idle.nprocs(),
        idle.npidle(),
        threads,
        idle.nmspinning(),
        idle.nmidle(),
        shared.inject.len(),
    );
    if !detail {
        let lens: Vec<String> = shared
            .stealers
            .iter()
            .map(|s| s.len().to_string())
            .collect();
        let _ = writeln!(out, " [{}]", lens.join(" "));
        return out;
    }
    out.push('\n');
    for i in 0..shared.stealers.len() {
        let owner = ms.iter().find(|m| m.curp.load(Relaxed) == i);
        // The owner's slot word: the status of its poll with this P.
        let word = owner.map_or(pstatus::IDLE, |m| m.slot.load());
        // Go's numbering: 0 idle, 1 running, 2 syscall.
        let status = match pstatus::status(word) {
            SYSCALL => 2,
            POLLING | RUNNING => 1,
            _ => u8::from(owner.is_some()),
        };
        let _ = writeln!(
            out,
            "  P{i}: status={status} pollseq={} m={} runqsize={}",
            word >> 3,
            owner.map_or("nil".into(), |m| m.id.to_string()),
            shared.stealers[i].len(),
        );
    }
    for m in &ms {
        let p = m.curp.load(Relaxed);
        let curg = (p != NO_P)
            .then(|| m.slot.load())
            .filter(|w| matches!(pstatus::status(*w), POLLING | SYSCALL | RUNNING))
            .map(|_| m.slot.last_task());
        let _ = writeln!(
            out,
            "  M{}: p={} curg={} spinning={} preempt={}",
            m.id,
            if p == NO_P {
                "nil".into()
            } else {
                p.to_string()
            },
            curg.map_or("nil".into(), |g| g.to_string()),
            m.spinning.load(Relaxed),
            m.preempt.is_spent(),
        );
    }
    out
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Builder;

    /// Parses `key=value` fields of a schedtrace line into numbers.
    fn field(line: &str, key: &str) -> usize {
        let v = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in {line:?}"));
        v.parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a number in {line:?}"))
    }

    #[test]
    fn schedtrace_line_has_go_format() {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let handle = rt.handle();
        let line = schedtrace(&handle, Instant::now(), false);
        assert!(line.ends_with('\n'), "one line: {line:?}");
        let line = line.trim_end();
        let rest = line.strip_prefix("SCHED ").expect("starts with SCHED");
        let (ms, rest) = rest.split_once("ms: ").expect("SCHED <n>ms: ");
        ms.parse::<u64>().expect("elapsed ms is a number");
        assert_eq!(field(rest, "gomaxprocs"), 2);
        assert!(field(rest, "idleprocs") <= 2);
        assert!(field(rest, "threads") >= 2, "{line}");
        assert!(field(rest, "spinningthreads") <= 2);
        assert!(field(rest, "idlethreads") <= field(rest, "threads"));
        assert_eq!(field(rest, "runqueue"), 0);
        let keys: Vec<&str> = rest
            .split_whitespace()
            .filter_map(|w| w.split_once('=').map(|(k, _)| k))
            .collect();
        assert_eq!(
            keys,
            [
                "gomaxprocs",
                "idleprocs",
                "threads",
                "spinningthreads",
                "idlethreads",
                "runqueue"
            ],
            "Go's field order"
        );
        let open = rest.find('[').expect("per-P runq lengths in [..]");
        let lens: Vec<usize> = rest[open + 1..rest.len() - 1]
            .split_whitespace()
            .map(|n| n.parse().expect("runq length"))
            .collect();
        assert_eq!(lens, [0, 0], "one runq length per P: {line}");
        assert!(rest.ends_with(']'));
    }

    #[test]
    fn scheddetail_adds_a_line_per_p_and_m() {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let out = schedtrace(&rt.handle(), Instant::now(), true);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("SCHED ") && !lines[0].contains('['));
        let ps: Vec<_> = lines.iter().filter(|l| l.starts_with("  P")).collect();
        let ms: Vec<_> = lines.iter().filter(|l| l.starts_with("  M")).collect();
        assert_eq!(ps.len(), 2, "{out}");
        assert!(ms.len() >= 2, "{out}");
        for p in ps {
            assert!(field(p, "status") <= 2, "{p}");
            field(p, "runqsize");
            assert!(p.contains(" m="), "{p}");
        }
        for m in ms {
            assert!(m.contains(" p=") && m.contains(" curg=") && m.contains(" spinning="));
        }
    }

    #[test]
    fn parses_go_style_settings() {
        assert_eq!(DebugConfig::parse("").unwrap(), DebugConfig::default());
        let c = DebugConfig::parse("schedtrace=1000,scheddetail=1").unwrap();
        assert_eq!(c.schedtrace, Some(Duration::from_secs(1)));
        assert!(c.scheddetail);
        assert_eq!(DebugConfig::parse("schedtrace=0").unwrap().schedtrace, None);
        let e = DebugConfig::parse("schedtrce=10").unwrap_err();
        assert!(e.contains("unknown setting"), "{e}");
        let e = DebugConfig::parse("schedtrace=ten").unwrap_err();
        assert!(e.contains("integer"), "{e}");
        assert!(DebugConfig::parse("schedtrace").is_err());
    }
}
