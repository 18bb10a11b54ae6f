//! Runtime metrics with Go's `runtime/metrics` meanings.
//!
//! # Where the numbers come from
//! - Counters (polls, spawns, steals, ...) are per P ([`PStats`]): the M
//!   holding the P bumps its own copy with a Relaxed load and store
//!   (`counter.rs`), and [`Handle::metrics`] sums the copies. Events on a
//!   thread that holds no P of the runtime (a spawn from `block_on`, a
//!   blocking netpoll of an idle M) go to one extra shared slot with
//!   `fetch_add`; those are rare paths.
//! - Gauges are read from the scheduler's own structures when asked:
//!   queue lengths, idle Ps, spinning Ms, live tasks.
//! - Two histograms per P (`histogram.rs`): schedule latency (Runnable to
//!   Running, Go's `/sched/latencies:seconds`) and poll duration.
//!
//! # Sampling (probe.rs)
//! Reading the clock costs about as much as a short poll, so, like Go's
//! `gTrackingPeriod`, only every 64th wake (per waking thread) stamps the
//! task with the precise time, and only every 64th poll of a P (or a poll of
//! such a stamped task) is timed. The histograms therefore hold about 1/64
//! of the events; their shape, not their counts, is the figure. Counters
//! are exact.
//!
//! # Tasks by state
//! Go's `/sched/goroutines/*` are derived, not counted per transition:
//! running = Ps in a poll; runnable = tasks in the run queues (global,
//! local, `runnext`); waiting = alive - runnable - running; syscall = tasks
//! polled inside a blocking section (none until sysmon's `block_in_place`).
//! The parts are read one after the other while Ms run, so they may not sum
//! exactly to `tasks_alive` at any instant; each is clamped so none exceeds it.

mod clock;
mod counter;
pub(crate) mod histogram;
pub(crate) mod probe;

use std::collections::HashMap;
use std::sync::Arc as StdArc;
use std::time::Duration;

use gort_netpoll::loom::sync::Mutex;
use gort_netpoll::loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub(crate) use clock::{coarse, now};
pub(crate) use counter::Counter;
use histogram::Histogram;
pub use histogram::HistogramSnapshot;

use crate::runtime::Handle;
use crate::task::Id;

/// One P's counters and histograms, on cache lines of their own.
#[repr(align(128))]
pub(crate) struct PStats {
    pub(crate) polls: Counter,
    pub(crate) spawned: Counter,
    pub(crate) completed: Counter,
    pub(crate) steals: Counter,
    pub(crate) tasks_stolen: Counter,
    pub(crate) handoffs: Counter,
    pub(crate) budget_yields: Counter,
    pub(crate) netpoll_polls: Counter,
    pub(crate) netpoll_events: Counter,
    /// Id of the task being polled on this P, 0 between polls.
    pub(crate) current_task: Counter,
    /// 1 + id of the M holding this P, 0 while idle.
    pub(crate) held_by: Counter,
    pub(crate) sched_latency: Histogram,
    pub(crate) poll_duration: Histogram,
}

impl PStats {
    fn new() -> PStats {
        PStats {
            polls: Counter::default(),
            spawned: Counter::default(),
            completed: Counter::default(),
            steals: Counter::default(),
            tasks_stolen: Counter::default(),
            handoffs: Counter::default(),
            budget_yields: Counter::default(),
            netpoll_polls: Counter::default(),
            netpoll_events: Counter::default(),
            current_task: Counter::default(),
            held_by: Counter::default(),
            sched_latency: Histogram::new(),
            poll_duration: Histogram::new(),
        }
    }
}

/// A runtime's diagnostic state (in `Shared`).
pub(crate) struct Diag {
    /// One per P, then the shared slot for threads holding no P.
    pub(crate) pstats: Box<[PStats]>,
    /// Names of named tasks, by id: unnamed tasks cost nothing here.
    names: Mutex<HashMap<u64, StdArc<str>>>,
    /// Entries in `names` (lets completions of unnamed tasks skip the lock).
    named: AtomicUsize,
}

impl Diag {
    pub(crate) fn new(nprocs: usize) -> Diag {
        Diag {
            pstats: (0..=nprocs).map(|_| PStats::new()).collect(),
            names: Mutex::new(HashMap::new()),
            named: AtomicUsize::new(0),
        }
    }

    /// The slot for events of threads holding no P (use `add_shared`).
    pub(crate) fn shared_slot(&self) -> &PStats {
        self.pstats.last().expect("gort: Diag has a shared slot")
    }

    /// Records the name of a task about to be spawned.
    pub(crate) fn set_name(&self, id: Id, name: &str) {
        let prev = self
            .names
            .lock()
            .unwrap()
            .insert(id.as_u64(), StdArc::from(name));
        if prev.is_none() {
            self.named.fetch_add(1, Relaxed);
        }
    }

    /// The name of task `id`, if it was given one.
    pub(crate) fn name(&self, id: u64) -> Option<StdArc<str>> {
        if self.named.load(Relaxed) == 0 {
            return None;
        }
        self.names.lock().unwrap().get(&id).cloned()
    }

    /// Forgets the name of a completed task.
    pub(crate) fn forget_name(&self, id: Id) {
        // Relaxed: a task's name is inserted before its first schedule
        // (spawn), which happens-before its completion on whatever thread.
        if self.named.load(Relaxed) == 0 {
            return;
        }
        if self.names.lock().unwrap().remove(&id.as_u64()).is_some() {
            self.named.fetch_sub(1, Relaxed);
        }
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
    /// Ms holding no P (idle, parked or in netpoll). With one M per P this
    /// is the number of idle Ps.
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
    /// Polls that returned `Pending` with the cooperative budget exhausted.
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
        let diag = &shared.diag;
        let mut m = RuntimeMetrics {
            gomaxprocs: shared.idle.nprocs(),
            threads_total: *shared.live_ms.lock().unwrap(),
            threads_idle: shared.idle.npidle(),
            threads_spinning: shared.idle.nmspinning(),
            tasks_alive: shared.owned.len(),
            global_queue_depth: shared.inject.len(),
            local_queue_depths: shared.stealers.iter().map(|s| s.len()).collect(),
            ..RuntimeMetrics::default()
        };
        for s in diag.pstats.iter() {
            m.tasks_spawned += s.spawned.get();
            m.tasks_completed += s.completed.get();
            m.polls += s.polls.get();
            m.steals += s.steals.get();
            m.tasks_stolen += s.tasks_stolen.get();
            m.handoffs += s.handoffs.get();
            m.budget_forced_yields += s.budget_yields.get();
            m.netpoll_polls += s.netpoll_polls.get();
            m.netpoll_events += s.netpoll_events.get();
            m.tasks_running += usize::from(s.current_task.get() != 0);
            s.sched_latency.snapshot_into(&mut m.schedule_latency);
            s.poll_duration.snapshot_into(&mut m.poll_duration);
        }
        let queued = m.global_queue_depth + m.local_queue_depths.iter().sum::<usize>();
        m.tasks_running = m.tasks_running.min(m.tasks_alive);
        m.tasks_runnable = queued.min(m.tasks_alive - m.tasks_running);
        m.tasks_waiting = m.tasks_alive - m.tasks_running - m.tasks_runnable;
        m
    }
}
