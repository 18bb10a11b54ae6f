//! Per-fd readiness and wakers: Go's `pollDesc`.
//!
//! # Purpose
//! A [`PollDesc`] is the meeting point of one socket's tasks and the poller:
//! the poller records the readiness that epoll/kqueue reported and takes the
//! waiting tasks' wakers; a task reads the readiness before (or instead of)
//! parking. Readiness is edge-triggered, so the protocol's job is that no edge
//! is ever lost between a failed syscall and the task going to sleep.
//!
//! # States
//! `readiness` is one `AtomicUsize`:
//!
//! | bits   | name          | meaning                                           |
//! |--------|---------------|---------------------------------------------------|
//! | 0      | `READABLE`    | a read may make progress                          |
//! | 1      | `WRITABLE`    | a write may make progress                         |
//! | 2      | `READ_CLOSED` | the peer will send nothing more (RDHUP/HUP)       |
//! | 3      | `WRITE_CLOSED`| writes will fail (HUP/ERR)                        |
//! | 4      | `ERROR`       | the kernel reported an error; sticky, informative |
//! | 5      | `SHUTDOWN`    | the owning `Driver` is gone; sticky, terminal     |
//! | 16..32 | tick          | bumped by every poller update, wraps at 2^16      |
//!
//! An error event also sets `READABLE | WRITABLE`, so both directions retry
//! the syscall and receive the error from it; `ERROR` itself is never cleared
//! and never counted as readiness.
//!
//! Each direction has one waker slot ([`AtomicWaker`]), `reader` and
//! `writer`: Go's `rg` and `wg`. A direction has at most one waiting task.
//!
//! # Transitions
//! - Poller, [`PollDesc::set_readiness`]: CAS loop ORs the event's bits in and
//!   bumps the tick; then [`PollDesc::take_wakers`] takes the waker of each
//!   direction the event concerns (the executor wakes them as a batch).
//! - Task, [`PollDesc::poll_ready`]: load; if the direction's bits are set,
//!   return a [`ReadyEvent`] (the bits and the tick seen). Otherwise register
//!   the waker, load again, and return `Pending` only if still not ready.
//! - Task, [`PollDesc::clear_readiness`] after the syscall hit `WouldBlock`:
//!   CAS loop clears the event's bits, *only if the tick is still the one in
//!   the event*. A different tick means the poller reported a new edge after
//!   the task's snapshot, possibly after the failed syscall: clearing it would
//!   lose that edge, so the bits stay and the task retries the syscall.
//! - Task, [`PollDesc::clear_drained`] after a short read or write (the
//!   kernel buffer is now empty or full): the same tick rule, but only
//!   `READABLE`/`WRITABLE` go; the closed bits stay so a FIN that came with the
//!   data still ends the next read with EOF; nothing goes after an `ERROR`.
//!   This saves the one `WouldBlock` syscall per message that would otherwise
//!   discover the same fact.
//! - Driver drop, [`PollDesc::shutdown`]: sets `SHUTDOWN` (never cleared) and
//!   takes both wakers; every later `poll_ready` returns at once.
//!
//! # Ownership
//! - `readiness`: written by the poller (set), by the task of each direction
//!   (clear), by driver drop (shutdown), all with CAS; read by anyone.
//! - `reader` / `writer`: registered into by the one task waiting in that
//!   direction, taken from by the poller; see `atomic_waker.rs`.
//! - `token`: written once at creation, read by the poller and on
//!   deregistration.
//!
//! # Orderings
//! - `set_readiness` (AcqRel CAS) happens before the `AtomicWaker::take` that
//!   follows it. `poll_ready` registers, then loads `readiness` (Acquire). The
//!   two sides meet on the waker slot's `state`, where both do read-modify-
//!   writes: if the take comes later in `state`'s order it takes the freshly
//!   registered waker; if it comes earlier, the register's CAS (Acquire) reads
//!   the take's Release store, so the re-load sees the new readiness. This is
//!   Go's `netpollblock` re-check after publishing `pdWait`, without SeqCst.
//! - `clear_readiness` / `clear_drained` (AcqRel CAS) against
//!   `set_readiness` (AcqRel CAS): all are RMWs on `readiness`, so the tick
//!   comparison is exact; no fence needed.
//!
//! # Rejected alternatives
//! - Clearing readiness unconditionally on `WouldBlock`: an edge reported
//!   between the syscall and the clear would be erased and, being
//!   edge-triggered, never reported again: the task would sleep forever.
//! - Level-triggered epoll: no lost edges, but every ready fd is reported on
//!   every poll until drained, which costs the poller time under load.
//! - A lock around readiness and wakers: correct, but it puts a lock on every
//!   would-block read of every socket.
//! - Keeping `READ_CLOSED`/`WRITE_CLOSED` sticky (as tokio does): a syscall
//!   that still says `WouldBlock` after a HUP would make the task spin; here a
//!   direction's closed bit is cleared with its readiness, and the syscall's own
//!   result (EOF or an error) is what the task acts on.
//!
//! The tick is 16 bits: a clear is wrongly allowed only if exactly 65,536
//! poller updates land between one task's snapshot and its clear.
//!
//! # Checked by
//! `src/tests/loom_registration.rs`, in every interleaving the task is woken
//! or sees readiness (and the readiness it will re-check is still set):
//! `loom_event_while_registering`, `loom_event_while_clearing`,
//! `loom_reregister_new_waker_while_taking`, `loom_two_directions_independent`
//! (a clear in one direction never erases the other's), and
//! `loom_shutdown_while_registering` (driver drop). `clear_drained`'s closed-
//! bit rule: `tests/tcp.rs` `short_read_with_fin_already_queued_still_sees_eof`.

