//! The event sites of the poll path: what an M does around each poll for
//! metrics, the execution trace and `tracing`, and the stamp a wake leaves.
//!
//! Cost when tracing and the execution trace are off, per poll: the
//! poll counter, the P's current task (set and cleared), the task's stamp
//! (a load, a coarse-clock load and a store), the sampling test, the trace
//! switch's Relaxed load and the static `tracing` level check; per wake, a
//! load and a store to the task header; three clock reads per 64 polls.
//! Measured under callgrind on yield_many (200 tasks x 1,000 yields, about
//! 380 instructions per poll before): +78 instructions per poll (+20%),
//! of which about 25 are these sites and the rest changed inlining around
//! them (`Local::push_back` is no longer inlined into `schedule_local`).
//!
//! The `since` stamp in a task header (`Header::since`) is
//! `(nanoseconds << 1) | precise`: `precise` is set by a sampled wake, whose
//! stamp is an exact clock reading and feeds the schedule-latency histogram
//! when the task is next polled; other stamps come from the coarse clock and
//! only serve the task dump's "time in this state". A poll overwrites the
//! stamp with its start time: a waiting task's stamp is when its last poll
//! began (the poll itself being short, that is when it started waiting).

use std::cell::Cell;
use std::panic::Location;
use std::sync::Arc as StdArc;

use super::{Diag, PStats, coarse, now};
use crate::task::Notified;
use crate::task::raw::Header;
use crate::trace::MTrace;

/// One in `SAMPLE` polls of a P is timed, and the wake after it stamps the
/// task precisely (Go's `gTrackingPeriod` is 8; a clock read costs half a
/// short gort poll, so gort samples less often).
const SAMPLE: u64 = 64;

/// `Header::since` bits: the stamp is an exact wake time (feeds the
/// schedule-latency histogram at the next poll).
const PRECISE: u64 = 1;
/// `Header::since` bits: the task's next wake should stamp precisely.
const TRACK: u64 = 2;
/// The timestamp sits above the two flag bits.
const SHIFT: u32 = 2;

/// A sampled poll longer than this logs a warning (Go's `forcePreemptNS`).
const LONG_POLL_NS: u64 = 10_000_000;

thread_local! {
    /// Polls of this thread that returned `Pending` with the cooperative
    /// budget exhausted, not yet added to the P's counter (done on timed
    /// polls and when the M releases its P).
    static FORCED_YIELDS: Cell<u64> = const { Cell::new(0) };
}

/// The "since" stamp of `h` in nanoseconds (0: never stamped).
pub(crate) fn since_ns(h: &Header) -> u64 {
    h.since.get() >> SHIFT
}

/// Stamps a task that is being made runnable (every schedule): a coarse
/// stamp, or an exact one when the last poll asked for it (`TRACK`).
#[inline]
pub(crate) fn stamp_runnable(h: &Header) {
    // Any waker writes the stamp; it never orders anything (counter.rs).
    if h.since.get() & TRACK != 0 {
        h.since.set((now() << SHIFT) | PRECISE);
    } else {
        h.since.set(coarse() << SHIFT);
    }
}

/// The harness saw a poll give up because of the budget.
#[inline]
pub(crate) fn note_forced_yield() {
    FORCED_YIELDS.with(|f| f.set(f.get() + 1));
}

/// Adds this thread's pending forced-yield count to `stats`.
pub(crate) fn flush_forced_yields(stats: &PStats) {
    let n = FORCED_YIELDS.with(|f| f.replace(0));
    if n > 0 {
        stats.budget_yields.add(n);
    }
}

/// Before polling a task on the P of `stats`: counts the poll, marks the
/// P's current task, stamps the task. Returns the poll's start time when
/// this poll is timed (sampled, a precisely stamped task, or the trace on),
/// else 0. The untimed path is about fifteen instructions.
#[inline]
pub(crate) fn poll_start(stats: &PStats, h: &Header) -> u64 {
    let n = stats.polls.get().wrapping_add(1);
    stats.polls.set(n);
    stats.current_task.set(h.id.as_u64());
    let since = h.since.get();
    if since & PRECISE != 0 || n % SAMPLE == 0 || crate::trace::enabled() {
        return start_timed(stats, h, since, n % SAMPLE == 0);
    }
    h.since.set(coarse() << SHIFT);
    0
}

#[cold]
fn start_timed(stats: &PStats, h: &Header, since: u64, sampled: bool) -> u64 {
    let now = now();
    if since & PRECISE != 0 {
        stats
            .sched_latency
            .record(now.saturating_sub(since >> SHIFT));
    }
    h.since
        .set((now << SHIFT) | if sampled { TRACK } else { 0 });
    now.max(1)
}

/// What a timed poll needs after the poll (copied before it: a completing
/// poll may free the task and forget its name).
pub(crate) struct Timed {
    t0: u64,
    id: u64,
    spawned_at: &'static Location<'static>,
    /// The task's name when the trace is on.
    traced: Option<Option<StdArc<str>>>,
}

impl Timed {
    /// Collects what `finish` needs (timed polls only).
    #[cold]
    pub(crate) fn new(diag: &Diag, h: &Header, t0: u64) -> Timed {
        let id = h.id.as_u64();
        Timed {
            t0,
            id,
            spawned_at: h.spawned_at,
            traced: crate::trace::enabled().then(|| diag.name(id)),
        }
    }

    /// After the poll: poll-duration sample, long-poll warning, trace slice.
    #[cold]
    pub(crate) fn finish(self, stats: &PStats, trace: &MTrace, p: usize) {
        flush_forced_yields(stats);
        let dur = now().saturating_sub(self.t0);
        stats.poll_duration.record(dur);
        if dur > LONG_POLL_NS {
            tracing::warn!(target: "gort", task_id = self.id,
                spawned_at = %self.spawned_at, poll_ms = dur / 1_000_000,
                "gort: a poll ran longer than 10 ms; its M could run nothing else meanwhile");
        }
        if let Some(name) = self.traced {
            trace.poll(p, self.id, name, self.spawned_at, self.t0, dur);
        }
    }
}

/// Polls `task`, inside a TRACE span `poll` (task id, name, spawn
/// location) when a subscriber wants one; otherwise the cost is the static
/// level check. The span is built out of line so the common path carries
/// none.
#[inline]
pub(crate) fn run(diag: &Diag, task: Notified) {
    if tracing::enabled!(target: "gort", tracing::Level::TRACE) {
        let h = task.header();
        let _span = poll_span(diag, h.id.as_u64(), h.spawned_at);
        task.run();
    } else {
        task.run();
    }
}

#[cold]
#[inline(never)]
fn poll_span(diag: &Diag, id: u64, at: &'static Location<'static>) -> tracing::span::EnteredSpan {
    let name = diag.name(id);
    tracing::trace_span!(target: "gort", "poll", task_id = id,
        task_name = name.as_deref().unwrap_or(""), spawned_at = %at)
    .entered()
}
