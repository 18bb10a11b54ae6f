//! The trace writer thread: drains the Ms' buffers every `FLUSH_EVERY` and
//! appends Chrome trace-event JSON objects to the file.
//!
//! The file is one JSON array, one event per line, each followed by a
//! comma; [`Session::stop`] ends it with a last metadata event and `]`. The
//! format tolerates a missing `]` and a trailing comma, so a file cut short
//! by a killed process still loads.
//!
//! Tracks: process 1 ("gort Ms") has one thread per M (`tid` = M id): P
//! ownership as B/E slices `P<n>`, polls as X slices nested in them, parks
//! as B/E slices `park` between them (netpoll waits, X slices, nest in
//! them), handoffs as instants.
//! Process 2 ("gort Ps") has one thread per P, holding the zero-length
//! "stolen" slices where steal flow arrows start (`ph` `s`); the arrow ends
//! (`ph` `f`, `bp` `e`) on the thief M's "steal" slice.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use gort_netpoll::loom::sync::atomic::Ordering::Relaxed;
use gort_netpoll::loom::sync::{Arc, Condvar, Mutex};
use gort_netpoll::loom::thread;

use super::{Event, Kind, ORPHANS, REGISTRY};

/// How often the writer drains the buffers.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

const PID_MS: u32 = 1;
const PID_PS: u32 = 2;

/// A running trace: its writer thread and the stop signal.
pub(super) struct Session {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: thread::JoinHandle<io::Result<u64>>,
}

impl Session {
    pub(super) fn start(path: &Path) -> io::Result<Session> {
        let file = File::create(path)?;
        let mut out = Out {
            file: BufWriter::new(file),
            line: String::new(),
            seen_m: HashSet::new(),
            seen_p: HashSet::new(),
            written: 0,
        };
        out.file.write_all(b"[\n")?;
        out.meta(PID_MS, 0, "process_name", "gort Ms")?;
        out.meta(PID_PS, 0, "process_name", "gort Ps")?;
        out.file.flush()?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name("gort-trace-writer".into())
            .spawn(move || out.run(&stop2))?;
        Ok(Session { stop, thread })
    }

    pub(super) fn stop(self) -> io::Result<u64> {
        *self.stop.0.lock().unwrap() = true;
        self.stop.1.notify_all();
        match self.thread.join() {
            Ok(res) => res,
            Err(_) => Err(io::Error::other("gort: the trace writer thread panicked")),
        }
    }
}

struct Out {
    file: BufWriter<File>,
    line: String,
    seen_m: HashSet<usize>,
    seen_p: HashSet<usize>,
    written: u64,
}

impl Out {
    fn run(mut self, stop: &(Mutex<bool>, Condvar)) -> io::Result<u64> {
        loop {
            let stopping = {
                let guard = stop.0.lock().unwrap();
                let (guard, _) = stop
                    .1
                    .wait_timeout_while(guard, FLUSH_EVERY, |s| !*s)
                    .unwrap();
                *guard
            };
            self.drain()?;
            if stopping {
                // The last element has no trailing comma.
                write!(
                    self.file,
                    "{{\"name\":\"trace_end\",\"ph\":\"M\",\"pid\":{PID_MS},\"tid\":0,\"ts\":0,\"args\":{{}}}}\n]\n"
                )?;
                self.file.flush()?;
                return Ok(self.written);
            }
        }
    }

    /// Writes every buffered event (and the metadata of new tracks).
    fn drain(&mut self) -> io::Result<()> {
        let bufs: Vec<_> = REGISTRY.lock().unwrap().clone();
        for buf in bufs {
            let events = std::mem::take(&mut *buf.events.lock().unwrap());
            let dropped = buf.dropped.swap(0, Relaxed);
            if self.seen_m.insert(buf.m) {
                let name = format!("M{} ({})", buf.m, buf.thread);
                self.meta(PID_MS, buf.m, "thread_name", &name)?;
            }
            for e in &events {
                self.event(buf.m, e)?;
            }
            if dropped > 0 {
                let ts = events.last().map_or(0, |e| e.ts);
                self.event(
                    buf.m,
                    &Event {
                        ts,
                        kind: Kind::Dropped { n: dropped },
                    },
                )?;
            }
        }
        let orphans = std::mem::take(&mut *ORPHANS.lock().unwrap());
        for (m, e) in &orphans {
            self.event(*m, e)?;
        }
        self.file.flush()
    }

    fn meta(&mut self, pid: u32, tid: usize, what: &str, name: &str) -> io::Result<()> {
        self.line.clear();
        let _ = write!(
            self.line,
            "{{\"name\":\"{what}\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{tid},\"ts\":0,\"args\":{{\"name\":"
        );
        json_str(&mut self.line, name);
        self.line.push_str("}},\n");
        self.file.write_all(self.line.as_bytes())
    }

