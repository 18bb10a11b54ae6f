//! The M's probe: everything diagnostics do around a poll, as one
//! countdown on the hot path.
//!
//! # Purpose
//! Metrics, the execution trace and `tracing`'s poll spans all want to see
//! every poll; a poll of a yielding task is about 40 ns. The probe makes the
//! common case cost a decrement and a compare of fields of the M (plain
//! `Cell`s, no atomic, no clock, no thread-local):
//!
//! ```text
//! tick -= 1
//! if tick == 0 || task == tracked { cold path } else { task.run() }
//! ```
//!
//! # States
//! Per M (`MProbe`, owned by the M's thread; nobody else reads it):
//! - `tick`: polls left before the cold path; reset to `period`.
//! - `period`: `SAMPLE` (64), or 1 while the execution trace is on or a
//!   `tracing` subscriber wants the TRACE poll spans: then every poll takes
//!   the cold path and is recorded.
//! - `reset_to`: the value `tick` was last reset to; `owed`: polls of
//!   finished countdowns not yet added to a P's counter (so
//!   `owed + reset_to - tick` polls are not yet counted anywhere);
//!   `counted`: polls of finished countdowns since the last sample.
//! - Every `SAMPLE` polls (every cold path when `period` is 64, every 64th
//!   when it is 1) the M credits `counted`, re-reads the switches and times
//!   one poll: the per-poll cold path of a traced M does none of that.
//! - `tracked` / `tracked_id` / `woken_at`: the task of the last sample,
//!   whose next Runnable -> Running is timed (Go samples schedule latency
//!   the same way, `gTrackingPeriod`): `woken_at` is stamped by the first
//!   wake of that task on this M (`woken`), and the latency recorded when
//!   this M polls it again.
//! - `epoch`: the last `trace::epoch()` seen. A trace start/stop (and
//!   every writer pass) bumps it; the M re-reads it in its cold path and in
//!   `p_changed` (a slow path), and recomputes `period`. So turning the
//!   trace on costs the poll loop no load at all while it is off, and takes
//!   effect within 64 polls.
//!
//! # Transitions
//! - hot path (`poll`): `tick - 1`, then the cold path if it reached 0 or
//!   the task is `tracked`.
//! - cold path (`poll_cold`) with `tick == 0`: `counted` and `owed` grow
//!   by `reset_to`, `tick = reset_to = period`; once `counted` reaches
//!   `SAMPLE`, credits `owed` and the budget's forced yields to the held P,
//!   re-reads the epoch and samples. A traced M also compares the epoch on every poll (the
//!   writer's request for its partial buffer).
//! - `p_changed` (the M takes or releases a P): credits
//!   `owed + reset_to - tick` to the old P, `owed = 0`, adds
//!   `reset_to - tick` to `counted` (sampling goes on across P changes),
//!   `reset_to = tick`.
//!
//! # Ownership
//! All fields: the M's thread only. The per-P counters it credits are
//! atomics (`Counter`), added with `fetch_add` here because after a handoff
//! the old M may credit a P another M now holds.
//!
//! # Orderings
//! None of its own: `trace::epoch()` is a Relaxed load (a stale epoch
//! delays the switch by one cold path; nothing is published through it).
//!
//! # Rejected alternatives
//! - A per-poll counter in the P and `n % 64` (the previous design): a
//!   load, an add, a store, a stamp of the task (a header field: 8 bytes per
//!   task) and a trace-switch load per poll, +20% instructions on yield_many.
//! - Timing schedule latency from a stamp in every task header: the task
//!   cell does not grow for diagnostics (task/raw.rs); Go's sampling needs
//!   one tracked task at a time, which fits in the M.
//! - Tracking the sampled task's wake on whichever thread wakes it: a
//!   shared slot read on every wake. A wake from another thread, or a poll
//!   on another M after a steal, loses that sample instead (the histogram
//!   then leans to same-M wakes; its shape, not its count, is the figure).
//!
//! # Checked by
//! `tests/diagnostics.rs` (exact spawn/completion counts, poll counts after
//! shutdown, samples in both histograms) and `tests/trace.rs` (every poll
//! recorded while the trace is on). Nothing here synchronizes, so there is
//! no loom model; under `cfg(loom)` the probe still runs (plain cells).

use std::cell::Cell;
use std::panic::Location;
use std::ptr;

use super::{Calibration, Diag, PStats, ticks};
use crate::m::NO_P;
use crate::task::Notified;
use crate::task::raw::Header;
use crate::trace::{self, MTrace, Rec};

/// Polls between two cold paths while nothing records every poll, and
/// between two timed samples (Go's `gTrackingPeriod` is 8; gort polls are
/// shorter than goroutine switches, so it samples less often).
pub(crate) const SAMPLE: u32 = 64;

/// A sampled poll longer than this logs a warning (Go's `forcePreemptNS`).
const LONG_POLL_NS: u64 = 10_000_000;