use std::fmt;
use std::task::{Context, Poll, Waker};

use crate::atomic_waker::AtomicWaker;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// A read may make progress.
pub(crate) const READABLE: usize = 1 << 0;
/// A write may make progress.
pub(crate) const WRITABLE: usize = 1 << 1;
/// The peer closed its writing side (or the whole connection).
pub(crate) const READ_CLOSED: usize = 1 << 2;
/// Writes will fail.
pub(crate) const WRITE_CLOSED: usize = 1 << 3;
/// The kernel reported an error on the fd.
pub(crate) const ERROR: usize = 1 << 4;
/// The driver that owned this registration is gone.
pub(crate) const SHUTDOWN: usize = 1 << 5;

const TICK_SHIFT: u32 = 16;
const TICK_MASK: usize = 0xffff << TICK_SHIFT;

/// One I/O direction; each has its own readiness bits and waker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Reads, accepts, receives.
    Read,
    /// Writes, connects, sends.
    Write,
}

impl Direction {
    /// The readiness bits that let an operation in this direction proceed.
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED,
            Direction::Write => WRITABLE | WRITE_CLOSED,
        }
    }
}

/// What a task saw when it found its direction ready: the bits and the tick,
/// so that [`PollDesc::clear_readiness`] can tell whether a newer edge came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadyEvent {
    tick: usize,
    ready: usize,
}

impl ReadyEvent {
    /// Whether the owning driver has shut down.
    pub(crate) fn is_shutdown(self) -> bool {
        self.ready & SHUTDOWN != 0
    }
}

/// Per-fd readiness word plus one waker per direction.
pub(crate) struct PollDesc {
    readiness: AtomicUsize,
    reader: AtomicWaker,
    writer: AtomicWaker,
    token: usize,
}

impl PollDesc {
    /// A descriptor for the registration known to mio as `token`.
    ///
    /// It starts optimistic, `READABLE | WRITABLE` at tick 0: the first
    /// operation tries its syscall at once instead of waiting a poller round
    /// trip for the edge epoll reports on registration. A `WouldBlock` clears
    /// the bits as usual, and any real edge bumps the tick first.
    pub(crate) fn new(token: usize) -> PollDesc {
        PollDesc {
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            token,
        }
    }

    /// The mio token this descriptor was registered under.
    pub(crate) fn token(&self) -> usize {
        self.token
    }

    /// Poller: records `bits` (an event's readiness) and bumps the tick.
    pub(crate) fn set_readiness(&self, bits: usize) {
        let mut curr = self.readiness.load(Ordering::Acquire);
        loop {
            let tick = (curr & TICK_MASK).wrapping_add(1 << TICK_SHIFT) & TICK_MASK;
            let next = (curr & !TICK_MASK) | bits | tick;
            match self.readiness.compare_exchange_weak(
                curr,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => curr = actual,
            }
        }
    }

