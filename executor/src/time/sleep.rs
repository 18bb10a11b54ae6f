//! `sleep`, `sleep_until` and the [`Sleep`] future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use gort_netpoll::budget;

use super::context;
use super::timers::{TimerHandle, Timers};

/// Waits until `duration` has elapsed.
///
/// The deadline is taken now (`Instant::now() + duration`), not at the first
/// poll. Precision is the clock's (nanoseconds); no rounding to
/// milliseconds. A duration too large for `Instant` sleeps "forever"
/// (about 30 years).
///
/// # Panics
/// Polling the returned future outside a gort runtime panics with a message
/// saying so.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(super::deadline_after(duration))
}

/// Waits until `deadline`. A deadline in the past completes on first poll.
///
/// # Panics
/// Polling the returned future outside a gort runtime panics with a message
/// saying so.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        state: State::Unregistered,
    }
}

/// Future returned by [`sleep`] and [`sleep_until`]. Dropping it cancels the
/// timer in O(1).
///
/// It is registered with the current P's timers on its first `Pending`
/// poll, so creating one costs nothing until it is awaited. Each `Ready`
/// spends one unit of the task's poll budget.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    state: State,
}

enum State {
    /// Not in any heap yet (or `reset` since).
    Unregistered,
    /// In a P's heap; dropping the handle cancels it.
    Registered(TimerHandle),
    /// Done.
    Elapsed,
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed (or the timer fired).
    pub fn is_elapsed(&self) -> bool {
        match &self.state {
            State::Elapsed => true,
            State::Registered(handle) if handle.is_fired() => true,
            _ => Instant::now() >= self.deadline,
        }
    }

    /// Moves the deadline, cancelling the current registration. The sleep
    /// registers again (with the polling thread's P) on its next poll.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.state = State::Unregistered;
    }

    /// The timer part of `poll`, without the budget.
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.state {
            State::Elapsed => return Poll::Ready(()),
            State::Registered(handle) => {
                if handle.poll_fired(cx).is_ready() || Instant::now() >= self.deadline {
                    // Dropping a fired handle is a no-op; an unfired one is
                    // cancelled (polled for another reason, already due).
                    self.state = State::Elapsed;
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
            State::Unregistered => {}
        }
        // Checked before the deadline so that misuse outside a runtime fails
        // the same way whatever the duration.
        let timers = context::current();
        if Instant::now() >= self.deadline {
            self.state = State::Elapsed;
            return Poll::Ready(());
        }
        let handle = Timers::add(&timers, self.deadline, cx.waker().clone());
        self.state = State::Registered(handle);
        Poll::Pending
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let progress = ready!(budget::poll_proceed(cx));
        ready!(this.poll_elapsed(cx));
        progress.made_progress();
        Poll::Ready(())
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &matches!(self.state, State::Registered(_)))
            .finish()
    }
}
