//! The execution trace: Chrome trace-event JSON for Perfetto and
//! `chrome://tracing` (Go's `runtime/trace` + `go tool trace`).
//!
//! # Purpose
//! Show, per M, which task each poll ran and for how long, which P the M
//! held, when it parked or waited in netpoll, and where work was stolen
//! from. `GORT_TRACE=path.json` (read when a runtime starts) or
//! [`start`]/[`stop`] switch it on and off for the whole process.
//!
//! # States
//! `ON` (an `AtomicBool`): off -> on in [`start`], on -> off in [`stop`].
//! While off, every event site costs one Relaxed load of `ON` and records
//! nothing. `SESSION` (a Mutex) holds the writer thread while on.
//!
//! # Transitions
//! - An M creates its [`MTrace`] buffer when it starts (registered in
//!   `REGISTRY`), appends events to it while `ON`, and on exit moves what is
//!   left to `ORPHANS` and unregisters.
//! - The writer thread (writer.rs) wakes every `FLUSH_EVERY` (200 ms),
//!   swaps each buffer for an empty one under the buffer's lock, and writes
//!   the events to the file: the file is at most about 200 ms behind.
//! - [`stop`]: `ON` off, then the writer drains once more and closes the
//!   JSON array.
//!
//! # Ownership
//! Each `MBuf::events` is pushed by its M and swapped by the writer, under
//! its Mutex (uncontended but for the swap, five times a second).
//!
//! # Orderings
//! `ON` is Relaxed: an event site that misses the switch by a few events is
//! harmless (events recorded after `stop` stay in the buffer and are
//! discarded by the next `start`).
//!
//! # Bounded memory
//! Each M buffers at most `MAX_EVENTS_PER_M` (65,536, about 5 MB) events
//! between two writer passes. Past that the M *stops* recording (newer
//! events are dropped and counted) until the writer drains it; the writer
//! then writes one `events dropped` instant on that M's track, so a gap in
//! the trace is labelled, never silent.
//!
//! # Rejected alternatives
//! - A thread-local buffer per M with no lock: `stop` could not collect the
//!   events of an M that never reaches a flush point (blocked in a poll).
//! - Drop-oldest ring: the newest events are the ones being looked at, but
//!   dropping in the middle of a poll's B/E pairs breaks the nesting of the
//!   M's track; stopping keeps every recorded slice whole.
//!
//! # Checked by
//! `tests/trace.rs`: a traced run parses as JSON, every event has the
//! format's fields, per-track timestamps are ordered and P slices nest.

#[cfg(not(loom))]
mod writer;

use std::io;
use std::panic::Location;
use std::path::Path;
use std::sync::Arc as StdArc;

#[cfg(not(loom))]
use gort_netpoll::loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
#[cfg(not(loom))]
use gort_netpoll::loom::sync::{Arc, Mutex};

/// Events an M may buffer between two writer passes (see "Bounded memory").
#[cfg(not(loom))]
const MAX_EVENTS_PER_M: usize = 1 << 16;

#[cfg(not(loom))]
static ON: AtomicBool = AtomicBool::new(false);
#[cfg(not(loom))]
static REGISTRY: Mutex<Vec<Arc<MBuf>>> = Mutex::new(Vec::new());
#[cfg(not(loom))]
static ORPHANS: Mutex<Vec<(usize, Event)>> = Mutex::new(Vec::new());
#[cfg(not(loom))]
static SESSION: Mutex<Option<writer::Session>> = Mutex::new(None);
#[cfg(not(loom))]
static FLOW_IDS: AtomicU64 = AtomicU64::new(1);
#[cfg(not(loom))]
static NEXT_M: AtomicU64 = AtomicU64::new(0);

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

/// One recorded event; timestamps are nanoseconds of `metrics::now`.
#[cfg_attr(loom, allow(dead_code))] // the writer does not exist under loom
pub(crate) struct Event {
    pub(crate) ts: u64,
    pub(crate) kind: Kind,
}

/// What happened.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) enum Kind {
    /// A poll of `task` on P `p`.
    Poll {
        p: usize,
        task: u64,
        name: Option<StdArc<str>>,
        spawned_at: &'static Location<'static>,
        dur: u64,
    },
    /// The M acquired P `p`.
    PStart { p: usize },
    /// The M released P `p`.
    PStop { p: usize },
    /// The M went to sleep holding no P (`end` false), or woke (`end`
    /// true). A B/E pair, so that netpoll waits inside it nest in order.
    Park { end: bool },
    /// The M's P `p` stole `n` tasks from P `victim`; `flow` links the two.
    Steal {
        p: usize,
        victim: usize,
        n: usize,
        flow: u64,
    },
    /// The M waited in (or polled) the network poller.
    Netpoll { dur: u64, events: usize },
    /// P `p` was handed off from this M (blocked in a poll) by sysmon.
    Handoff { p: usize },
    /// Events this M could not record (its buffer was full).
    Dropped { n: u64 },
}

/// An M's buffer.
#[cfg(not(loom))]
struct MBuf {
    m: usize,
    thread: String,
    events: Mutex<Vec<Event>>,
    dropped: AtomicU64,
}

/// An M's handle to its trace buffer; every method is a no-op while the
/// trace is off (after the one Relaxed load).
pub(crate) struct MTrace {
    #[cfg(not(loom))]
    buf: Arc<MBuf>,
    m: usize,
}