    /// Poller: pushes the waker of each direction `bits` concerns.
    /// Returns how many were pushed.
    pub(crate) fn take_wakers(&self, bits: usize, out: &mut Vec<Waker>) -> usize {
        let mut pushed = 0;
        let wake_all = bits & SHUTDOWN != 0;
        if wake_all || bits & Direction::Read.mask() != 0 {
            if let Some(w) = self.reader.take() {
                out.push(w);
                pushed += 1;
            }
        }
        if wake_all || bits & Direction::Write.mask() != 0 {
            if let Some(w) = self.writer.take() {
                out.push(w);
                pushed += 1;
            }
        }
        pushed
    }

    /// Driver drop: marks the descriptor dead and pushes both wakers.
    pub(crate) fn shutdown(&self, out: &mut Vec<Waker>) {
        self.set_readiness(SHUTDOWN);
        self.take_wakers(SHUTDOWN, out);
    }

    /// The direction's readiness right now, without registering a waker.
    /// The event also carries `ERROR` when set, for [`clear_drained`].
    ///
    /// [`clear_drained`]: PollDesc::clear_drained
    pub(crate) fn ready_now(&self, dir: Direction) -> Option<ReadyEvent> {
        let curr = self.readiness.load(Ordering::Acquire);
        (curr & (dir.mask() | SHUTDOWN) != 0).then_some(ReadyEvent {
            tick: curr & TICK_MASK,
            ready: curr & (dir.mask() | SHUTDOWN | ERROR),
        })
    }

    /// Task: `Ready` when `dir` may make progress (or the driver is gone);
    /// otherwise parks `cx`'s waker for the poller and returns `Pending`.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<ReadyEvent> {
        if let Some(ev) = self.ready_now(dir) {
            return Poll::Ready(ev);
        }
        let slot = match dir {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        };
        slot.register(cx.waker());
        // Re-check after publishing the waker: an edge set before our
        // register took the slot is visible now (Orderings above).
        match self.ready_now(dir) {
            Some(ev) => Poll::Ready(ev),
            None => Poll::Pending,
        }
    }

    /// Task: the syscall behind `ev` returned `WouldBlock`; forget that
    /// readiness (closed bits included) unless a newer edge arrived since `ev`
    /// was taken.
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        self.clear_if_tick(ev.tick, ev.ready & !(SHUTDOWN | ERROR));
    }

    /// Task: a short read or write proved the kernel buffer empty or full, so
    /// forget `READABLE`/`WRITABLE` (same tick rule). The closed bits stay: a
    /// FIN that came with the data must still make the next read return EOF
    /// instead of parking. After an error nothing is cleared here: the error
    /// is still pending in the kernel and the next syscall must report it.
    pub(crate) fn clear_drained(&self, ev: ReadyEvent) {
        if ev.ready & ERROR == 0 {
            self.clear_if_tick(ev.tick, ev.ready & (READABLE | WRITABLE));
        }
    }

    fn clear_if_tick(&self, tick: usize, bits: usize) {
        let mut curr = self.readiness.load(Ordering::Acquire);
        while curr & TICK_MASK == tick {
            match self.readiness.compare_exchange_weak(
                curr,
                curr & !bits,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => curr = actual,
            }
        }
    }
}

impl fmt::Debug for PollDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let curr = self.readiness.load(Ordering::Relaxed);
        f.debug_struct("PollDesc")
            .field("token", &self.token)
            .field("ready", &format_args!("{:#08b}", curr & !TICK_MASK))
            .field("tick", &((curr & TICK_MASK) >> TICK_SHIFT))
            .finish()
    }
}

/// Converts a mio event into readiness bits.
pub(crate) fn bits_from_event(event: &mio::event::Event) -> usize {
    let mut bits = 0;
    if event.is_readable() {
        bits |= READABLE;
    }
    if event.is_writable() {
        bits |= WRITABLE;
    }
    if event.is_read_closed() {
        bits |= READ_CLOSED;
    }
    if event.is_write_closed() {
        bits |= WRITE_CLOSED;
    }
    if event.is_error() {
        bits |= ERROR | READABLE | WRITABLE;
    }
    bits
}
