//! The netpoller role: which idle M blocks in netpoll, until when, and how
//! new timers and work break it out (Go's `sched.lastpoll`,
//! `sched.pollUntil`, `wakeNetPoller`).
//!
//! # Purpose
//! One runtime has one `gort_netpoll::Driver`. When Ms run out of work, one
//! of them (and only one: epoll would hand an edge to one waiter at random)
//! blocks in `Driver::poll` until the earliest timer of any P, instead of on
//! its parker; the others park on their parkers. A timer added with an
//! earlier deadline than the one the poller sleeps to, or a P handed to the
//! poller by `startm`, must interrupt it ([`gort_netpoll::Handle::unpark`]).
//!
//! # States
//! - `claimed` (bool): an M holds the netpoller role. Go: `sched.lastpoll
//!   == 0`. Held from `try_claim` to `release`; the holder is in `midle`.
//! - `poll_until` (u64): `0` = nobody is blocked in netpoll (or the holder
//!   has not computed its deadline yet); `NO_DEADLINE` = blocked with no
//!   timer pending; else 1 + nanoseconds after `base` of the deadline the
//!   holder sleeps to. Go: `sched.pollUntil`.
//!
//! # Transitions
//! - `try_claim` (an idle M, `m.rs` `stopm`): CAS `claimed` false -> true.
//! - `block` (the holder): `poll_until` 0 -> deadline, fence, re-read the
//!   timers (maybe lowering it), `Driver::poll`, `poll_until` -> 0.
//! - `release` (the holder, after the poll): `claimed` -> false. If it then
//!   leaves the idle state with a P while other Ms stay idle, it wakes one
//!   of them (`Idle::kick_one`) to take the role over (`m.rs` `leave_idle`).
//! - `timer_added` (any thread that made a P's earliest timer earlier) and
//!   `break_if_later` (an M parking while another holds the role): if the
//!   deadline is before `poll_until`, `Handle::unpark` (Go's
//!   `wakeNetPoller`).
//! - A P handed over by `startm` reaches the poller through
//!   `Idle::wake_m` (idle.rs), which breaks the poll when the M's
//!   `in_netpoll` is set.
//!
//! # Ownership
//! - `driver`: `poll` may be called by anyone (it admits one caller at a
//!   time by itself); the blocking call is made only by the role holder, and
//!   the non-blocking one in findrunnable only while nobody holds the role.
//! - `poll_until`: written only by the role holder, read by anyone.
//! - `claimed`: CAS by idle Ms, cleared by the holder.
//!
//! # Orderings
//! - Lost timer wakeup (StoreLoad): the holder stores `poll_until`
//!   (SeqCst), `fence(SeqCst)`, then loads every P's `Timers::next`
//!   (`Shared::earliest_timer`); `Timers::add` stores `next` under its lock,
//!   then `timer_added` does `fence(SeqCst)` and loads `poll_until`. Either
//!   the holder's re-read sees the new deadline, or `timer_added` sees the
//!   holder's `poll_until` and unparks it. A stale (larger) `poll_until`
//!   only causes an extra unpark.
//! - `Handle::unpark` is never lost (netpoll's park.rs): an unpark before
//!   the wait makes the next blocking poll return at once.
//! - `claimed`: CAS Acquire / store Release; it guards no data, only who
//!   may block.
//!
//! # Rejected alternatives
//! - Every idle M blocking in `Driver::poll`: the driver admits one poller;
//!   the others would return at once and spin.
//! - An idle M always parking on its condvar with a timeout, and netpoll
//!   only polled non-blocking: a socket's readiness would wait for the next
//!   timer or spawn.
//! - Removing the poller from `midle` (Go's way): with one M per P, `startm`
//!   could then find no idle M for an idle P. Here it stays in `midle` and
//!   `startm` prefers the Ms on condvars.
//!
//! # Checked by
//! `src/tests/loom_idle.rs` (`loom_idle_startm_breaks_the_netpoller`): a P
//! handed to an M entering netpoll is never slept through. Timers racing
//! the poller's deadline: `tests/timers.rs` (`sleep_added_while_idle_*`).

