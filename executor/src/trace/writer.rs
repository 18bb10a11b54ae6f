//! The trace writer thread: takes the Ms' chunks of binary records off the
//! queue and appends Chrome trace-event JSON objects to the file.
//!
//! The file is one JSON array, one event per line, each followed by a
//! comma; [`Session::stop`] ends it with a last metadata event and `]`. The
//! format tolerates a missing `]` and a trailing comma, so a file cut short
//! by a killed process still loads. The writer flushes the file at every
//! pass (at least every `FLUSH_EVERY`).
//!
//! Tracks: process 1 ("gort Ms") has one thread per M (`tid` = the M's
//! process-wide trace id): P ownership as B/E slices `P<n>`, polls as X
//! slices nested in them, parks as B/E slices `park` between them (netpoll
//! waits, X slices, nest in them), sysmon's handoffs as instants on a
//! `sysmon` thread, and the garbage collector's phases (B/E slices "GC
//! cycle" > "count", "mark", "sweep") and handshakes (instants) on a `GC`
//! thread, when the `gort` facade connected gort-alloc's hook. Process 2 ("gort Ps") has one thread per P, holding the
//! zero-length "stolen" slices where steal flow arrows start (`ph` `s`); the
//! arrow ends (`ph` `f`, `bp` `e`) on the thief M's "steal" slice.
//!
//! Times: ticks become microseconds since the process's first clock
//! reading with a calibration taken at every pass over the whole interval
//! since then (metrics/clock.rs). Each M track's times are clamped to be
//! non-decreasing in file order, so a refined calibration never makes a
//! track step back (the shift is below a microsecond).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::panic::Location;
use std::path::Path;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use gort_netpoll::loom::sync::atomic::Ordering::{Acquire, Relaxed};
use gort_netpoll::loom::sync::{Arc, Mutex};
use gort_netpoll::loom::thread;

use super::{Chunk, EPOCH, GC_TID, GcEdge, PENDING, QUEUE, QUEUED, Rec, SESSION, SYSMON_TID};
use crate::metrics::Calibration;

/// How often the writer asks the Ms for their partial buffers and writes.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Tasks whose poll text is kept; the cache starts over past this.
const MAX_CACHED_TASKS: usize = 1 << 14;
/// How long `stop` waits for Ms still holding records.
const STOP_GRACE: Duration = Duration::from_millis(500);

const PID_MS: u32 = 1;
const PID_PS: u32 = 2;

/// A running trace: its writer thread and the stop signal.
pub(super) struct Session {
    stop: Arc<Mutex<bool>>,
    thread: thread::JoinHandle<io::Result<u64>>,
}

impl Session {
    pub(super) fn start(path: &Path) -> io::Result<Session> {
        let file = File::create(path)?;
        let mut out = Out {
            file: BufWriter::new(file),
            line: Vec::with_capacity(1 << 17),
            seen_m: HashMap::default(),
            last: 0,
            tail: Vec::new(),
            seen_p: Vec::new(),
            names: crate::metrics::named_tasks().into_iter().collect(),
            places: HashMap::default(),
            tasks: HashMap::default(),
            cal: Calibration::now(),
            gc_open: 0,
            ts_text: TsText::default(),
            session: SESSION.load(Relaxed) + 1,
            written: 0,
        };
        out.line.extend_from_slice(b"[\n");
        out.meta(PID_MS, 0, "process_name", "gort Ms")?;
        out.meta(PID_PS, 0, "process_name", "gort Ps")?;
        out.meta(PID_MS, SYSMON_TID, "thread_name", "sysmon")?;
        out.meta(PID_MS, GC_TID, "thread_name", "GC")?;
        out.spill(true)?;
        out.file.flush()?;
        let stop = Arc::new(Mutex::new(false));
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name("gort-trace-writer".into())
            .spawn(move || out.run(&stop2))?;
        Ok(Session { stop, thread })
    }

    pub(super) fn stop(self) -> io::Result<u64> {
        *self.stop.lock().unwrap() = true;
        QUEUED.notify_all();
        match self.thread.join() {
            Ok(res) => res,
            Err(_) => Err(io::Error::other("gort: the trace writer thread panicked")),
        }
    }
}