/// An M's diagnostics state (see the module doc).
pub(crate) struct MProbe {
    tick: Cell<u32>,
    period: Cell<u32>,
    reset_to: Cell<u32>,
    counted: Cell<u32>,
    owed: Cell<u32>,
    epoch: Cell<u64>,
    /// A `tracing` subscriber wants the TRACE poll spans (as of the epoch).
    spans: Cell<bool>,
    /// The execution trace records polls (as of the epoch).
    traced: Cell<bool>,
    tracked: Cell<*const Header>,
    tracked_id: Cell<u64>,
    woken_at: Cell<u64>,
    /// The P this M holds (`NO_P`), whose counters the credits go to.
    p: Cell<usize>,
    /// This M's execution-trace buffer.
    pub(crate) trace: MTrace,
}

impl MProbe {
    /// The probe of M `m` (its id in `Shared::ms`).
    pub(crate) fn new(m: usize) -> MProbe {
        MProbe {
            tick: Cell::new(1),
            period: Cell::new(1),
            reset_to: Cell::new(1),
            counted: Cell::new(0),
            owed: Cell::new(0),
            // Never a real epoch: the first cold path reads the switches.
            epoch: Cell::new(u64::MAX),
            spans: Cell::new(false),
            traced: Cell::new(false),
            tracked: Cell::new(ptr::null()),
            tracked_id: Cell::new(0),
            woken_at: Cell::new(0),
            p: Cell::new(NO_P),
            trace: MTrace::register(m),
        }
    }

    /// Polls `task` on P `p`: the hot path of the module doc. Returns the
    /// task if it woke itself during the poll (`Notified::run_yielding`).
    #[inline(always)]
    pub(crate) fn poll(&self, task: Notified, diag: &Diag, p: usize) -> Option<Notified> {
        let t = self.tick.get().wrapping_sub(1);
        self.tick.set(t);
        if t == 0 || ptr::eq(task.header(), self.tracked.get()) {
            self.poll_cold(task, diag, p)
        } else {
            task.run_yielding()
        }
    }

    /// A wake of `h` by this M (`schedule_local`): stamps the tracked task.
    #[inline(always)]
    pub(crate) fn woken(&self, h: &Header) {
        if ptr::eq(h, self.tracked.get()) {
            self.woken_cold();
        }
    }

    #[cold]
    #[inline(never)]
    fn woken_cold(&self) {
        if self.woken_at.get() == 0 {
            self.woken_at.set(ticks().max(1));
        }
    }

    #[cold]
    #[inline(never)]
    fn poll_cold(&self, task: Notified, diag: &Diag, p: usize) -> Option<Notified> {
        let mut sample = false;
        if self.tick.get() == 0 {
            let done = self.reset_to.get();
            let counted = self.counted.get() + done;
            let owed = self.owed.get() + done;
            sample = counted >= SAMPLE;
            self.tick.set(self.period.get());
            self.reset_to.set(self.period.get());
            if sample {
                self.counted.set(0);
                self.owed.set(0);
                self.credit(self.stats(diag), owed);
                self.refresh();
            } else {
                self.counted.set(counted);
                self.owed.set(owed);
                if self.traced.get() && trace::epoch() != self.epoch.get() {
                    self.refresh();
                }
            }
        }
        let h = task.header();
        let latency = ptr::eq(h, self.tracked.get()) && self.tracked_id.get() == h.id.as_u64();
        let woken_at = self.woken_at.get();
        if ptr::eq(h, self.tracked.get()) {
            // Polled again (or a new task at a freed one's address): the
            // tracking ends either way.
            self.tracked.set(ptr::null());
            self.woken_at.set(0);
        }
        let (traced, spans) = (self.traced.get(), self.spans.get());
        if !(sample || traced || spans || (latency && woken_at != 0)) {
            return task.run_yielding();
        }
        let id = h.id.as_u64();
        let at = task.spawned_at();
        if sample {
            self.tracked.set(h);
            self.tracked_id.set(id);
            self.woken_at.set(0);
        }
        let t0 = ticks();
        if latency && woken_at != 0 {
            self.stats(diag)
                .sched_latency
                .record(t0.saturating_sub(woken_at));
        }
        let yielded = if spans {
            let _span = poll_span(id, at);
            task.run_yielding()
        } else {
            task.run_yielding()
        };
        let t1 = ticks();
        if sample {
            let dur = t1.saturating_sub(t0);
            let stats = self.stats(diag);
            stats.poll_duration.record(dur);
            // Ticks are at most 1 ns (a TSC runs at >= 1 GHz), so only
            // polls this long can be long ones; convert those exactly.
            if dur > LONG_POLL_NS && Calibration::now().dur_ns(dur) > LONG_POLL_NS {
                tracing::warn!(target: "gort", task_id = id, spawned_at = %at,
                    poll_ms = Calibration::now().dur_ns(dur) / 1_000_000,
                    "a poll ran longer than 10 ms; its M could run nothing else meanwhile");
            }
        }
        if traced {
            self.trace.record(Rec::Poll {
                t0,
                t1,
                task: id,
                at,
                p: p as u32,
            });
        }
        yielded
    }