impl MTrace {
    /// Registers the calling M's buffer under a new process-wide M id.
    pub(crate) fn register() -> MTrace {
        #[cfg(not(loom))]
        {
            let m = NEXT_M.fetch_add(1, Relaxed) as usize;
            let thread = std::thread::current().name().unwrap_or("?").to_string();
            let buf = Arc::new(MBuf {
                m,
                thread,
                events: Mutex::new(Vec::new()),
                dropped: AtomicU64::new(0),
            });
            REGISTRY.lock().unwrap().push(buf.clone());
            MTrace { buf, m }
        }
        #[cfg(loom)]
        {
            MTrace { m: 0 }
        }
    }

    /// The process-wide id of this M (the trace's `tid`, the dump's `M`).
    pub(crate) fn m_id(&self) -> usize {
        self.m
    }

    #[inline]
    fn push(&self, kind: impl FnOnce() -> Kind, ts: impl FnOnce() -> u64) {
        #[cfg(not(loom))]
        if enabled() {
            let mut events = self.buf.events.lock().unwrap();
            if events.len() >= MAX_EVENTS_PER_M {
                self.buf.dropped.fetch_add(1, Relaxed);
                return;
            }
            events.push(Event {
                ts: ts(),
                kind: kind(),
            });
        }
        #[cfg(loom)]
        let _ = (kind, ts);
    }

    /// A poll (recorded after it, with its start time).
    pub(crate) fn poll(
        &self,
        p: usize,
        task: u64,
        name: Option<StdArc<str>>,
        spawned_at: &'static Location<'static>,
        t0: u64,
        dur: u64,
    ) {
        self.push(
            || Kind::Poll {
                p,
                task,
                name,
                spawned_at,
                dur,
            },
            || t0,
        );
    }

    /// The M took P `p`.
    #[inline]
    pub(crate) fn p_start(&self, p: usize) {
        self.push(|| Kind::PStart { p }, crate::metrics::now);
    }

    /// The M gave P `p` up.
    #[inline]
    pub(crate) fn p_stop(&self, p: usize) {
        self.push(|| Kind::PStop { p }, crate::metrics::now);
    }

    /// The start of a netpoll wait, when the trace is on.
    #[inline]
    pub(crate) fn wait_start(&self) -> Option<u64> {
        enabled().then(crate::metrics::now)
    }

    /// The M is about to sleep (it released its P).
    #[inline]
    pub(crate) fn park(&self) {
        self.push(|| Kind::Park { end: false }, crate::metrics::now);
    }

    /// The M woke up.
    #[inline]
    pub(crate) fn unpark(&self) {
        self.push(|| Kind::Park { end: true }, crate::metrics::now);
    }

    /// The M waited in netpoll from `t0` until now and got `events`.
    #[inline]
    pub(crate) fn netpoll(&self, t0: Option<u64>, events: usize) {
        if let Some(t0) = t0 {
            let dur = crate::metrics::now().saturating_sub(t0);
            self.push(|| Kind::Netpoll { dur, events }, || t0);
        }
    }

    /// P `p` of this M stole `n` tasks from P `victim`.
    #[inline]
    pub(crate) fn steal(&self, p: usize, victim: usize, n: usize) {
        #[cfg(not(loom))]
        self.push(
            || Kind::Steal {
                p,
                victim,
                n,
                flow: FLOW_IDS.fetch_add(1, Relaxed),
            },
            crate::metrics::now,
        );
        #[cfg(loom)]
        let _ = (p, victim, n);
    }

    /// Sysmon handed P `p` off from this M. Called by sysmon's `handoffp`
    /// once that lands (merge seam).
    #[allow(dead_code)]
    #[inline]
    pub(crate) fn handoff(&self, p: usize) {
        self.push(|| Kind::Handoff { p }, crate::metrics::now);
    }
}

#[cfg(not(loom))]
impl Drop for MTrace {
    fn drop(&mut self) {
        let mut registry = REGISTRY.lock().unwrap();
        registry.retain(|b| !Arc::ptr_eq(b, &self.buf));
        drop(registry);
        let events = std::mem::take(&mut *self.buf.events.lock().unwrap());
        ORPHANS
            .lock()
            .unwrap()
            .extend(events.into_iter().map(|e| (self.m, e)));
    }
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
///
/// # Errors
/// The file cannot be created, the writer thread cannot start, or a trace
/// is already running.
pub fn start(path: impl AsRef<Path>) -> io::Result<()> {
    #[cfg(not(loom))]
    {
        let mut session = SESSION.lock().unwrap();
        if session.is_some() {
            return Err(already_running());
        }
        for buf in REGISTRY.lock().unwrap().iter() {
            buf.events.lock().unwrap().clear();
        }
        ORPHANS.lock().unwrap().clear();
        *session = Some(writer::Session::start(path.as_ref())?);
        ON.store(true, Relaxed);
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
/// # Errors
/// No trace is running, or writing the file failed.
pub fn stop() -> io::Result<u64> {
    #[cfg(not(loom))]
    {
        let session = SESSION.lock().unwrap().take();
        let Some(session) = session else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "gort::trace::stop: no trace is running",
            ));
        };
        ON.store(false, Relaxed);
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
        && SESSION.lock().unwrap().is_none()
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