struct Out {
    file: BufWriter<File>,
    /// Formatted events not yet written (`spill`).
    line: Vec<u8>,
    /// Per M track: the last timestamp written (ns), for the clamp.
    seen_m: HashMap<u64, u64, Fast>,
    /// The chunk's M: its last timestamp written (ns) and `,"pid":1,"tid":M`.
    last: u64,
    tail: Vec<u8>,
    seen_p: Vec<bool>,
    names: HashMap<u64, StdArc<str>, Fast>,
    /// Spawn locations already formatted (JSON-escaped), by address.
    places: HashMap<usize, String, Fast>,
    /// Per task, the fixed text of its poll slices (`poll_text`).
    tasks: HashMap<u64, (Vec<u8>, usize), Fast>,
    cal: Calibration,
    /// GC phases open on the GC track (an `End` with none open is skipped).
    gc_open: u32,
    /// The last poll's `ts`, whole microseconds, as text.
    ts_text: TsText,
    session: u64,
    written: u64,
}

impl Out {
    fn run(mut self, stop: &Mutex<bool>) -> io::Result<u64> {
        lower_priority();
        let mut stopping_since: Option<Instant> = None;
        loop {
            let (chunks, names, threads) = {
                let mut q = QUEUE.lock().unwrap();
                if q.chunks.is_empty() && stopping_since.is_none() && !*stop.lock().unwrap() {
                    q = QUEUED.wait_timeout(q, FLUSH_EVERY).unwrap().0;
                }
                // Ask busy Ms for their partial buffers.
                EPOCH.fetch_add(1, Relaxed);
                q.records = 0;
                let names = std::mem::take(&mut q.names);
                (std::mem::take(&mut q.chunks), names, q.threads.clone())
            };
            self.names.extend(names);
            self.cal = Calibration::now();
            let mut free = Vec::new();
            for mut chunk in chunks {
                self.chunk(&chunk, &threads)?;
                chunk.recs.clear();
                free.push(chunk.recs);
            }
            QUEUE.lock().unwrap().free.extend(free);
            self.spill(true)?;
            self.file.flush()?;
            if *stop.lock().unwrap() {
                let since = *stopping_since.get_or_insert_with(Instant::now);
                // Acquire: pairs with `hand_over`'s Release decrement, so
                // the lock below sees the chunks of the Ms counted out.
                let drained = PENDING.load(Acquire) == 0 && QUEUE.lock().unwrap().chunks.is_empty();
                if drained || since.elapsed() >= STOP_GRACE {
                    return self.close();
                }
                let q = QUEUE.lock().unwrap();
                if q.chunks.is_empty() {
                    let _ = QUEUED.wait_timeout(q, Duration::from_millis(10)).unwrap();
                }
            }
        }
    }

    fn close(mut self) -> io::Result<u64> {
        self.spill(true)?;
        // The last element has no trailing comma.
        write!(
            self.file,
            "{{\"name\":\"trace_end\",\"ph\":\"M\",\"pid\":{PID_MS},\"tid\":0,\"ts\":0,\"args\":{{}}}}\n]\n"
        )?;
        self.file.flush()?;
        Ok(self.written)
    }

    /// Writes the formatted text out once it is large (`all`: whatever
    /// there is): the events are formatted into `line` back to back.
    fn spill(&mut self, all: bool) -> io::Result<()> {
        if all || self.line.len() >= 1 << 16 {
            self.file.write_all(&self.line)?;
            self.line.clear();
        }
        Ok(())
    }

    /// Writes one chunk (and the metadata of a track seen for the first time).
    fn chunk(&mut self, chunk: &Chunk, threads: &[(u64, String)]) -> io::Result<()> {
        if chunk.session != self.session {
            return Ok(());
        }
        let m = chunk.m;
        if let std::collections::hash_map::Entry::Vacant(e) = self.seen_m.entry(m) {
            e.insert(0);
            if let Some((_, name)) = threads.iter().find(|(id, _)| *id == m) {
                let name = name.clone();
                self.meta(PID_MS, m, "thread_name", &name)?;
            }
        }
        self.last = self.seen_m[&m];
        self.tail.clear();
        head_tail(&mut self.tail, PID_MS, m);
        for rec in &chunk.recs {
            self.event(rec)?;
        }
        self.seen_m.insert(m, self.last);
        if chunk.dropped > 0 {
            let ts = self.last;
            let l = &mut self.line;
            l.extend_from_slice(
                b"{\"name\":\"events dropped\",\"cat\":\"trace\",\"ph\":\"i\",\"s\":\"t\",\"ts\":",
            );
            micros(l, ts);
            l.extend_from_slice(&self.tail);
            l.extend_from_slice(b",\"args\":{\"dropped\":");
            num(l, chunk.dropped);
            l.extend_from_slice(b"}},\n");
            self.spill(false)?;
            self.written += 1;
        }
        Ok(())
    }

