//! The execution trace: Chrome trace-event JSON for Perfetto and
//! `chrome://tracing` (Go's `runtime/trace` + `go tool trace`).
//!
//! # Purpose
//! Show, per M, which task each poll ran and for how long, which P the M
//! held, when it parked or waited in netpoll, where work was stolen from and
//! where sysmon handed a P off. `GORT_TRACE=path.json` (read when a runtime
//! starts) or [`start`]/[`stop`] switch it on and off for the whole process.
//!
//! # States
//! - `ON` (`AtomicBool`): off -> on in [`start`], on -> off in [`stop`].
//!   Slow-path event sites (P changes, park, netpoll, steal, handoff) load it
//!   (Relaxed) and record nothing while it is off. The poll loop never loads
//!   it: each M re-reads it when `EPOCH` moves (metrics/probe.rs).
//! - `EPOCH` (`AtomicU64`): bumped by start, stop and every writer pass.
//!   An M that sees it move re-reads `ON` and hands its partial buffer over.
//! - `SESSION` (`AtomicU64`): which trace a record belongs to; a buffer
//!   filled under an older session is discarded, not written into a new file.
//! - Per M: a buffer (`MTrace::buf`) of fixed-size binary records
//!   ([`Rec`]), raw TSC ticks (metrics/clock.rs), owned by the M alone.
//!
//! # Transitions
//! - An M appends a record to its own buffer (no lock, no atomic). A full
//!   buffer (`CHUNK` records), a partial one when the epoch moved, one before
//!   the M sleeps, and the last one when the M exits go to the writer's
//!   queue (`QUEUE`, a Mutex: one lock per chunk of 4,096 polls).
//! - The writer thread (writer.rs) wakes when a chunk arrives or every
//!   `FLUSH_EVERY` (200 ms), bumps `EPOCH`, converts ticks to microseconds
//!   with a fresh calibration and formats the JSON: the M pays the binary
//!   record, the writer the text.
//! - [`stop`]: `ON` off, `EPOCH` bumped; the writer waits (up to 500 ms)
//!   until no M holds unwritten records (`PENDING`), writes what is queued
//!   and closes the JSON array.
//!
//! # Ownership
//! `MTrace::buf`: its M. `QUEUE`: under its Mutex. `PENDING`: incremented
//! by an M when its empty buffer gets a record, decremented when it hands
//! the buffer over.
//!
//! # Orderings
//! `ON`, `EPOCH`, `SESSION` are Relaxed switches: the records themselves
//! travel through `QUEUE`'s Mutex (the M's push happens-before the writer's
//! pop). Missing a switch by a few events is harmless: late records of a
//! stopped session are discarded by session. `PENDING`'s decrement in
//! `hand_over` is Release, after the M's push under the lock; the writer's
//! `load(Acquire)` in `Out::run` pairs with it, so a writer that reads 0
//! and then locks `QUEUE` sees every chunk those Ms pushed (with Relaxed
//! it could take the lock before such a push in the lock's order and close
//! the file without it). The increment stays Relaxed: it only delays the
//! close.
//!
//! # Bounded memory
//! At most `MAX_QUEUED` records (262,144, about 12 MB) wait for the writer.
//! A chunk handed over past that is *dropped* (its M keeps recording into
//! the same memory) and its count queued in an empty chunk; the writer
//! then writes an `events dropped` instant on that M's track. So when the
//! writer cannot keep up, the newest chunks are lost, a gap the trace labels.
//! The writer runs at a low priority (`nice` 10 on Linux): when the traced
//! program keeps every core busy, it is the trace that loses events, not
//! the program that slows down for it.
//! A dropped chunk can leave a P or park slice without its end (Perfetto
//! closes it at the next slice of the track).
//!
//! # Rejected alternatives
//! - A lock per M buffer, taken per event (the previous design): ~3x on
//!   yield_many with the two `clock_gettime` calls per poll.
//! - JSON formatted by the M: a few hundred instructions per poll on the
//!   M's own time; the writer does it on its own thread.
//! - Drop-oldest: the oldest chunks have already been handed to the writer
//!   and written; the ones that can be dropped without a lock are the new ones.
//!
//! # Checked by
//! `tests/trace.rs` (a traced run parses as JSON, every event has the
//! format's fields, per-track timestamps are ordered, P slices nest),
//! `tests/trace_echo.rs` (the echo workload: accept, reads, writes and
//! netpoll waits), `tests/trace_partial.rs` (a file cut short still loads),
//! the facade's `tests/gc_trace.rs` (a collection's phases on the GC track).
//! No loom model: the trace's state is process-wide statics, which loom's
//! atomics and Mutex cannot be, so the trace compiles to no-ops under
//! `cfg(loom)`; the one ordering that matters (`PENDING`, above) is a
//! plain Release/Acquire pair around a Mutex.

