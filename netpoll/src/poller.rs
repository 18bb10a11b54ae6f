//! The reactor: one mio `Poll` per runtime, Go's netpoller.
//!
//! # Purpose
//! [`Driver::poll`] waits for I/O readiness (epoll on Linux, kqueue on the
//! BSDs and macOS, through mio), records it in each socket's [`PollDesc`] and
//! hands the waiting tasks' wakers back to the executor, which injects them as
//! one batch. [`Handle`] is what sockets and other threads hold: it registers
//! sockets and interrupts a blocked poll ([`Handle::unpark`], Go's
//! `netpollBreak`).
//!
//! # States
//! - `park` ([`Park`], `park.rs`): whether a thread is blocked in `poll` and
//!   whether an interrupt is pending.
//! - `table`: the registration [`Slab`] and a `shut_down` flag, under one
//!   `Mutex`.
//!
//! # Transitions
//! - `poll` (blocking): `Park::begin_blocking`, the wait, `end_blocking`.
//! - `unpark`: `Park::unpark`, then `mio::Waker::wake` only if it says so.
//! - Driver drop: under `table`, set `shut_down` and drain the slab; then
//!   every drained [`PollDesc`] gets `SHUTDOWN` and its wakers are woken.
//!
//! # Ownership
//! - `poller` (mio `Poll`, events buffer, deadline timer): only the thread
//!   that won `try_lock`; a second caller returns `Ok(0)` at once (Go: one
//!   thread in netpoll at a time).
//! - `table`: sockets lock it to register and deregister; the poller locks it
//!   once per batch of events; never on a socket's read/write path.
//! - `registry`, `waker`: shared, used through `&self` (mio's types are Sync).
//! - `last_poll`: written by the poller after each poll, read by anyone.
//! - `registered`: written under `table` (a copy of the slab's length), read
//!   by anyone without the lock.
//!
//! # Orderings
//! - `park`: see `park.rs`.
//! - `table`: a `Mutex`; a registration inserted under it happens before the
//!   poller's lookup of its token under it.
//! - `registered` is Relaxed: a hint for skipping non-blocking polls; a
//!   registration it misses is picked up by the next poll that does run.
//! - `last_poll` is a plain Relaxed timestamp: sysmon only compares it with
//!   the clock, a stale read costs one extra non-blocking poll.
//!
//! # Rejected alternatives
//! - Letting several threads block in `poll`: epoll would report one edge to
//!   one of them at random and the others would wake for nothing.
//! - Holding a strong reference to sockets in the table only (weak in the
//!   socket): a socket would then need the driver alive to read its own
//!   state; here both hold an `Arc<PollDesc>`, so a socket outliving its
//!   driver reads `SHUTDOWN` from memory it co-owns.
//!
//! # Checked by
//! Readiness: `src/tests/loom_registration.rs`; park: `src/tests/loom_park.rs`
//! and `tests/driver.rs` (`unpark_interrupts_a_blocked_poll`,
//! `unpark_before_poll_is_not_lost_and_is_consumed`); shutdown and several
//! drivers: `tests/driver.rs`; deadlines: `deadlines_are_sub_millisecond`.

use std::io;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::deadline::DeadlineTimer;
use crate::loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::loom::sync::{Arc, Mutex, MutexGuard};
use crate::park::Park;
use crate::registration::{PollDesc, bits_from_event};
use crate::slab::{Slab, TOKEN_TIMER, TOKEN_WAKER};

/// Events read from the kernel per wait; more ready fds are picked up by the
/// next poll (edge-triggered events stay queued in the kernel).
const EVENTS_CAPACITY: usize = 1024;

/// The message of the error a socket returns once its runtime is gone.
pub(crate) const SHUTDOWN_MSG: &str = "the runtime that owned this socket has shut down";

/// The error a socket returns once its driver is gone.
pub(crate) fn shutdown_error() -> io::Error {
    io::Error::other(SHUTDOWN_MSG)
}