    /// Nanoseconds of `ticks` on the chunk's M track, never before its
    /// last event.
    fn ts(&mut self, ticks: u64) -> u64 {
        self.last = self.last.max(self.cal.ns(ticks));
        self.last
    }

    fn event(&mut self, rec: &Rec) -> io::Result<()> {
        let mut steal_victim = None;
        match *rec {
            Rec::Poll {
                t0,
                t1,
                task,
                at,
                p,
            } => {
                let ts = self.ts(t0);
                let end = self.cal.ns(t1).max(ts);
                self.last = end;
                if self.tasks.len() >= MAX_CACHED_TASKS {
                    self.tasks.clear();
                }
                let (names, places) = (&self.names, &mut self.places);
                let (text, split) = &*self.tasks.entry(task).or_insert_with(|| {
                    let name = names.get(&task);
                    poll_text(task, name.map(|n| &**n), place(places, at))
                });
                let (head, rest) = text.split_at(*split);
                let l = &mut self.line;
                l.extend_from_slice(head);
                self.ts_text.put(l, ts);
                l.extend_from_slice(b",\"dur\":");
                micros(l, end - ts);
                l.extend_from_slice(&self.tail);
                l.extend_from_slice(b",\"args\":{\"p\":");
                num(l, u64::from(p));
                l.extend_from_slice(rest);
            }
            Rec::PStart { ts, p } | Rec::PStop { ts, p } => {
                let ts = self.ts(ts);
                let ph: &[u8] = match rec {
                    Rec::PStart { .. } => b"\",\"cat\":\"p\",\"ph\":\"B",
                    _ => b"\",\"cat\":\"p\",\"ph\":\"E",
                };
                plain(&mut self.line, &self.tail, b"P", Some(p), ph, ts);
            }
            Rec::Park { ts, end } => {
                let ts = self.ts(ts);
                let ph: &[u8] = match end {
                    false => b"\",\"cat\":\"idle\",\"ph\":\"B",
                    true => b"\",\"cat\":\"idle\",\"ph\":\"E",
                };
                plain(&mut self.line, &self.tail, b"park", None, ph, ts);
            }
            Rec::Netpoll { t0, t1, events } => {
                let ts = self.ts(t0);
                let end = self.cal.ns(t1).max(ts);
                self.last = end;
                let l = &mut self.line;
                l.extend_from_slice(
                    b"{\"name\":\"netpoll\",\"cat\":\"netpoll\",\"ph\":\"X\",\"ts\":",
                );
                micros(l, ts);
                l.extend_from_slice(b",\"dur\":");
                micros(l, end - ts);
                l.extend_from_slice(&self.tail);
                l.extend_from_slice(b",\"args\":{\"events\":");
                num(l, u64::from(events));
                l.extend_from_slice(b"}},\n");
            }
            Rec::Steal {
                ts,
                p,
                victim,
                n,
                flow,
            } => {
                steal_victim = Some(victim as usize);
                let ts = self.ts(ts);
                let victim = u64::from(victim);
                let l = &mut self.line;
                l.extend_from_slice(b"{\"name\":\"stolen by P");
                num(l, u64::from(p));
                l.extend_from_slice(b"\",\"cat\":\"steal\",\"ph\":\"X\",\"ts\":");
                micros(l, ts);
                l.extend_from_slice(b",\"dur\":0");
                head_tail(l, PID_PS, victim);
                l.extend_from_slice(b",\"args\":{\"tasks\":");
                num(l, u64::from(n));
                l.extend_from_slice(
                    b"}},\n{\"name\":\"steal\",\"cat\":\"steal\",\"ph\":\"s\",\"id\":",
                );
                num(l, flow);
                l.extend_from_slice(b",\"ts\":");
                micros(l, ts);
                head_tail(l, PID_PS, victim);
                l.extend_from_slice(b"},\n{\"name\":\"steal from P");
                num(l, victim);
                l.extend_from_slice(b"\",\"cat\":\"steal\",\"ph\":\"X\",\"ts\":");
                micros(l, ts);
                l.extend_from_slice(b",\"dur\":0");
                l.extend_from_slice(&self.tail);
                l.extend_from_slice(b",\"args\":{\"p\":");
                num(l, u64::from(p));
                l.extend_from_slice(b",\"victim\":");
                num(l, victim);
                l.extend_from_slice(b",\"tasks\":");
                num(l, u64::from(n));
                l.extend_from_slice(
                    b"}},\n{\"name\":\"steal\",\"cat\":\"steal\",\"ph\":\"f\",\"bp\":\"e\",\"id\":",
                );
                num(l, flow);
                l.extend_from_slice(b",\"ts\":");
                micros(l, ts);
                l.extend_from_slice(&self.tail);
                l.extend_from_slice(b"},\n");
            }
            Rec::Handoff { ts, p } => {
                let ts = self.ts(ts);
                let ph = b"\",\"cat\":\"sysmon\",\"ph\":\"i\",\"s\":\"t";
                plain(&mut self.line, &self.tail, b"handoff P", Some(p), ph, ts);
            }
            Rec::Gc {
                ts,
                name,
                edge,
                cycle,
            } => {
                let ph: &[u8] = match edge {
                    GcEdge::Begin => {
                        self.gc_open += 1;
                        b"\",\"cat\":\"gc\",\"ph\":\"B"
                    }
                    GcEdge::End if self.gc_open == 0 => return Ok(()),
                    GcEdge::End => {
                        self.gc_open -= 1;
                        b"\",\"cat\":\"gc\",\"ph\":\"E"
                    }
                    GcEdge::Instant => b"\",\"cat\":\"gc\",\"ph\":\"i\",\"s\":\"t",
                };
                let ts = self.ts(ts);
                let l = &mut self.line;
                l.extend_from_slice(b"{\"name\":\"");
                json_body(l, name);
                l.extend_from_slice(ph);
                l.extend_from_slice(b"\",\"ts\":");
                micros(l, ts);
                l.extend_from_slice(&self.tail);
                l.extend_from_slice(b",\"args\":{\"cycle\":");
                num(l, cycle);
                l.extend_from_slice(b"}},\n");
            }
        }
        self.spill(false)?;
        self.written += 1;
        if let Some(p) = steal_victim {
            if self.seen_p.len() <= p {
                self.seen_p.resize(p + 1, false);
            }
            if !self.seen_p[p] {
                self.seen_p[p] = true;
                self.meta(PID_PS, p as u64, "thread_name", &format!("P{p}"))?;
            }
        }
        Ok(())
    }