    /// The counters of the held P (the shared slot when none).
    fn stats<'a>(&self, diag: &'a Diag) -> &'a PStats {
        diag.pstats
            .get(self.p.get())
            .unwrap_or_else(|| diag.shared_slot())
    }

    /// Adds `polls` and the budget's forced yields to `stats`.
    fn credit(&self, stats: &PStats, polls: u32) {
        if polls > 0 {
            stats.polls.add_shared(u64::from(polls));
        }
        let forced = gort_netpoll::budget::take_forced_yields();
        if forced > 0 {
            stats.budget_yields.add_shared(forced);
        }
    }

    /// Re-reads the switches when the epoch moved, and flushes the trace
    /// buffer when a writer pass asked for it (the epoch moves then too).
    fn refresh(&self) {
        let epoch = trace::epoch();
        let spans = tracing::enabled!(target: "gort", tracing::Level::TRACE);
        if epoch == self.epoch.get() && spans == self.spans.get() {
            return;
        }
        self.epoch.set(epoch);
        self.spans.set(spans);
        self.traced.set(trace::enabled());
        self.trace.flush();
        let period = if self.traced.get() || spans {
            1
        } else {
            SAMPLE
        };
        if self.period.replace(period) != period {
            // The new period starts now; the current countdown's polls so
            // far stay owed to the P and count toward the next sample.
            let done = self.reset_to.get() - self.tick.get();
            self.counted.set(self.counted.get() + done);
            self.owed.set(self.owed.get() + done);
            self.tick.set(period);
            self.reset_to.set(period);
        }
    }

    /// The M took P `new` or gave its P up (`None`): credits the polls run
    /// with the old one and records the change in the trace.
    pub(crate) fn p_changed(&self, diag: &Diag, new: Option<usize>) {
        let old = self.p.replace(new.unwrap_or(NO_P));
        let done = self.reset_to.get() - self.tick.get();
        let polls = self.owed.replace(0) + done;
        // The sampling rhythm goes on across P changes (an M that changes
        // P every few polls is still sampled every 64).
        self.counted.set(self.counted.get() + done);
        self.reset_to.set(self.tick.get());
        if old != NO_P {
            self.credit(&diag.pstats[old], polls);
            self.trace.event(|ts| Rec::PStop { ts, p: old as u32 });
        }
        if let Some(p) = new {
            self.refresh();
            self.trace.event(|ts| Rec::PStart { ts, p: p as u32 });
            tracing::trace!(target: "gort", m = self.trace.m_id(), p, "acquire P");
        }
    }

    /// The M found nothing and is about to sleep holding no P (`end`
    /// false), or woke up (`end` true). The buffer is handed to the writer
    /// before sleeping, so a sleeping M holds no unwritten events.
    pub(crate) fn park(&self, end: bool) {
        tracing::trace!(target: "gort", m = self.trace.m_id(), end, "park");
        self.trace.event(|ts| Rec::Park { ts, end });
        if !end {
            self.trace.flush();
        }
    }

    /// Before a netpoll: its start time when the trace is on.
    pub(crate) fn netpoll_start(&self) -> Option<u64> {
        trace::enabled().then(ticks)
    }

    /// After a netpoll that returned `events` readiness events; `blocking`
    /// when the M held no P (the shared slot counts it).
    pub(crate) fn netpoll_done(&self, diag: &Diag, t0: Option<u64>, events: usize) {
        let stats = self.stats(diag);
        stats.netpoll_polls.add_shared(1);
        stats.netpoll_events.add_shared(events as u64);
        if let Some(t0) = t0 {
            self.trace.event(|t1| Rec::Netpoll {
                t0,
                t1,
                events: events as u32,
            });
        }
        if events > 0 {
            tracing::trace!(target: "gort", m = self.trace.m_id(), events, "netpoll wakeups");
        }
    }

    /// P `p` of this M stole `n` tasks from P `victim`.
    pub(crate) fn steal(&self, diag: &Diag, p: usize, victim: usize, n: usize) {
        let stats = &diag.pstats[p];
        stats.steals.add_shared(1);
        stats.tasks_stolen.add_shared(n as u64);
        self.trace.event(|ts| Rec::Steal {
            ts,
            p: p as u32,
            victim: victim as u32,
            n: n as u32,
            flow: trace::next_flow(),
        });
        tracing::trace!(target: "gort", p, victim, tasks = n, "steal");
    }

    /// Hands buffered trace events to the writer (before the M blocks).
    pub(crate) fn flush(&self) {
        self.trace.flush();
    }
}

#[cold]
#[inline(never)]
fn poll_span(id: u64, at: &'static Location<'static>) -> tracing::span::EnteredSpan {
    let name = super::name(id);
    tracing::trace_span!(target: "gort", "poll", task_id = id,
        task_name = name.as_deref().unwrap_or(""), spawned_at = %at)
    .entered()
}