#[cfg(not(loom))]
mod writer;

use std::cell::RefCell;
use std::io;
use std::panic::Location;
use std::path::Path;
use std::sync::Arc as StdArc;

#[cfg(not(loom))]
use gort_netpoll::loom::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Relaxed, Release},
};
#[cfg(not(loom))]
use gort_netpoll::loom::sync::{Condvar, Mutex};

use crate::metrics::ticks;

/// Records per chunk handed to the writer.
const CHUNK: usize = 4096;
/// Records that may wait for the writer (see "Bounded memory").
#[cfg(not(loom))]
const MAX_QUEUED: usize = 1 << 18;

#[cfg(not(loom))]
static ON: AtomicBool = AtomicBool::new(false);
#[cfg(not(loom))]
static EPOCH: AtomicU64 = AtomicU64::new(0);
#[cfg(not(loom))]
static SESSION: AtomicU64 = AtomicU64::new(0);
#[cfg(not(loom))]
static PENDING: AtomicU64 = AtomicU64::new(0);
#[cfg(not(loom))]
static FLOW_IDS: AtomicU64 = AtomicU64::new(1);
#[cfg(not(loom))]
static NEXT_M: AtomicU64 = AtomicU64::new(0);
/// Chunks on their way to the writer, and the writer's wake-up.
#[cfg(not(loom))]
static QUEUE: Mutex<Queue> = Mutex::new(Queue::new());
#[cfg(not(loom))]
static QUEUED: Condvar = Condvar::new();
/// The running writer.
#[cfg(not(loom))]
static WRITER: Mutex<Option<writer::Session>> = Mutex::new(None);

/// Whether the execution trace is on: one Relaxed load.
#[inline]
pub(crate) fn enabled() -> bool {
    #[cfg(not(loom))]
    {
        ON.load(Relaxed)
    }
    #[cfg(loom)]
    {
        false
    }
}

/// The switches' epoch (see the module doc).
#[inline]
pub(crate) fn epoch() -> u64 {
    #[cfg(not(loom))]
    {
        EPOCH.load(Relaxed)
    }
    #[cfg(loom)]
    {
        0
    }
}

/// A fresh id for a steal's flow arrow.
pub(crate) fn next_flow() -> u64 {
    #[cfg(not(loom))]
    {
        FLOW_IDS.fetch_add(1, Relaxed)
    }
    #[cfg(loom)]
    {
        0
    }
}

/// One recorded event; times are raw ticks (metrics/clock.rs).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(loom, allow(dead_code))] // the writer does not exist under loom
pub(crate) enum Rec {
    /// A poll of `task` on P `p`, from `t0` to `t1`.
    Poll {
        t0: u64,
        t1: u64,
        task: u64,
        at: &'static Location<'static>,
        p: u32,
    },
    /// The M took P `p`.
    PStart { ts: u64, p: u32 },
    /// The M gave P `p` up.
    PStop { ts: u64, p: u32 },
    /// The M went to sleep holding no P (`end` false), or woke (`end` true).
    Park { ts: u64, end: bool },
    /// The M waited in (or polled) the network poller.
    Netpoll { t0: u64, t1: u64, events: u32 },
    /// P `p` of the M stole `n` tasks from P `victim`; `flow` links the two.
    Steal {
        ts: u64,
        p: u32,
        victim: u32,
        n: u32,
        flow: u64,
    },
    /// Sysmon took P `p` from this M, blocked in a poll, and handed it off.
    Handoff { ts: u64, p: u32 },
    /// A phase of the garbage collector begins or ends, or a moment of it
    /// (`gc_event`): on the "GC" track.
    Gc {
        ts: u64,
        name: &'static str,
        edge: GcEdge,
        cycle: u64,
    },
}

/// What a [`gc_event`] marks on the "GC" track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcEdge {
    /// A phase begins (a slice opens; phases nest).
    Begin,
    /// The innermost open phase ends.
    End,
    /// A moment (an instant event).
    Instant,
}

/// A chunk of one M's records on its way to the writer.
#[cfg_attr(loom, allow(dead_code))]
struct Chunk {
    m: u64,
    session: u64,
    recs: Vec<Rec>,
    /// Records of this M dropped (the queue was full): carried by an empty
    /// chunk.
    dropped: u64,
}

#[cfg_attr(loom, allow(dead_code))]
struct Queue {
    chunks: Vec<Chunk>,
    records: usize,
    /// Thread names of the Ms, by trace M id (the tracks' names).
    threads: Vec<(u64, String)>,
    /// Names of named tasks spawned while the trace is on.
    names: Vec<(u64, StdArc<str>)>,
    /// Emptied buffers, for the Ms to reuse.
    free: Vec<Vec<Rec>>,
}