    fn meta(&mut self, pid: u32, tid: u64, what: &str, name: &str) -> io::Result<()> {
        let l = &mut self.line;
        l.extend_from_slice(b"{\"name\":\"");
        l.extend_from_slice(what.as_bytes());
        l.extend_from_slice(b"\",\"ph\":\"M\",\"ts\":0");
        head_tail(l, pid, tid);
        l.extend_from_slice(b",\"args\":{\"name\":\"");
        json_body(l, name);
        l.extend_from_slice(b"\"}},\n");
        self.spill(false)
    }
}

/// The fixed parts of a poll slice of `task`: the text before its `ts`
/// and the text after its `p`, with the split between them.
fn poll_text(task: u64, name: Option<&str>, place: &str) -> (Vec<u8>, usize) {
    let mut l = Vec::with_capacity(128);
    l.extend_from_slice(b"{\"name\":\"task ");
    num(&mut l, task);
    if let Some(n) = name {
        l.push(b' ');
        json_body(&mut l, n);
    }
    l.extend_from_slice(b"\",\"cat\":\"poll\",\"ph\":\"X\",\"ts\":");
    let split = l.len();
    l.extend_from_slice(b",\"task\":");
    num(&mut l, task);
    l.extend_from_slice(b",\"name\":\"");
    if let Some(n) = name {
        json_body(&mut l, n);
    }
    l.extend_from_slice(b"\",\"spawned_at\":\"");
    l.extend_from_slice(place.as_bytes());
    l.extend_from_slice(b"\"}},\n");
    (l, split)
}

/// `at` as an escaped JSON string body, formatted once per location.
fn place<'a>(
    places: &'a mut HashMap<usize, String, Fast>,
    at: &'static Location<'static>,
) -> &'a str {
    places
        .entry(at as *const Location<'static> as usize)
        .or_insert_with(|| {
            let mut v = Vec::new();
            json_body(&mut v, &at.to_string());
            String::from_utf8(v).expect("escaping keeps UTF-8")
        })
}

