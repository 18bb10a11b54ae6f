//! Runtime metrics with Go's `runtime/metrics` meanings.
//!
//! # Where the numbers come from
//! - Polls are counted by each M's probe (probe.rs) without touching memory
//!   per poll: the M counts down a plain field and, every 64th poll (the cold
//!   path), adds the polls since the last credit to the counter of the P it
//!   holds; releasing a P credits the rest. Between credits a reader sees up
//!   to 63 polls per M fewer than were run.
//! - Spawned and completed tasks are counted by the owned-tasks list under
//!   the shard lock a spawn and a completion take anyway (task/list.rs).
//! - Steals, netpoll calls and events are bumped where they happen, paths
//!   that already take a lock or a CAS; handoffs by sysmon. Budget-forced
//!   yields are counted by the budget on its yielding branch and drained
//!   into the P's counter by the probe's cold path.
//! - Gauges are read from the scheduler's own structures when asked:
//!   queue lengths, idle Ps and Ms, spinning Ms, live tasks, the Ps' status
//!   words (running and syscall).
//! - Two histograms per P (`histogram.rs`): schedule latency (Runnable to
//!   Running, Go's `/sched/latencies:seconds`) and poll duration, both
//!   sampled (probe.rs).
//!
//! # Tasks by state
//! Go's `/sched/goroutines/*` are derived, not counted per transition:
//! running = Ps whose status word says a poll is in progress, syscall =
//! Ps inside `block_in_place`; runnable = tasks in the run queues (global,
//! local, `runnext`); waiting = alive - runnable - running - syscall. The
//! parts are read one after the other while Ms run, so they may not sum
//! exactly to `tasks_alive` at any instant; each is clamped so none exceeds it.

mod clock;
mod counter;
pub(crate) mod histogram;
mod names;
pub(crate) mod probe;
pub(crate) mod since;

use std::time::Duration;

use gort_netpoll::loom::sync::Mutex;
use gort_netpoll::loom::sync::atomic::Ordering::Relaxed;

#[cfg_attr(loom, allow(unused_imports))] // the trace writer's, absent under loom
pub(crate) use clock::{Calibration, ns_per_tick, ticks};
pub(crate) use counter::Counter;
use histogram::Histogram;
pub use histogram::HistogramSnapshot;
#[cfg_attr(loom, allow(unused_imports))]
pub(crate) use names::{forget_name, name, named_tasks, set_name, trace_spawn};

use crate::pstatus::{self, POLLING, RUNNING, SYSCALL};
use crate::runtime::Handle;
use crate::scheduler::Shared;

/// Takes the diagnostics clock's first reading (when a runtime starts, so
/// that calibrations span the runtime's life) and sets the coarse clock of
/// the task stamps (since.rs); always true.
pub(crate) fn start_clock() -> bool {
    let _ = ticks();
    since::advance();
    true
}

/// One P's counters and histograms, on cache lines of their own.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct PStats {
    pub(crate) polls: Counter,
    pub(crate) steals: Counter,
    pub(crate) tasks_stolen: Counter,
    pub(crate) budget_yields: Counter,
    pub(crate) netpoll_polls: Counter,
    pub(crate) netpoll_events: Counter,
    pub(crate) sched_latency: Histogram,
    pub(crate) poll_duration: Histogram,
}

/// A runtime's diagnostic state (in `Shared`).
pub(crate) struct Diag {
    /// One per P, then the shared slot for threads holding no P.
    pub(crate) pstats: Box<[PStats]>,
    /// Ps sysmon took from an M blocked in a poll.
    pub(crate) handoffs: Counter,
    /// Per status slot (sysmon's index): the word of the poll sysmon last
    /// saw start, and when (since sysmon's start): the dump's "running
    /// for". Written by sysmon when it first sees a poll, so a lock is
    /// cheap here; it grows with the slots.
    seen_polls: Mutex<Vec<(u64, Duration)>>,
}

/// A poll in progress, read from a status slot (`polls_in_progress`).
pub(crate) struct PollInProgress {
    /// Index of the status slot (the same index sysmon reports in `saw_poll`).
    pub(crate) slot: usize,
    /// The slot's status word.
    pub(crate) word: u64,
    pub(crate) task: u64,
    pub(crate) m: u64,
    pub(crate) p: usize,
}

/// Every poll in progress (or `block_in_place`), from the status slots.
/// The one place that knows how the slots are laid out: one per M
/// (`MInfo::slot`, pstatus.rs), indexed by M id as sysmon reports them in
/// `saw_poll`. A poll whose P sysmon took still shows (its task still runs
/// on the blocked M), with the P it had.
pub(crate) fn polls_in_progress(shared: &Shared) -> Vec<PollInProgress> {
    let ms = shared.ms.lock().unwrap().clone();
    ms.iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let word = m.slot.load();
            matches!(pstatus::status(word), POLLING | RUNNING | SYSCALL).then(|| PollInProgress {
                slot: i,
                word,
                task: m.slot.last_task(),
                m: m.id as u64,
                p: m.curp.load(Relaxed),
            })
        })
        .collect()
}