use std::io;
use std::task::Waker;
use std::time::Instant;

use gort_netpoll::loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::*, fence};
use gort_netpoll::{Driver, Handle};

/// `poll_until`: nobody is blocked in netpoll.
const NOT_POLLING: u64 = 0;
/// `poll_until`: blocked with no deadline (no timer pending).
const NO_DEADLINE: u64 = u64::MAX;

/// One runtime's poller and the role of the M blocked in it.
pub(crate) struct Netpoller {
    driver: Driver,
    handle: Handle,
    claimed: AtomicBool,
    poll_until: AtomicU64,
    base: Instant,
}

impl Netpoller {
    /// A new driver (its own epoll/kqueue instance).
    pub(crate) fn new() -> io::Result<Netpoller> {
        let driver = Driver::new()?;
        let handle = driver.handle();
        Ok(Netpoller {
            driver,
            handle,
            claimed: AtomicBool::new(false),
            poll_until: AtomicU64::new(NOT_POLLING),
            base: Instant::now(),
        })
    }

    /// The driver's handle (sockets register through it; `unpark` breaks a
    /// blocked poll).
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Takes the netpoller role; false if another M holds it.
    pub(crate) fn try_claim(&self) -> bool {
        self.claimed
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_ok()
    }

    /// Whether an M holds the role.
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Acquire)
    }

    /// Gives the role up (the holder only).
    pub(crate) fn release(&self) {
        self.claimed.store(false, Release);
    }

    /// The holder blocks until I/O, an unpark, or the earliest timer
    /// (`earliest` reads every P's next deadline). Pushes readied wakers onto
    /// `ready`.
    pub(crate) fn block(
        &self,
        earliest: impl Fn() -> Option<Instant>,
        ready: &mut Vec<Waker>,
    ) -> io::Result<usize> {
        let first = earliest();
        self.poll_until.store(self.encode(first), SeqCst);
        // Pairs with the fence in `timer_added`: see Orderings.
        fence(SeqCst);
        let deadline = match (first, earliest()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if deadline != first {
            self.poll_until.store(self.encode(deadline), SeqCst);
        }
        let result = self.driver.poll(deadline, ready);
        self.poll_until.store(NOT_POLLING, SeqCst);
        result
    }

    /// A non-blocking poll (findrunnable, before stealing). Returns at once
    /// with nothing if another thread is inside `Driver::poll`.
    pub(crate) fn poll_now(&self, ready: &mut Vec<Waker>) -> io::Result<usize> {
        self.driver.poll(Some(Instant::now()), ready)
    }

    /// Whether any socket is registered: with none, a non-blocking poll can
    /// find nothing, so findrunnable skips the syscall.
    pub(crate) fn has_registrations(&self) -> bool {
        self.handle.has_registrations()
    }

    /// A P's earliest deadline became `deadline` (the timers' wake hook):
    /// break the poller if it sleeps past it. Go's `wakeNetPoller`.
    pub(crate) fn timer_added(&self, deadline: Instant) {
        // Pairs with the fence in `block`: see Orderings.
        fence(SeqCst);
        let until = self.poll_until.load(SeqCst);
        if until != NOT_POLLING && self.encode(Some(deadline)) < until {
            self.handle.unpark();
        }
    }

    /// An M parking while another holds the role: its P's timers (now
    /// idle) must not be slept through.
    pub(crate) fn break_if_later(&self, deadline: Option<Instant>) {
        if let Some(deadline) = deadline {
            self.timer_added(deadline);
        }
    }

    /// `Some(t)` as 1 + nanoseconds after `base` (never `NOT_POLLING` nor
    /// `NO_DEADLINE`); `None` as `NO_DEADLINE`.
    fn encode(&self, deadline: Option<Instant>) -> u64 {
        match deadline {
            None => NO_DEADLINE,
            Some(d) => {
                let nanos = d.saturating_duration_since(self.base).as_nanos();
                u64::try_from(nanos)
                    .unwrap_or(u64::MAX)
                    .clamp(0, NO_DEADLINE - 2)
                    + 1
            }
        }
    }
}
