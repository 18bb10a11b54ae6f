//! Helpers shared by the facade's integration tests: a watchdog that turns
//! a hang into a clear failure, a tracing capture to check what the echo
//! server logs, and small socket helpers.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, ErrorKind, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort::net::TcpStream;

/// Aborts the process with `what` if the guard is not dropped within
/// `secs`: a lost wakeup then fails loudly instead of hanging the suite.
#[must_use = "the watchdog is disarmed when the guard drops"]
pub struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

pub fn watchdog(secs: u64, what: &'static str) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("{what}: no result after {secs} s (lost wakeup or hang); aborting");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

/// Everything logged through `tracing` by this test process (all levels
/// from `debug`), as text. Installed on first use.
pub fn log_capture() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .try_init();
        buf
    })
}

/// The captured log so far.
pub fn logged() -> String {
    String::from_utf8_lossy(&log_capture().lock().unwrap()).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends `msg` and reads the same number of bytes back; checks they match.
pub async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    stream.write_all(msg).await?;
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back).await?;
    if back != msg {
        return Err(io::Error::other("echo returned different bytes"));
    }
    Ok(())
}

/// Descriptors open in this process (Linux).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("reading /proc/self/fd (Linux only)")
        .count()
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm has a resident field");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as usize
}

/// A std client that writes (never reading) until `cap` bytes are sent or
/// its socket stays full for 100 ms: the echo server then sits blocked in a
/// write back to it. Returns the client and how many bytes it sent.
pub fn fill_until_blocked(addr: SocketAddr, cap: usize) -> (std::net::TcpStream, usize) {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nonblocking(true).unwrap();
    let chunk = [7u8; 64 * 1024];
    let mut total = 0usize;
    let mut full_since: Option<Instant> = None;
    while total < cap {
        match (&s).write(&chunk) {
            Ok(n) => {
                total += n;
                full_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *full_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(100) {
                    break;
                }
                std::thread::yield_now();
            }
            Err(e) => panic!("filling client failed after {total} bytes: {e}"),
        }
    }
    (s, total)
}