impl Diag {
    pub(crate) fn new(nprocs: usize) -> Diag {
        Diag {
            pstats: (0..=nprocs).map(|_| PStats::default()).collect(),
            handoffs: Counter::default(),
            seen_polls: Mutex::new(Vec::new()),
        }
    }

    /// Sysmon saw status slot `slot` in a new poll (status word `word`) at
    /// `since` (since sysmon's start).
    pub(crate) fn saw_poll(&self, slot: usize, word: u64, since: Duration) {
        let mut seen = self.seen_polls.lock().unwrap();
        if seen.len() <= slot {
            seen.resize(slot + 1, (0, Duration::ZERO));
        }
        seen[slot] = (word, since);
    }

    /// How long slot `slot` has been in the poll of status word `word`, if
    /// sysmon saw it start; `now` since sysmon's start.
    pub(crate) fn poll_age(&self, slot: usize, word: u64, now: Duration) -> Option<Duration> {
        let seen = self.seen_polls.lock().unwrap();
        let &(w, since) = seen.get(slot)?;
        (w == word).then(|| now.saturating_sub(since))
    }

    /// The slot for events of threads holding no P (use `add_shared`).
    pub(crate) fn shared_slot(&self) -> &PStats {
        self.pstats.last().expect("gort: Diag has a shared slot")
    }
}

/// A snapshot of a runtime's metrics; see [`Handle::metrics`].
///
/// Names follow Go's `runtime/metrics` where one exists (in brackets).
/// Counters count since the runtime started.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// Ps (`/sched/gomaxprocs:threads`).
    pub gomaxprocs: usize,
    /// Ms of the runtime still running (`/sched/threads/total:threads`).
    pub threads_total: usize,
    /// Ms parked in `midle` holding no P (Go's `sched.nmidle`), the one
    /// in netpoll included.
    pub threads_idle: usize,
    /// Ms looking for work (Go's `nmspinning`).
    pub threads_spinning: usize,
    /// Tasks spawned and not yet completed (`/sched/goroutines:goroutines`).
    pub tasks_alive: usize,
    /// Tasks in a run queue (`/sched/goroutines/runnable:goroutines`).
    pub tasks_runnable: usize,
    /// Tasks being polled (`/sched/goroutines/running:goroutines`).
    pub tasks_running: usize,
    /// Tasks waiting for a waker (`/sched/goroutines/waiting:goroutines`).
    pub tasks_waiting: usize,
    /// Tasks polled inside a blocking section (`/sched/goroutines/syscall`).
    pub tasks_syscall: usize,
    /// Tasks ever spawned (`/sched/goroutines-created:goroutines`).
    pub tasks_spawned: u64,
    /// Tasks completed (returned, panicked or cancelled).
    pub tasks_completed: u64,
    /// Polls of tasks by the Ms.
    pub polls: u64,
    /// Successful steals (each moves a batch).
    pub steals: u64,
    /// Tasks moved by steals.
    pub tasks_stolen: u64,
    /// Ps handed off by sysmon from an M blocked in a poll.
    pub handoffs: u64,
    /// Leaf futures told to yield because the cooperative budget ran out
    /// (about one per poll that gave way).
    pub budget_forced_yields: u64,
    /// Tasks in the global run queue.
    pub global_queue_depth: usize,
    /// Tasks in each P's local run queue (with `runnext`), by P id.
    pub local_queue_depths: Vec<usize>,
    /// Calls to the network poller (blocking and non-blocking).
    pub netpoll_polls: u64,
    /// Readiness events the network poller returned.
    pub netpoll_events: u64,
    /// Runnable to running, sampled (`/sched/latencies:seconds`).
    pub schedule_latency: HistogramSnapshot,
    /// Duration of one poll, sampled.
    pub poll_duration: HistogramSnapshot,
}

