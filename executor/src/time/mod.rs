//! Time: `sleep`, `timeout`, `interval`, run by per-P timer heaps.
//!
//! # Design
//! As in Go 1.14+, every P owns a [`Timers`](timers::Timers) heap (a 4-ary
//! min-heap of deadlines under a per-P lock). A [`Sleep`] registers with the
//! heap of the P its task runs on when first polled; dropping it marks the
//! entry deleted (O(1)); deleted entries are swept in bulk. There is no
//! timer thread: the scheduler fires timers itself in findrunnable, and the
//! nearest deadline bounds how long an idle M sleeps. Deadlines keep full
//! `Instant` precision (no millisecond slots), so lateness is bounded by how
//! promptly an M wakes, not by a wheel's granularity.
//!
//! # What the scheduler must do (the contract of this module)
//! 1. **One heap per P.** Create `Arc<Timers>` per P with
//!    `Timers::with_wake_hook(hook)`. `add` calls `hook(deadline)` (after
//!    releasing the heap lock) whenever it made that P's earliest deadline
//!    earlier; the hook must wake an idle M whose sleep ends after `deadline`
//!    (unpark it, or `netpollBreak` the M blocked in netpoll). Go:
//!    `wakeNetPoller`. A hook that always unparks one idle M is correct,
//!    merely wasteful.
//! 2. **Make the P's heap current.** When an M acquires a P, call
//!    `time::context::enter(p.timers.clone())` and keep the guard until it
//!    releases the P (handoff, stop). A `block_on` thread that holds no P
//!    must also enter timers that some M runs (for example a runtime-wide
//!    heap that findrunnable checks like a P's), or its sleeps never fire.
//!    `Sleep::poll` on a thread without timers panics with "must be called
//!    from within a gort runtime".
//! 3. **Run expired timers in findrunnable**, first thing (Go's
//!    `pp.timers.check`): `let e = p.timers.run_expired(Instant::now())`.
//!    `e.fired > 0` means tasks were woken (they are now in the queues);
//!    `e.next_deadline` is this P's `pollUntil`. On the last steal pass,
//!    also `victim.timers.run_expired(now)` for each victim P (Go's
//!    `stealWork` with `stealTimersOrRunNextG`).
//! 4. **Bound the idle sleep.** Before an M parks: `until = min over all Ps
//!    of timers.next_deadline()` (lock-free). With `Some(d)`, call
//!    `parker.park_timeout(d.saturating_duration_since(Instant::now()))` with
//!    that exact duration (never rounded up to milliseconds; the 0.3 ms p99
//!    lateness target depends on it); with `None`, `park()`. After waking,
//!    go back to step 3.
//! 5. **Delicate dance.** A spinning M that gives up re-checks every P's
//!    `next_deadline()` after decrementing `nmspinning`, like the queues, so
//!    a timer added while it was deciding to sleep is not slept through.
//!
//! # Files
//! - `heap.rs`: the 4-ary min-heap.
//! - `timers.rs`: the per-P heap, timer entries and their fire/cancel
//!   protocol (header comment, loom model `tests/loom_timers.rs`).
//! - `context.rs`: the thread-local "current P's timers" seam.
//! - `sleep.rs`, `timeout.rs`, `interval.rs`: the public futures.

use std::time::Duration;

mod context;
mod heap;
mod interval;
mod sleep;
mod timeout;
#[allow(dead_code)] // `new`, `is_empty`, `heap_len`: tests and diagnostics
pub(crate) mod timers;

#[cfg(all(test, not(loom)))]
mod tests;

pub(crate) use context::{TimersGuard, enter};
pub use interval::{Interval, MissedTickBehavior, interval, interval_at};
pub use sleep::{Sleep, sleep, sleep_until};
pub use std::time::Instant;
pub use timeout::{Elapsed, Timeout, timeout};
pub(crate) use timers::Timers;

/// A deadline so far away it stands for "never" (about 30 years), used when
/// `now + duration` does not fit in an `Instant`.
fn far_future() -> Instant {
    instant_after(Instant::now(), Duration::from_secs(86_400 * 365 * 30))
}

/// `now + duration`, saturating to [`far_future`].
fn deadline_after(duration: Duration) -> Instant {
    Instant::now()
        .checked_add(duration)
        .unwrap_or_else(far_future)
}

/// `t + duration`, saturating: if even 30 years overflow, `t` itself plus
/// the largest step that fits is still far beyond any real wait.
fn instant_after(t: Instant, duration: Duration) -> Instant {
    let mut step = duration;
    loop {
        if let Some(later) = t.checked_add(step) {
            return later;
        }
        step /= 2;
    }
}