/// A runtime's network poller. Exactly one per runtime; dropping it shuts
/// down every socket registered with it (they fail with a clear error).
#[derive(Debug)]
pub struct Driver {
    poller: Mutex<Poller>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Poller {
    poll: mio::Poll,
    events: mio::Events,
    timer: DeadlineTimer,
    /// The deadline the timer is armed for, until it is seen to fire. A poll
    /// woken early (by I/O) and repeated with the same deadline (the same
    /// next timer) skips re-arming; a poll without a deadline disarms it.
    timer_armed: Option<Instant>,
}

#[derive(Debug)]
struct Table {
    slab: Slab,
    shut_down: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    registry: mio::Registry,
    waker: mio::Waker,
    park: Park,
    table: Mutex<Table>,
    /// `table.slab.len()`, written under `table`, readable without it.
    registered: AtomicUsize,
    /// When the driver was created; `last_poll` counts from here.
    base: Instant,
    /// Nanoseconds after `base` at which the last poll ended, plus one;
    /// 0 = never polled.
    last_poll: AtomicU64,
}

/// A cheap, cloneable reference to a [`Driver`], usable from any thread.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding either lock leaves plain data (a table or mio
    // state) that is still consistent, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Driver {
    /// Creates a poller with its own epoll/kqueue instance.
    pub fn new() -> io::Result<Driver> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), mio::Token(TOKEN_WAKER))?;
        let timer = DeadlineTimer::new(poll.registry())?;
        Ok(Driver {
            poller: Mutex::new(Poller {
                poll,
                events: mio::Events::with_capacity(EVENTS_CAPACITY),
                timer,
                timer_armed: None,
            }),
            shared: Arc::new(Shared {
                registry,
                waker,
                park: Park::new(),
                table: Mutex::new(Table {
                    slab: Slab::default(),
                    shut_down: false,
                }),
                registered: AtomicUsize::new(0),
                base: Instant::now(),
                last_poll: AtomicU64::new(0),
            }),
        })
    }

    /// A handle for registering sockets and interrupting polls.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Waits for I/O readiness until `deadline` and pushes the wakers of the
    /// tasks it made ready onto `ready` (without waking them). Returns how
    /// many wakers were pushed.
    ///
    /// - `None` blocks until an event or [`Handle::unpark`].
    /// - `Some(t)` with `t <= now` polls without blocking.
    /// - `Some(t)` in the future blocks until `t` at most. On Linux the wait
    ///   ends within microseconds of `t` (a timerfd, see `deadline.rs`);
    ///   elsewhere it is rounded up to the next millisecond.
    ///
    /// Only one thread polls at a time: if another thread is inside `poll`,
    /// this returns `Ok(0)` at once without polling. A blocking poll may
    /// return early with nothing ready (a stale interrupt); callers loop.
    pub fn poll(&self, deadline: Option<Instant>, ready: &mut Vec<Waker>) -> io::Result<usize> {
        let Ok(mut guard) = self.poller.try_lock() else {
            return Ok(0);
        };
        let poller = &mut *guard;
        let now = Instant::now();
        let mut timeout = deadline.map(|d| d.saturating_duration_since(now));
        let blocking = timeout != Some(Duration::ZERO);
        if blocking && !self.shared.park.begin_blocking() {
            timeout = Some(Duration::ZERO);
        }
        match (timeout, deadline) {
            (Some(t), Some(d)) if !t.is_zero() && poller.timer_armed != Some(d) => {
                // Failure only costs precision: mio's rounded timeout still
                // ends the wait.
                match poller.timer.arm(t) {
                    Ok(()) => poller.timer_armed = Some(d),
                    Err(e) => {
                        tracing::debug!(error = %e, "gort netpoll: arming the deadline timer failed")
                    }
                }
            }
            // An expiry left over from an earlier deadline would end this
            // unbounded wait early for nothing.
            (None, _) if poller.timer_armed.is_some() && poller.timer.disarm().is_ok() => {
                poller.timer_armed = None;
            }
            _ => {}
        }
        let result = poller.poll.poll(&mut poller.events, timeout);
        if blocking {
            self.shared.park.end_blocking();
        }
        self.shared.record_poll();
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        Ok(self.shared.dispatch(poller, ready))
    }

    /// Whether a thread is blocked in [`poll`](Self::poll) right now.
    pub fn is_polling(&self) -> bool {
        self.shared.park.is_polling()
    }

    /// When the last poll (blocking or not) ended, if any has.
    pub fn last_poll(&self) -> Option<Instant> {
        self.shared.last_poll()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let live = {
            let mut table = lock(&self.shared.table);
            table.shut_down = true;
            self.shared.registered.store(0, Ordering::Relaxed);
            table.slab.drain()
        };
        let mut wakers = Vec::new();
        for desc in &live {
            desc.shutdown(&mut wakers);
        }
        // No executor will inject these any more: wake them here so their
        // tasks run, see SHUTDOWN and return the error.
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Shared {
    fn record_poll(&self) {
        let nanos = self.base.elapsed().as_nanos().min(u64::MAX as u128 - 1) as u64;
        self.last_poll.store(nanos + 1, Ordering::Relaxed);
    }

    fn last_poll(&self) -> Option<Instant> {
        match self.last_poll.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }

    /// Applies a batch of events to their descriptors.
    fn dispatch(&self, poller: &mut Poller, ready: &mut Vec<Waker>) -> usize {
        let mut pushed = 0;
        let mut table: Option<MutexGuard<'_, Table>> = None;
        for event in poller.events.iter() {
            match event.token().0 {
                TOKEN_WAKER => {}
                TOKEN_TIMER => {
                    poller.timer.acknowledge();
                    poller.timer_armed = None;
                }
                token => {
                    let table = table.get_or_insert_with(|| lock(&self.table));
                    // A stale token (socket closed, slot reused) finds
                    // nothing or a descriptor with another generation.
                    if let Some(desc) = table.slab.get(token) {
                        let bits = bits_from_event(event);
                        desc.set_readiness(bits);
                        pushed += desc.take_wakers(bits, ready);
                    }
                }
            }
        }
        pushed
    }
}

impl Handle {
    /// Interrupts a blocked [`Driver::poll`] (Go's `netpollBreak`). When no
    /// thread is blocked this costs one CAS and no syscall; the next blocking
    /// poll then returns at once.
    pub fn unpark(&self) {
        if self.shared.park.unpark() {
            if let Err(e) = self.shared.waker.wake() {
                tracing::warn!(error = %e, "gort netpoll: waking the poller failed");
            }
        }
    }

    /// Whether a thread is blocked in [`Driver::poll`] right now.
    pub fn is_polling(&self) -> bool {
        self.shared.park.is_polling()
    }

    /// When the driver's last poll ended, if any has (sysmon polls when
    /// nobody did for 10 ms).
    pub fn last_poll(&self) -> Option<Instant> {
        self.shared.last_poll()
    }

    /// Number of sockets currently registered with this driver.
    pub fn registration_count(&self) -> usize {
        lock(&self.shared.table).slab.len()
    }

    /// Whether any socket is registered, without taking a lock: with none,
    /// a non-blocking poll can only find an `unpark`, so findrunnable may
    /// skip it (Go checks `netpollAnyWaiters` for the same reason). A racy
    /// hint: a socket registered concurrently is seen on the next call.
    pub fn has_registrations(&self) -> bool {
        self.shared.registered.load(Ordering::Relaxed) != 0
    }

    /// Whether the driver behind this handle has been dropped.
    pub fn is_shut_down(&self) -> bool {
        lock(&self.shared.table).shut_down
    }

    /// Registers `source` for read and write readiness (edge-triggered).
    pub(crate) fn register(
        &self,
        source: &mut impl mio::event::Source,
    ) -> io::Result<Arc<PollDesc>> {
        let mut table = lock(&self.shared.table);
        if table.shut_down {
            return Err(shutdown_error());
        }
        let desc = table.slab.insert()?;
        self.shared
            .registered
            .store(table.slab.len(), Ordering::Relaxed);
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        if let Err(e) = self
            .shared
            .registry
            .register(source, mio::Token(desc.token()), interest)
        {
            table.slab.remove(desc.token());
            self.shared
                .registered
                .store(table.slab.len(), Ordering::Relaxed);
            return Err(e);
        }
        Ok(desc)
    }

    /// Removes `source` from the poller and frees `desc`'s slot.
    pub(crate) fn deregister(&self, desc: &PollDesc, source: &mut impl mio::event::Source) {
        let mut table = lock(&self.shared.table);
        table.slab.remove(desc.token());
        self.shared
            .registered
            .store(table.slab.len(), Ordering::Relaxed);
        // After shutdown the epoll instance may be gone with the Poll; the
        // fd is about to be closed anyway, which removes it from epoll.
        if !table.shut_down {
            if let Err(e) = self.shared.registry.deregister(source) {
                tracing::debug!(error = %e, "gort netpoll: deregister failed");
            }
        }
    }
}
