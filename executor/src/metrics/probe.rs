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

/// One in `SAMPLE` wakes and polls is timed. Go's `gTrackingPeriod` is 8;
/// a clock read costs a fifth of a short gort poll, so 1 in 8 cost yield_many
/// about 10%, 1 in 64 costs under 2% and still gives some 30,000 samples a
/// second on a busy runtime.
const SAMPLE: u64 = 64;

/// A sampled poll longer than this logs a warning (Go's `forcePreemptNS`).
const LONG_POLL_NS: u64 = 10_000_000;

thread_local! {
    /// Wakes made by this thread, to pick every `SAMPLE`th for a precise stamp.
    static WAKES: Cell<u64> = const { Cell::new(0) };
    /// Set by the task harness when a poll returns `Pending` with the
    /// cooperative budget exhausted; read and cleared after the poll.
    static FORCED_YIELD: Cell<bool> = const { Cell::new(false) };
}

/// Stamps a task that is being made runnable (every schedule).
#[inline]
pub(crate) fn stamp_runnable(h: &Header) {
    let n = WAKES.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    let v = if n % SAMPLE == 0 {
        (now() << 1) | 1
    } else {
        coarse() << 1
    };
    // Any waker writes the stamp; it never orders anything (counter.rs).
    h.since.set(v);
}

/// The harness saw a poll give up because of the budget.
#[inline]
pub(crate) fn note_forced_yield() {
    FORCED_YIELD.with(|f| f.set(true));
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
        stats.polls.bump();
        stats.current_task.set(id);
        let since = h.since.get();
        let traced = crate::trace::enabled().then(|| diag.name(id));
        let timed = since & 1 == 1 || stats.polls.get() % SAMPLE == 0 || traced.is_some();
        let t0 = if timed { now() } else { coarse() };
        if since & 1 == 1 {
            stats.sched_latency.record(t0.saturating_sub(since >> 1));
        }
        h.since.set(t0 << 1);
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
            t0: timed.then_some(t0),
            traced,
            span,
        }
    }

    /// After the poll (the task may be freed by now: only copies are used).
    #[inline]
    pub(crate) fn finish(self, trace: &MTrace) {
        self.stats.current_task.set(0);
        if FORCED_YIELD.with(|f| f.replace(false)) {
            self.stats.budget_yields.bump();
        }
        drop(self.span);
        let Some(t0) = self.t0 else {
            return;
        };
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