/// Lowers the calling thread's (the writer's) priority to `nice` 10 on
/// Linux: formatting yields the CPU to the traced program's Ms, and when
/// it falls behind, chunks are dropped and labelled (mod.rs, "Bounded
/// memory"). Measured on yield_many with every core busy: the program ran
/// 1.8x slower with the writer at the Ms' priority, 1.3x with it lowered.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` and `setpriority` on the calling thread's own id
    // touch no memory of ours; a failure (a seccomp filter, say) leaves the
    // priority as it was, which is only slower.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// An event without args: `{"name":"<name><n>` then `cat_ph` (the rest of
/// the name string, the category and the phase), `ts` and the track.
fn plain(l: &mut Vec<u8>, tail: &[u8], name: &[u8], n: Option<u32>, cat_ph: &[u8], ts: u64) {
    l.extend_from_slice(b"{\"name\":\"");
    l.extend_from_slice(name);
    if let Some(n) = n {
        num(l, u64::from(n));
    }
    l.extend_from_slice(cat_ph);
    l.extend_from_slice(b"\",\"ts\":");
    micros(l, ts);
    l.extend_from_slice(tail);
    l.extend_from_slice(b"},\n");
}

/// `,"pid":P,"tid":T`.
fn head_tail(l: &mut Vec<u8>, pid: u32, tid: u64) {
    l.extend_from_slice(b",\"pid\":");
    num(l, u64::from(pid));
    l.extend_from_slice(b",\"tid\":");
    num(l, tid);
}

/// "00" to "99".
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal, two digits per division.
fn num(l: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + v as u8;
    }
    l.extend_from_slice(&digits[i..]);
}

/// A multiplicative hasher for the writer's maps, keyed by ids and
/// addresses it made itself (no untrusted keys: SipHash's flood resistance
/// buys nothing here and cost a third of the writer's time).
#[derive(Default, Clone, Copy)]
struct Fast;

/// [`Fast`]'s state.
#[derive(Default)]
struct FastHasher(u64);

impl std::hash::BuildHasher for Fast {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// The whole microseconds of the last poll's `ts`, formatted once: on a
/// busy M consecutive polls start a tenth of a microsecond apart, so most
/// polls reuse the text (the decimal numbers were 150 of the writer's 490
/// instructions per poll; callgrind, yield_many).
#[derive(Default)]
struct TsText {
    us: u64,
    text: Vec<u8>,
}

impl TsText {
    /// Appends `ns` as `micros` does.
    fn put(&mut self, l: &mut Vec<u8>, ns: u64) {
        let us = ns / 1000;
        if us != self.us || self.text.is_empty() {
            self.us = us;
            self.text.clear();
            num(&mut self.text, us);
        }
        l.extend_from_slice(&self.text);
        frac(l, ns % 1000);
    }
}

/// Appends nanoseconds `ns` as microseconds with three decimals.
fn micros(l: &mut Vec<u8>, ns: u64) {
    num(l, ns / 1000);
    frac(l, ns % 1000);
}

/// Appends `.ddd`, the nanoseconds below a microsecond (`frac` < 1000).
fn frac(l: &mut Vec<u8>, frac: u64) {
    l.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// Appends `s` escaped for the inside of a JSON string.
fn json_body(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{TsText, json_body, micros, num};

    #[test]
    fn cached_timestamps_read_as_uncached_ones() {
        let mut cache = TsText::default();
        for ns in [0, 999, 1_000, 1_001, 1_999, 2_000, 2_000, 0, 12_345_678_901] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            cache.put(&mut a, ns);
            micros(&mut b, ns);
            assert_eq!(a, b, "{ns} ns");
        }
    }

    #[test]
    fn numbers_and_escapes() {
        let mut l = Vec::new();
        num(&mut l, 0);
        l.push(b' ');
        num(&mut l, u64::MAX);
        l.push(b' ');
        micros(&mut l, 1_234_005);
        l.push(b' ');
        micros(&mut l, 7);
        l.push(b' ');
        num(&mut l, 10);
        l.push(b' ');
        num(&mut l, 1_000_000_007);
        l.push(b' ');
        json_body(&mut l, "a\"b\\c\n\u{1}é");
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "0 18446744073709551615 1234.005 0.007 10 1000000007 a\\\"b\\\\c\\n\\u0001é"
        );
    }
}