impl RuntimeMetrics {
    /// Go-style `name value` lines (counters, gauges, p50/p99 of the
    /// histograms), as the metrics example prints them.
    pub fn to_text(&self) -> String {
        fn q(h: &HistogramSnapshot, x: f64) -> String {
            h.quantile(x)
                .map_or_else(|| "-".to_string(), |d: Duration| format!("{d:?}"))
        }
        let mut s = String::new();
        let lines: [(&str, String); 22] = [
            ("/sched/gomaxprocs:threads", self.gomaxprocs.to_string()),
            (
                "/sched/threads/total:threads",
                self.threads_total.to_string(),
            ),
            ("/sched/threads/idle:threads", self.threads_idle.to_string()),
            (
                "/sched/threads/spinning:threads",
                self.threads_spinning.to_string(),
            ),
            ("/sched/goroutines:goroutines", self.tasks_alive.to_string()),
            (
                "/sched/goroutines/runnable:goroutines",
                self.tasks_runnable.to_string(),
            ),
            (
                "/sched/goroutines/running:goroutines",
                self.tasks_running.to_string(),
            ),
            (
                "/sched/goroutines/waiting:goroutines",
                self.tasks_waiting.to_string(),
            ),
            (
                "/sched/goroutines/syscall:goroutines",
                self.tasks_syscall.to_string(),
            ),
            (
                "/sched/goroutines-created:goroutines",
                self.tasks_spawned.to_string(),
            ),
            (
                "/gort/tasks/completed:tasks",
                self.tasks_completed.to_string(),
            ),
            ("/gort/polls:polls", self.polls.to_string()),
            ("/gort/steals:steals", self.steals.to_string()),
            ("/gort/steals/tasks:tasks", self.tasks_stolen.to_string()),
            ("/gort/handoffs:handoffs", self.handoffs.to_string()),
            (
                "/gort/budget/forced-yields:yields",
                self.budget_forced_yields.to_string(),
            ),
            (
                "/gort/runq/global:tasks",
                self.global_queue_depth.to_string(),
            ),
            (
                "/gort/runq/local:tasks",
                format!("{:?}", self.local_queue_depths),
            ),
            ("/gort/netpoll/polls:calls", self.netpoll_polls.to_string()),
            (
                "/gort/netpoll/events:events",
                self.netpoll_events.to_string(),
            ),
            (
                "/sched/latencies:seconds p50 p99",
                format!(
                    "{} {}",
                    q(&self.schedule_latency, 0.5),
                    q(&self.schedule_latency, 0.99)
                ),
            ),
            (
                "/gort/poll/duration:seconds p50 p99",
                format!(
                    "{} {}",
                    q(&self.poll_duration, 0.5),
                    q(&self.poll_duration, 0.99)
                ),
            ),
        ];
        for (name, value) in lines {
            s.push_str(name);
            s.push(' ');
            s.push_str(&value);
            s.push('\n');
        }
        s
    }
}

impl Handle {
    /// A snapshot of this runtime's metrics: counters summed over the Ps,
    /// gauges read now. Costs O(Ps + histogram buckets); the locks it takes
    /// (each owned-tasks shard once, the live-M counter) are held for a
    /// read each and never by a poll.
    pub fn metrics(&self) -> RuntimeMetrics {
        let shared = &self.shared;
        let (alive, spawned, completed) = shared.owned.counts();
        let mut m = RuntimeMetrics {
            gomaxprocs: shared.idle.nprocs(),
            threads_total: *shared.live_ms.lock().unwrap(),
            threads_idle: shared.idle.nmidle(),
            threads_spinning: shared.idle.nmspinning(),
            tasks_alive: alive,
            tasks_spawned: spawned,
            tasks_completed: completed,
            handoffs: shared.diag.handoffs.get(),
            global_queue_depth: shared.inject.len(),
            local_queue_depths: shared.stealers.iter().map(|s| s.len()).collect(),
            ..RuntimeMetrics::default()
        };
        for poll in polls_in_progress(shared) {
            match pstatus::status(poll.word) {
                SYSCALL => m.tasks_syscall += 1,
                _ => m.tasks_running += 1,
            }
        }
        let scale = ns_per_tick();
        for s in shared.diag.pstats.iter() {
            m.polls += s.polls.get();
            m.steals += s.steals.get();
            m.tasks_stolen += s.tasks_stolen.get();
            m.budget_forced_yields += s.budget_yields.get();
            m.netpoll_polls += s.netpoll_polls.get();
            m.netpoll_events += s.netpoll_events.get();
            s.sched_latency
                .snapshot_into(&mut m.schedule_latency, scale);
            s.poll_duration.snapshot_into(&mut m.poll_duration, scale);
        }
        let queued = m.global_queue_depth + m.local_queue_depths.iter().sum::<usize>();
        m.tasks_running = m.tasks_running.min(m.tasks_alive);
        m.tasks_syscall = m.tasks_syscall.min(m.tasks_alive - m.tasks_running);
        let polled = m.tasks_running + m.tasks_syscall;
        m.tasks_runnable = queued.min(m.tasks_alive - polled);
        m.tasks_waiting = m.tasks_alive - polled - m.tasks_runnable;
        m
    }
}