impl Queue {
    #[cfg(not(loom))]
    const fn new() -> Queue {
        Queue {
            chunks: Vec::new(),
            records: 0,
            threads: Vec::new(),
            names: Vec::new(),
            free: Vec::new(),
        }
    }
}

/// An M's trace buffer; see the module doc.
#[cfg_attr(loom, allow(dead_code))] // nothing is recorded under loom
pub(crate) struct MTrace {
    /// Process-wide M id: the trace's `tid` (runtimes number their Ms from 0).
    m: u64,
    buf: RefCell<Vec<Rec>>,
    session: std::cell::Cell<u64>,
}

impl MTrace {
    /// The buffer of a new M, `local` its id in its runtime.
    pub(crate) fn register(local: usize) -> MTrace {
        #[cfg(not(loom))]
        {
            let m = NEXT_M.fetch_add(1, Relaxed);
            let thread = std::thread::current().name().unwrap_or("?").to_string();
            QUEUE
                .lock()
                .unwrap()
                .threads
                .push((m, format!("M{m} ({thread}, M{local} of its runtime)")));
            MTrace {
                m,
                buf: RefCell::new(Vec::new()),
                session: std::cell::Cell::new(0),
            }
        }
        #[cfg(loom)]
        {
            let _ = local;
            MTrace {
                m: 0,
                buf: RefCell::new(Vec::new()),
                session: std::cell::Cell::new(0),
            }
        }
    }

    /// The process-wide id of this M (the trace's `tid`).
    pub(crate) fn m_id(&self) -> u64 {
        self.m
    }

    /// Appends `rec` (the caller checked that the trace is on).
    #[inline]
    pub(crate) fn record(&self, rec: Rec) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            drop(buf);
            self.start_buffer();
            buf = self.buf.borrow_mut();
        }
        buf.push(rec);
        if buf.len() >= CHUNK {
            drop(buf);
            self.hand_over(true);
        }
    }

    /// A slow-path event: one Relaxed load while the trace is off.
    #[inline]
    pub(crate) fn event(&self, rec: impl FnOnce(u64) -> Rec) {
        if enabled() {
            self.record(rec(ticks()));
        }
    }

    #[cold]
    fn start_buffer(&self) {
        #[cfg(not(loom))]
        {
            PENDING.fetch_add(1, Relaxed);
            self.session.set(SESSION.load(Relaxed));
            let mut buf = self.buf.borrow_mut();
            if buf.capacity() < CHUNK {
                *buf = QUEUE
                    .lock()
                    .unwrap()
                    .free
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(CHUNK));
            }
        }
    }

    /// Hands the buffered records to the writer (nothing when empty). The
    /// writer takes them at its next pass (within `FLUSH_EVERY`): waking it
    /// for every partial buffer (an M about to sleep) would cost the M a
    /// futex call each time.
    pub(crate) fn flush(&self) {
        self.hand_over(false);
    }

    /// Hands the buffer over; `full` wakes the writer.
    fn hand_over(&self, full: bool) {
        #[cfg(not(loom))]
        {
            let mut buf = self.buf.borrow_mut();
            if buf.is_empty() {
                return;
            }
            let mut q = QUEUE.lock().unwrap();
            let session = self.session.get();
            if session != SESSION.load(Relaxed) {
                // A record of a stopped trace: not for the next file.
                buf.clear();
            } else if q.records + buf.len() > MAX_QUEUED {
                // Dropped; the count travels in an empty chunk (no memory
                // beyond its header, merged with this M's previous one), so
                // the writer labels the gap even if nothing of this M's is
                // accepted again.
                let n = buf.len() as u64;
                buf.clear();
                match q.chunks.last_mut() {
                    Some(c) if c.m == self.m && c.recs.is_empty() => c.dropped += n,
                    _ => q.chunks.push(Chunk {
                        m: self.m,
                        session,
                        recs: Vec::new(),
                        dropped: n,
                    }),
                }
            } else {
                let recs = std::mem::replace(&mut *buf, q.free.pop().unwrap_or_default());
                q.records += recs.len();
                q.chunks.push(Chunk {
                    m: self.m,
                    session,
                    recs,
                    dropped: 0,
                });
            }
            drop(q);
            // Release: pairs with the writer's Acquire load (Orderings).
            PENDING.fetch_sub(1, Release);
            if full || !enabled() {
                // A full chunk, or the last records `stop` waits for.
                QUEUED.notify_all();
            }
        }
        #[cfg(loom)]
        let _ = full;
    }
}

