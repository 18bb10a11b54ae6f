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
//! - `block` (the holder): `Role::begin_block` (`poll_until` 0 ->
//!   deadline, fence, re-read the timers, maybe lowering it),
//!   `Driver::poll`, `Role::end_block` (`poll_until` -> 0).
//! - `release` (the holder, after the poll): `claimed` -> false. If it then
//!   leaves the idle state with a P while timers are pending and other Ms
//!   stay idle, it wakes one of them (`Idle::kick_one`) to take the role
//!   over (`m.rs` `leave_idle`).
//! - `timer_added` (any thread that made a heap's earliest timer earlier)
//!   and `break_if_later` (an M parking while another holds the role): if
//!   the deadline is before `poll_until`, `Handle::unpark`; if nobody holds
//!   the role, `timer_added` calls `wakep`: the M it starts finds nothing
//!   and comes to hold the role (Go's `wakeNetPoller`).
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
//!   (SeqCst), `fence(SeqCst)`, then loads every heap's `Timers::next`
//!   (`Role::begin_block`); `Timers::add` stores `next` under its lock,
//!   then `Role::timer_added` does `fence(SeqCst)` and loads `poll_until`. Either
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
//! handed to an M entering netpoll is never slept through.
//! `src/tests/loom_netpoller.rs`: a timer added while the holder computes
//! its deadline is either in that deadline or breaks the poll (with the
//! real `Timers` and its wake hook; mutation-checked: without the two
//! fences, or without the re-read, the model deadlocks). End to end: `tests/timers.rs`
//! (`sleep_added_while_idle_*`).

use std::io;
use std::task::Waker;
use std::time::{Duration, Instant};

use gort_netpoll::loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::*, fence};
use gort_netpoll::{Driver, Handle};

/// `poll_until`: nobody is blocked in netpoll.
const NOT_POLLING: u64 = 0;
/// `poll_until`: blocked with no deadline (no timer pending).
const NO_DEADLINE: u64 = u64::MAX;

/// findrunnable skips its non-blocking poll when any poll ended less than
/// this long ago. Measured on the echo benchmark (50 connections, 2 Ps):
/// without it 21k of 39k `epoll_wait` calls were non-blocking polls and
/// nearly all returned nothing, most of them made just after the blocking
/// poll that had woken the same M (it ran the one readied task and came
/// back). The bound on the cost is small: an M that skips and finds no
/// other work goes on to the blocking poll, which returns at once if
/// anything is ready.
const MIN_POLL_INTERVAL: Duration = Duration::from_micros(20);

/// One runtime's poller and the role of the M blocked in it.
pub(crate) struct Netpoller {
    driver: Driver,
    handle: Handle,
    role: Role,
}

/// The netpoller role without the driver (so loom can model it): who holds
/// it and the deadline the holder sleeps to. See the module doc.
pub(crate) struct Role {
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
            role: Role::new(),
        })
    }

    /// The driver's handle (sockets register through it; `unpark` breaks a
    /// blocked poll).
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Takes the netpoller role; false if another M holds it.
    pub(crate) fn try_claim(&self) -> bool {
        self.role.try_claim()
    }

    /// Whether an M holds the role.
    pub(crate) fn is_claimed(&self) -> bool {
        self.role.is_claimed()
    }

    /// Gives the role up (the holder only).
    pub(crate) fn release(&self) {
        self.role.release();
    }

    /// The holder blocks until I/O, an unpark, or the earliest timer
    /// (`earliest` reads every heap's next deadline). Pushes readied wakers
    /// onto `ready`.
    pub(crate) fn block(
        &self,
        earliest: impl Fn() -> Option<Instant>,
        ready: &mut Vec<Waker>,
    ) -> io::Result<usize> {
        let deadline = self.role.begin_block(earliest);
        let result = self.driver.poll(deadline, ready);
        self.role.end_block();
        result
    }

    /// A non-blocking poll (findrunnable, before stealing). Returns at once
    /// with nothing if another thread is inside `Driver::poll`.
    pub(crate) fn poll_now(&self, ready: &mut Vec<Waker>) -> io::Result<usize> {
        self.driver.poll(Some(Instant::now()), ready)
    }

    /// Whether findrunnable's non-blocking poll is worth a syscall: a
    /// socket is registered (with none it can find nothing; a lock-free
    /// load), nobody holds the role (the M blocked in netpoll sees events
    /// first), and no poll ended within `MIN_POLL_INTERVAL`.
    pub(crate) fn should_poll_now(&self) -> bool {
        self.handle.has_registrations()
            && !self.is_claimed()
            && self
                .handle
                .last_poll()
                .is_none_or(|t| t.elapsed() >= MIN_POLL_INTERVAL)
    }

    /// A heap's earliest deadline became `deadline` (the timers' wake
    /// hook): break the poller if it sleeps past it; with nobody holding
    /// the role, `wakep` so that an M comes to hold it. Go's
    /// `wakeNetPoller`.
    pub(crate) fn timer_added(&self, deadline: Instant, wakep: impl FnOnce()) {
        match self.role.timer_added(Some(deadline)) {
            Break::Poller => self.handle.unpark(),
            Break::NoPoller if !self.is_claimed() => wakep(),
            Break::NoPoller | Break::No => {}
        }
    }

    /// Breaks the poller if it sleeps past `deadline` (an M parking while
    /// another holds the role: its P's timers must not be slept through).
    pub(crate) fn break_if_later(&self, deadline: Option<Instant>) {
        if self.role.timer_added(deadline) == Break::Poller {
            self.handle.unpark();
        }
    }
}

/// What `Role::timer_added` asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Break {
    /// The holder sleeps past the deadline: break its poll.
    Poller,
    /// Nobody is blocked in netpoll (or the holder has not published its
    /// deadline yet, and will see the timer when it re-reads).
    NoPoller,
    /// The holder wakes by the deadline anyway.
    No,
}

impl Role {
    pub(crate) fn new() -> Role {
        Role {
            claimed: AtomicBool::new(false),
            poll_until: AtomicU64::new(NOT_POLLING),
            base: Instant::now(),
        }
    }

    pub(crate) fn try_claim(&self) -> bool {
        self.claimed
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_ok()
    }

    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Acquire)
    }

    pub(crate) fn release(&self) {
        self.claimed.store(false, Release);
    }

    /// The holder publishes the deadline it will sleep to and returns it:
    /// `poll_until` store, fence, re-read of the timers (see Orderings).
    pub(crate) fn begin_block(&self, earliest: impl Fn() -> Option<Instant>) -> Option<Instant> {
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
        deadline
    }

    /// The holder is back from its poll.
    pub(crate) fn end_block(&self) {
        self.poll_until.store(NOT_POLLING, SeqCst);
    }

    /// A timer with `deadline` was published (or an M parks with it): must
    /// the blocked holder be broken?
    pub(crate) fn timer_added(&self, deadline: Option<Instant>) -> Break {
        // Pairs with the fence in `begin_block`: see Orderings.
        fence(SeqCst);
        let until = self.poll_until.load(SeqCst);
        if until == NOT_POLLING {
            Break::NoPoller
        } else if self.encode(deadline) < until {
            Break::Poller
        } else {
            Break::No
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