    fn event(&mut self, m: usize, e: &Event) -> io::Result<()> {
        let l = &mut self.line;
        l.clear();
        let ts = Micros(e.ts);
        let mut extra_p = None;
        match &e.kind {
            Kind::Poll {
                p,
                task,
                name,
                spawned_at,
                dur,
            } => {
                let _ = write!(l, "{{\"name\":\"task {task}");
                if let Some(n) = name {
                    l.push(' ');
                    json_body(l, n);
                }
                let _ = write!(
                    l,
                    "\",\"cat\":\"poll\",\"ph\":\"X\",\"ts\":{ts},\"dur\":{},\"pid\":{PID_MS},\"tid\":{m},\"args\":{{\"task\":{task},\"p\":{p},\"name\":",
                    Micros(*dur)
                );
                json_str(l, name.as_deref().unwrap_or(""));
                l.push_str(",\"spawned_at\":");
                json_str(l, &spawned_at.to_string());
                l.push_str("}},\n");
            }
            Kind::PStart { p } => {
                let _ = writeln!(
                    l,
                    "{{\"name\":\"P{p}\",\"cat\":\"p\",\"ph\":\"B\",\"ts\":{ts},\"pid\":{PID_MS},\"tid\":{m}}},"
                );
            }
            Kind::PStop { p } => {
                let _ = writeln!(
                    l,
                    "{{\"name\":\"P{p}\",\"cat\":\"p\",\"ph\":\"E\",\"ts\":{ts},\"pid\":{PID_MS},\"tid\":{m}}},"
                );
            }
            Kind::Park { end } => {
                let ph = if *end { 'E' } else { 'B' };
                let _ = writeln!(
                    l,
                    "{{\"name\":\"park\",\"cat\":\"idle\",\"ph\":\"{ph}\",\"ts\":{ts},\"pid\":{PID_MS},\"tid\":{m}}},"
                );
            }
            Kind::Netpoll { dur, events } => {
                let _ = writeln!(
                    l,
                    "{{\"name\":\"netpoll\",\"cat\":\"netpoll\",\"ph\":\"X\",\"ts\":{ts},\"dur\":{},\"pid\":{PID_MS},\"tid\":{m},\"args\":{{\"events\":{events}}}}},",
                    Micros(*dur)
                );
            }
            Kind::Steal { p, victim, n, flow } => {
                extra_p = Some(*victim);
                let _ = writeln!(
                    l,
                    "{{\"name\":\"stolen by P{p}\",\"cat\":\"steal\",\"ph\":\"X\",\"ts\":{ts},\"dur\":0,\"pid\":{PID_PS},\"tid\":{victim},\"args\":{{\"tasks\":{n}}}}},"
                );
                let _ = writeln!(
                    l,
                    "{{\"name\":\"steal\",\"cat\":\"steal\",\"ph\":\"s\",\"id\":{flow},\"ts\":{ts},\"pid\":{PID_PS},\"tid\":{victim}}},"
                );
                let _ = writeln!(
                    l,
                    "{{\"name\":\"steal from P{victim}\",\"cat\":\"steal\",\"ph\":\"X\",\"ts\":{ts},\"dur\":0,\"pid\":{PID_MS},\"tid\":{m},\"args\":{{\"p\":{p},\"victim\":{victim},\"tasks\":{n}}}}},"
                );
                let _ = writeln!(
                    l,
                    "{{\"name\":\"steal\",\"cat\":\"steal\",\"ph\":\"f\",\"bp\":\"e\",\"id\":{flow},\"ts\":{ts},\"pid\":{PID_MS},\"tid\":{m}}},"
                );
            }
            Kind::Handoff { p } => {
                let _ = writeln!(
                    l,
                    "{{\"name\":\"handoff P{p}\",\"cat\":\"sysmon\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{ts},\"pid\":{PID_MS},\"tid\":{m}}},"
                );
            }
            Kind::Dropped { n } => {
                let _ = writeln!(
                    l,
                    "{{\"name\":\"events dropped\",\"cat\":\"trace\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{ts},\"pid\":{PID_MS},\"tid\":{m},\"args\":{{\"dropped\":{n}}}}},"
                );
            }
        }
        self.file.write_all(self.line.as_bytes())?;
        self.written += 1;
        if let Some(p) = extra_p
            && self.seen_p.insert(p)
        {
            self.meta(PID_PS, p, "thread_name", &format!("P{p}"))?;
        }
        Ok(())
    }
}

/// Nanoseconds printed as microseconds with three decimals.
struct Micros(u64);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    json_body(out, s);
    out.push('"');
}

/// Appends `s` escaped for the inside of a JSON string.
fn json_body(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}
