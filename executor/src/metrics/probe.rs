//! The event sites of the poll path: what an M does around each poll for
//! metrics, the execution trace and `tracing`, and the stamp a wake leaves.
//!
//! Cost when tracing and the execution trace are off (per poll): four
//! Relaxed loads and four Relaxed stores to lines the M already owns (the P's
//! stats, the task header), one Relaxed load of the coarse clock, one
//! thread-local flag, the static `tracing` level check and the trace
//! switch's Relaxed load; plus two clock reads on every 64th poll.
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

/// What an M keeps across one poll.
pub(crate) struct PollProbe<'a> {
    stats: &'a PStats,
    p: usize,
    id: u64,
    spawned_at: &'static Location<'static>,
    /// Start time, when this poll is timed.
    t0: Option<u64>,
    /// Whether the trace is on, with the task's name read before the poll
    /// (a completing poll forgets it).
    traced: Option<Option<StdArc<str>>>,
    span: Option<tracing::span::EnteredSpan>,
}

impl<'a> PollProbe<'a> {
    /// Before polling `task` on P `p`.
    #[inline]
    pub(crate) fn start(diag: &'a Diag, p: usize, task: &Notified) -> PollProbe<'a> {
        let h = task.header();
        let id = h.id.as_u64();
        let stats = &diag.pstats[p];
        let n = stats.polls.get().wrapping_add(1);
        stats.polls.set(n);
        stats.current_task.set(id);
        let since = h.since.get();
        let sampled = n % SAMPLE == 0;
        let mut t0 = None;
        let mut traced = None;
        if since & PRECISE != 0 || sampled || crate::trace::enabled() {
            let now = now();
            if since & PRECISE != 0 {
                stats
                    .sched_latency
                    .record(now.saturating_sub(since >> SHIFT));
            }
            h.since
                .set((now << SHIFT) | if sampled { TRACK } else { 0 });
            t0 = Some(now);
            traced = crate::trace::enabled().then(|| diag.name(id));
        } else {
            h.since.set(coarse() << SHIFT);
        }
        let span = if tracing::enabled!(target: "gort", tracing::Level::TRACE) {
            let name = diag.name(id);
            Some(
                tracing::trace_span!(target: "gort", "poll", task_id = id,
                    task_name = name.as_deref().unwrap_or(""),
                    spawned_at = %h.spawned_at)
                .entered(),
            )
        } else {
            None
        };
        PollProbe {
            stats,
            p,
            id,
            spawned_at: h.spawned_at,
            t0,
            traced,
            span,
        }
    }

    /// After the poll (the task may be freed by now: only copies are used).
    #[inline]
    pub(crate) fn finish(mut self, trace: &MTrace) {
        self.stats.current_task.set(0);
        if self.span.is_some() {
            drop(self.span.take());
        }
        if let Some(t0) = self.t0 {
            self.timed(trace, t0);
        }
    }

    #[cold]
    fn timed(self, trace: &MTrace, t0: u64) {
        flush_forced_yields(self.stats);
        let dur = now().saturating_sub(t0);
        self.stats.poll_duration.record(dur);
        if dur > LONG_POLL_NS {
            tracing::warn!(target: "gort", task_id = self.id,
                spawned_at = %self.spawned_at, poll_ms = dur / 1_000_000,
                "gort: a poll ran longer than 10 ms; its M could run nothing else meanwhile");
        }
        if let Some(name) = self.traced {
            trace.poll(self.p, self.id, name, self.spawned_at, t0, dur);
        }
    }
}
