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
//! # Two ways to wait
//! Go's last idle M always blocks in netpoll. Then, while another M runs
//! tasks, every readiness edge wakes the idle M from `epoll_wait`; it takes
//! an idle P and runs the readied tasks beside the busy M, which would have
//! found them itself at its next look (findrunnable polls without blocking
//! whenever its runq runs dry, and every 61st poll). On a machine whose
//! other cores are busy, that second thread only shares them: in the echo
//! benchmark (2 Ps, client on the same 2 cores) the server ran two busy
//! threads beside the client, and throughput fell 15-20 % below one
//! server thread's, with a p99 of 4-5 ms instead of 0.5.
//!
//! So the holder chooses (`choose_timers_only`): if some M holds a P, it
//! waits for timers only, on its parker, until the earliest timer (as it
//! would in netpoll, publishing the same `poll_until`), at most
//! `TIMERS_ONLY_MAX_WAIT`; the busy Ms poll the sockets. If no M holds a
//! P, it blocks in netpoll as before. The holder is woken from the
//! timers-only wait by a timer earlier than its deadline (`break_holder`
//! reaches both ways of waiting), by `startm` (its parker), and by the M
//! that releases the last busy P (`wake_timers_only_holder`): from then on
//! nobody polls, so it must go and wait in netpoll. A busy M stuck in one
//! long poll no longer polls either; sysmon then polls every
//! `TIMERS_ONLY_NETPOLL_PERIOD` (1 ms) instead of 10 (sysmon.rs), and the
//! readied tasks go to the idle P through the global queue.
//!
//! # States
//! - `claimed` (bool): an M holds the netpoller role. Go: `sched.lastpoll
//!   == 0`. Held from `try_claim` to `release`; the holder is in `midle`.
//! - `timers_only` (bool): the holder waits on its parker for timers only
//!   (from `choose_timers_only` to the end of `wait_timers`); its unparker
//!   is in `Netpoller::holder` meanwhile.
//! - `poll_until` (u64): `0` = nobody is blocked in netpoll (or the holder
//!   has not computed its deadline yet); `NO_DEADLINE` = blocked with no
//!   timer pending; else 1 + nanoseconds after `base` of the deadline the
//!   holder sleeps to. Go: `sched.pollUntil`.
//!
//! # Transitions
//! - `try_claim` (an idle M, `m.rs` `stopm`): CAS `claimed` false -> true.
//! - `choose_timers_only` (the holder, before it waits): register its
//!   unparker, store `timers_only` (SeqCst), fence, look at `npidle`; no P
//!   busy: clear it and `block`; else `wait_timers` (`begin_block`,
//!   `park_timeout`, `end_block`, clear).
//! - `wake_timers_only_holder` (an M parking without the role, after
//!   `Idle::park_m` stored `npidle` and fenced): `timers_only` set and no
//!   P busy -> unpark the holder, which chooses again.
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
//!   the non-blocking one in findrunnable only while nobody is, or is about
//!   to be, blocked in it (`watches_sockets`).
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
//! - Lost switch to netpoll (StoreLoad): the holder stores `timers_only`
//!   (SeqCst), `fence(SeqCst)`, loads `npidle`; the M releasing the last
//!   busy P stores `npidle` (SeqCst, under the idle lock), `fence(SeqCst)`
//!   (`park_m`), loads `timers_only`. Either the holder sees no P busy and
//!   blocks in netpoll, or the M sees the mode and unparks it (the parker
//!   keeps the permit). The unparker is registered before the mode is
//!   stored, so an M that sees the mode finds it. `TIMERS_ONLY_MAX_WAIT`
//!   covers a P made idle without that M (sysmon's handoff to the idle
//!   list).
//!
//! # Rejected alternatives
//! - Every idle M blocking in `Driver::poll`: the driver admits one poller;
//!   the others would return at once and spin.
//! - An idle M always parking on its condvar with a timeout, and netpoll
//!   only polled non-blocking: a socket's readiness would wait for the next
//!   timer or spawn. (The timers-only wait does this only while a busy M
//!   polls, with sysmon as the net.)
//! - Breaking the holder out of netpoll whenever an M takes a P, so that
//!   it switches to the timers-only wait at once: a netpoll break (a
//!   syscall and a wake) on every P acquisition. A holder already in
//!   netpoll stays there until its next wake, and chooses again then.
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
//! fences, or without the re-read, the model deadlocks);
//! `loom_netpoller_last_busy_p_released_while_the_holder_chooses`: the
//! holder never waits for timers only with no P busy and nobody to wake it
//! (mutation-checked: without the fence in `choose_timers_only` the model
//! deadlocks). End to end: `tests/timers.rs` (`sleep_added_while_idle_*`)
//! and the facade's `tests/netpoll_sched.rs` (readiness is seen while the
//! only busy M is stuck in a poll).

use std::io;
use std::task::Waker;
use std::time::{Duration, Instant};

use gort_netpoll::loom::sync::Mutex;
use gort_netpoll::loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::*, fence};
use gort_netpoll::{Driver, Handle};

use crate::park::{Parker, Unparker};

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

/// The longest a timers-only holder sleeps before it chooses again: a net
/// under the wake that `wake_timers_only_holder` gives when the last busy
/// P is released (a P returned to the idle list by sysmon's handoff does
/// not pass there). Go's sysmon polls the network at the same period.
const TIMERS_ONLY_MAX_WAIT: Duration = Duration::from_millis(10);

