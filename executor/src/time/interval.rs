//! `interval`: a ticker with a chosen missed-tick behaviour.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use super::sleep::{Sleep, sleep_until};

/// What an [`Interval`] does when ticks were missed: the next tick's time
/// had already passed when a tick completed (the task was slow to call
/// `tick`, or the runtime was busy).
///
/// Ticks are scheduled at `start + k * period`. A tick counts as missed only
/// if a whole period was lost; smaller lateness never shifts the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire every missed tick at once, back to back, until caught up; then
    /// continue on the original schedule.
    Burst,
    /// Restart the schedule from now: the next tick is `period` after the
    /// late one completed.
    Delay,
    /// Drop the missed ticks and continue on the original schedule: the next
    /// tick is the first `start + k * period` after now. This is Go's
    /// `time.Ticker` ("drops ticks to make up for slow receivers", with one
    /// late tick delivered at once, as Go's one-slot channel does), and the
    /// default.
    #[default]
    Skip,
}

impl MissedTickBehavior {
    /// The next tick after the tick scheduled at `tick` completed at `now`.
    fn next(self, tick: Instant, now: Instant, period: Duration) -> Instant {
        let on_schedule = super::instant_after(tick, period);
        if now < on_schedule {
            return on_schedule;
        }
        match self {
            MissedTickBehavior::Burst => on_schedule,
            MissedTickBehavior::Delay => super::instant_after(now, period),
            MissedTickBehavior::Skip => {
                let late = (now - tick).as_nanos();
                let into_period = late % period.as_nanos();
                // `into_period < period`, so it fits a u64 of nanoseconds.
                let into_period = Duration::from_nanos(into_period as u64);
                super::instant_after(now, period - into_period)
            }
        }
    }
}

/// A ticker: completes at `start`, `start + period`, `start + 2 * period`, …
/// with missed ticks handled by its [`MissedTickBehavior`] (default
/// [`Skip`](MissedTickBehavior::Skip), Go's behaviour).
///
/// The first tick completes immediately.
///
/// A zero `period` is treated as one nanosecond (a ticker that is always
/// due; each tick still spends poll budget, so it cannot starve its P).
///
/// # Panics
/// Ticking outside a gort runtime panics with a message saying so.
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Like [`interval`], but the first tick completes at `start`.
///
/// # Panics
/// Ticking outside a gort runtime panics with a message saying so.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    Interval {
        delay: sleep_until(start),
        period: period.max(Duration::from_nanos(1)),
        missed_tick_behavior: MissedTickBehavior::default(),
    }
}

/// A ticker created by [`interval`] or [`interval_at`].
#[derive(Debug)]
pub struct Interval {
    delay: Sleep,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    /// Completes at the next tick and returns the instant it was scheduled
    /// for (not when it actually completed). Cancel safe: dropping the
    /// future before it completes loses no tick.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (the poll form of [`tick`](Self::tick)).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        ready!(Pin::new(&mut self.delay).poll(cx));
        let tick = self.delay.deadline();
        let next = self
            .missed_tick_behavior
            .next(tick, Instant::now(), self.period);
        self.delay.reset(next);
        Poll::Ready(tick)
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.delay.reset(super::deadline_after(self.period));
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How missed ticks are handled.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets how missed ticks are handled from now on.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }
}