impl Drop for MTrace {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Sysmon took P `p` from an M blocked in a poll and handed it off:
/// recorded on sysmon's own track (sysmon is not an M and has no buffer).
pub(crate) fn handoff(p: usize) {
    off_m(SYSMON_TID, |ts| Rec::Handoff { ts, p: p as u32 });
}

/// Records an event of the garbage collector on the trace's "GC" track:
/// phases as nested slices, moments as instants, `cycle` in their args.
/// One Relaxed load when no trace runs. Callable from any thread (the
/// `gort` facade calls it from gort-alloc's phase hook, on the collector
/// thread; the executor cannot depend on gort-alloc, nor the reverse).
///
/// An `End` whose `Begin` came before the trace started is not written.
pub fn gc_event(name: &'static str, edge: GcEdge, cycle: u64) {
    off_m(GC_TID, |ts| Rec::Gc {
        ts,
        name,
        edge,
        cycle,
    });
}

/// The `tid` of sysmon's track in the Ms' process (above any M id).
const SYSMON_TID: u64 = 1 << 20;
/// The `tid` of the garbage collector's track (`gc_event`), next to sysmon's.
const GC_TID: u64 = SYSMON_TID + 1;

/// An event of a thread with no buffer of its own (sysmon, the collector):
/// a chunk of one record, straight onto the queue. These are rare (a
/// handoff, a GC phase), so a lock each is cheap. One Relaxed load when
/// no trace runs.
fn off_m(track: u64, rec: impl FnOnce(u64) -> Rec) {
    #[cfg(not(loom))]
    if enabled() {
        let rec = rec(ticks());
        let mut q = QUEUE.lock().unwrap();
        q.records += 1;
        q.chunks.push(Chunk {
            m: track,
            session: SESSION.load(Relaxed),
            recs: vec![rec],
            dropped: 0,
        });
    }
    #[cfg(loom)]
    let _ = (track, rec);
}

/// A named task was spawned: its name goes to the trace (when on).
pub(crate) fn note_name(id: u64, name: &StdArc<str>) {
    #[cfg(not(loom))]
    if enabled() {
        QUEUE.lock().unwrap().names.push((id, name.clone()));
    }
    #[cfg(loom)]
    let _ = (id, name);
}

/// Errors of [`start`].
fn already_running() -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        "gort::trace::start: a trace is already being written; call gort::trace::stop first",
    )
}

/// Starts writing the execution trace of every gort runtime of this process
/// to `path` (created or truncated), in the Chrome trace-event JSON format.
/// Busy Ms start recording polls within 64 polls of the call.
///
/// # Errors
/// The file cannot be created, the writer thread cannot start, or a trace
/// is already running.
pub fn start(path: impl AsRef<Path>) -> io::Result<()> {
    #[cfg(not(loom))]
    {
        let mut session = WRITER.lock().unwrap();
        if session.is_some() {
            return Err(already_running());
        }
        {
            let mut q = QUEUE.lock().unwrap();
            q.chunks.clear();
            q.records = 0;
            q.names.clear();
        }
        *session = Some(writer::Session::start(path.as_ref())?);
        SESSION.fetch_add(1, Relaxed);
        ON.store(true, Relaxed);
        EPOCH.fetch_add(1, Relaxed);
        Ok(())
    }
    #[cfg(loom)]
    {
        let _ = path;
        Err(already_running())
    }
}

/// Stops the trace: writes every buffered event, closes the JSON array and
/// the file. Returns the number of events written (dropped ones excluded).
///
/// An M inside a long poll hands its last records over when the poll ends;
/// `stop` waits up to 500 ms for that, then closes the file without them.
///
/// # Errors
/// No trace is running, or writing the file failed.
pub fn stop() -> io::Result<u64> {
    #[cfg(not(loom))]
    {
        let session = WRITER.lock().unwrap().take();
        let Some(session) = session else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "gort::trace::stop: no trace is running",
            ));
        };
        ON.store(false, Relaxed);
        EPOCH.fetch_add(1, Relaxed);
        session.stop()
    }
    #[cfg(loom)]
    {
        Err(io::Error::other("gort: no execution trace under loom"))
    }
}

/// Starts the trace named by `GORT_TRACE`, if set and none is running
/// (called when a runtime starts); true when this call started it. An error
/// is reported on stderr: a diagnostic switch must not stop the program.
pub(crate) fn start_from_env() -> bool {
    #[cfg(not(loom))]
    if let Some(path) = std::env::var_os("GORT_TRACE")
        && WRITER.lock().unwrap().is_none()
    {
        return match start(&path) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("gort: GORT_TRACE={}: {e}", Path::new(&path).display());
                false
            }
        };
    }
    false
}

#[cfg(all(test, not(loom)))]
mod tests {
    #[test]
    fn a_record_stays_five_words() {
        // A chunk holds 4,096 records; the GC variant must not grow them.
        assert!(std::mem::size_of::<super::Rec>() <= 40);
    }
}