/// One runtime's poller and the role of the M blocked in it.
pub(crate) struct Netpoller {
    driver: Driver,
    handle: Handle,
    role: Role,
    /// The holder's parker while it waits for timers only (`wait_timers`):
    /// a break must reach it there as well as in the driver.
    holder: Mutex<Option<Unparker>>,
}

/// The netpoller role without the driver (so loom can model it): who holds
/// it and the deadline the holder sleeps to. See the module doc.
pub(crate) struct Role {
    claimed: AtomicBool,
    /// The holder waits on its parker for timers only, because another M
    /// holds a P and polls sockets itself (see "Two ways to wait").
    timers_only: AtomicBool,
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
            holder: Mutex::new(None),
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
    /// load), no M sleeps in netpoll (it sees events first), and no poll
    /// ended within `MIN_POLL_INTERVAL`.
    pub(crate) fn should_poll_now(&self) -> bool {
        self.handle.has_registrations()
            && !self.role.watches_sockets()
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
            Break::Poller => self.break_holder(),
            Break::NoPoller if !self.is_claimed() => wakep(),
            Break::NoPoller | Break::No => {}
        }
    }

    /// Breaks the poller if it sleeps past `deadline` (an M parking while
    /// another holds the role: its P's timers must not be slept through).
    pub(crate) fn break_if_later(&self, deadline: Option<Instant>) {
        if self.role.timer_added(deadline) == Break::Poller {
            self.break_holder();
        }
    }

    /// Ends the holder's wait early, wherever it waits: the driver's break
    /// (kept until the next poll if nobody is inside one) and, while it
    /// waits for timers only, its parker. Rare: only a timer earlier than
    /// the holder's deadline breaks it.
    fn break_holder(&self) {
        self.handle.unpark();
        if let Some(holder) = &*self.holder.lock().unwrap() {
            holder.unpark();
        }
    }

    /// The holder's choice of how to wait (see "Two ways to wait"): true
    /// (timers only, on the parker `unparker` wakes) when `others_run`
    /// says an M holds a P. The unparker is registered first, so that a
    /// `wake_timers_only_holder` that sees the mode finds it.
    pub(crate) fn choose_timers_only(
        &self,
        unparker: &Unparker,
        others_run: impl Fn() -> bool,
    ) -> bool {
        *self.holder.lock().unwrap() = Some(unparker.clone());
        if self.role.choose_timers_only(others_run) {
            return true;
        }
        *self.holder.lock().unwrap() = None;
        false
    }

    /// The timers-only holder sleeps on `parker` until the earliest timer
    /// (at most `TIMERS_ONLY_MAX_WAIT`), a break, or a P handed to it. Ends
    /// the mode: the holder is free to choose again.
    pub(crate) fn wait_timers(&self, earliest: impl Fn() -> Option<Instant>, parker: &mut Parker) {
        let deadline = self.role.begin_block(earliest);
        let cap = TIMERS_ONLY_MAX_WAIT;
        let wait = deadline.map_or(cap, |d| {
            d.saturating_duration_since(Instant::now()).min(cap)
        });
        parker.park_timeout(wait);
        self.role.end_block();
        self.end_timers_only();
    }

    /// Leaves the timers-only mode without waiting (a P was handed over).
    pub(crate) fn end_timers_only(&self) {
        self.role.leave_timers_only();
        *self.holder.lock().unwrap() = None;
    }

    /// Called by an M parking without the role after it released its P
    /// (`Idle::park_m` stored `npidle` and fenced): if the holder waits for
    /// timers only and `none_run` says no P is busy any more, nobody polls
    /// the sockets, so the holder is woken to wait in netpoll instead.
    pub(crate) fn wake_timers_only_holder(&self, none_run: impl Fn() -> bool) {
        if self.role.must_leave_timers_only(none_run)
            && let Some(holder) = &*self.holder.lock().unwrap()
        {
            holder.unpark();
        }
    }

    /// Whether the holder waits for timers only (sysmon's netpoll period).
    pub(crate) fn timers_only(&self) -> bool {
        self.role.timers_only.load(Relaxed)
    }

    /// Whether an M is, or is about to be, blocked in netpoll: the role is
    /// held and not in the timers-only wait.
    pub(crate) fn watches_sockets(&self) -> bool {
        self.role.watches_sockets()
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
            timers_only: AtomicBool::new(false),
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

    /// The holder's half of the mode handshake: publish "timers only"
    /// (SeqCst), fence, then look whether another M runs; if none does,
    /// take the mode back. Pairs with `must_leave_timers_only`: either the
    /// holder sees the last busy P still held (and the releasing M then
    /// sees the mode and wakes it), or it sees every P idle and waits in
    /// netpoll.
    pub(crate) fn choose_timers_only(&self, others_run: impl Fn() -> bool) -> bool {
        self.timers_only.store(true, SeqCst);
        fence(SeqCst);
        if others_run() {
            return true;
        }
        self.timers_only.store(false, SeqCst);
        false
    }

    /// The holder is out of the timers-only wait.
    pub(crate) fn leave_timers_only(&self) {
        self.timers_only.store(false, SeqCst);
    }

    /// The releasing M's half (after its `npidle` store and fence): the
    /// holder waits for timers only while `none_run` says no P is busy.
    pub(crate) fn must_leave_timers_only(&self, none_run: impl Fn() -> bool) -> bool {
        self.timers_only.load(SeqCst) && none_run()
    }

    /// Claimed and not waiting for timers only.
    pub(crate) fn watches_sockets(&self) -> bool {
        self.is_claimed() && !self.timers_only.load(Acquire)
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
