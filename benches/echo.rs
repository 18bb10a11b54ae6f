//! Echo throughput and latency: the same echo server on gort and on tokio,
//! loaded by a client in a separate process.
//!
//! The client is a single-threaded mio event loop (neither runtime's code),
//! so it loads both servers identically. Each connection writes 64 bytes,
//! waits for the 64-byte echo, and repeats; the client counts round trips
//! for a fixed time and records each round trip's latency.
//!
//! Go's echo server (`benches/go/echo`, goroutine per connection) is loaded
//! by the same client when `go` is installed (`scripts/bench_go.sh` shows
//! how); otherwise its columns print `-` with a note. It runs with
//! `GOMAXPROCS` = the Rust runtimes' worker count.
//!
//! `ECHO_PIN=1 cargo bench --bench echo` pins the server to CPU 0 (so it
//! runs one worker, `GOMAXPROCS=1` for Go) and the client to CPU 1: the
//! two no longer compete for cores, and throughput measures what one core
//! of server can echo. The default (nothing pinned, one worker per core) is
//! what a user's first run sees.
//!
//! Run: `cargo bench --bench echo` (about two minutes). Modes used
//! internally: `--server gort|tokio|go` (prints its address, serves until
//! stdin closes; `go` builds and execs the Go server) and
//! `--client ADDR CONNS SECS` (prints `msgs_per_sec p50_us p99_us`).

mod common;

use common::workers;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MSG: usize = 64;
const WARMUP: Duration = Duration::from_millis(500);
const CONNS: [usize; 3] = [1, 50, 500];

/// Seconds per run and runs per configuration. `cargo bench` passes
/// `--bench`; without it (`cargo test --all-targets`) one short run checks
/// that the benchmark still works.
fn plan() -> (f64, usize) {
    if std::env::args().any(|a| a == "--bench") {
        (4.0, 3)
    } else {
        (0.3, 1)
    }
}

fn wait_for_stdin_close() {
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
    std::process::exit(0);
}

fn serve_gort() {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let rt = gort::Runtime::builder()
        .worker_threads(workers())
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = gort::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::thread::spawn(wait_for_stdin_close);
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            drop(gort::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
        }
    });
}

fn serve_tokio() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::thread::spawn(wait_for_stdin_close);
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// Builds Go's echo server (`go build` is a no-op when it is up to date)
/// and returns the binary's path, or why it cannot.
fn build_go_server() -> Result<PathBuf, String> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/go");
    let bin = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("echo-go-server");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("./echo")
        .current_dir(&src)
        .output()
        .map_err(|e| format!("`go` not runnable ({e}); install it as scripts/bench_go.sh does"))?;
    if !out.status.success() {
        return Err(format!(
            "`go build` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(bin)
}

/// `--server go`: replaces this process with Go's server, so the parent's
/// stdin/stdout protocol (and a profiler attached to this pid) reach it.
fn serve_go() {
    use std::os::unix::process::CommandExt;
    let bin = build_go_server().unwrap_or_else(|e| panic!("Go echo server: {e}"));
    let err = Command::new(&bin)
        .env("GOMAXPROCS", workers().to_string())
        .exec();
    panic!("exec {}: {err}", bin.display());
}

/// One client connection's round-trip state.
struct Conn {
    stream: mio::net::TcpStream,
    sent_at: Instant,
    written: usize,
    read: usize,
}

fn client(addr: SocketAddr, conns: usize, secs: f64) -> (f64, f64, f64) {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new().unwrap();
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        let std = std::net::TcpStream::connect(addr).expect("connect to echo server");
        std.set_nodelay(true).unwrap();
        std.set_nonblocking(true).unwrap();
        let mut stream = mio::net::TcpStream::from_std(std);
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap();
        all.push(Conn {
            stream,
            sent_at: Instant::now(),
            written: 0,
            read: 0,
        });
    }
    let payload = [7u8; MSG];
    let mut buf = [0u8; MSG];
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let end = measure_from + Duration::from_secs_f64(secs);
    let mut latencies_ns: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut done = 0u64;

    // Drives one connection as far as it can go without blocking.
    let mut drive = |c: &mut Conn, now: Instant, lat: &mut Vec<u32>, done: &mut u64| loop {
        if c.written < MSG {
            if c.written == 0 {
                c.sent_at = now;
            }
            match c.stream.write(&payload[c.written..]) {
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("client write: {e}"),
            }
        } else {
            match c.stream.read(&mut buf[..MSG - c.read]) {
                Ok(0) => panic!("server closed the connection"),
                Ok(n) => {
                    c.read += n;
                    if c.read == MSG {
                        let t = Instant::now();
                        if t >= measure_from && t < end {
                            *done += 1;
                            lat.push(
                                t.duration_since(c.sent_at).as_nanos().min(u32::MAX as u128) as u32
                            );
                        }
                        c.read = 0;
                        c.written = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("client read: {e}"),
            }
        }
    };
    let now = Instant::now();
    for c in all.iter_mut() {
        drive(c, now, &mut latencies_ns, &mut done);
    }
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        let now = Instant::now();
        for ev in events.iter() {
            drive(&mut all[ev.token().0], now, &mut latencies_ns, &mut done);
        }
    }
    latencies_ns.sort_unstable();
    let pct = |p: f64| {
        if latencies_ns.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies_ns.len() as f64 * p) as usize).min(latencies_ns.len() - 1);
        latencies_ns[i] as f64 / 1000.0
    };
    (done as f64 / secs, pct(0.50), pct(0.99))
}

fn run_once(runtime: &str, conns: usize, secs: f64) -> (f64, f64, f64) {
    let exe = std::env::current_exe().unwrap();
    let mut server = Command::new(&exe)
        .args(["--server", runtime])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start server");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().to_string();
    let out = Command::new(&exe)
        .args(["--client", &addr, &conns.to_string(), &secs.to_string()])
        .output()
        .expect("run client");
    drop(server.stdin.take()); // closing stdin stops the server
    let _ = server.wait();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `ECHO_PIN=1`: CPU 0 for the server, CPU 1 for the client. Called at the
/// start of the server and client modes, before any runtime is built, so
/// `workers()` (which follows the affinity mask) sees one CPU.
fn pin_if_asked(cpu: usize) {
    if std::env::var_os("ECHO_PIN").is_none_or(|v| v == "0") {
        return;
    }
    // SAFETY: `set` is a plain bitmask owned by this frame; CPU_ZERO/CPU_SET
    // only write inside it, and sched_setaffinity reads `size_of` bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "ECHO_PIN: cannot pin to CPU {cpu}: {}",
        io::Error::last_os_error()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--server") {
        pin_if_asked(0);
        match args[i + 1].as_str() {
            "gort" => serve_gort(),
            "tokio" => serve_tokio(),
            "go" => serve_go(),
            other => panic!("unknown server {other:?} (expected gort, tokio or go)"),
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--client") {
        pin_if_asked(1);
        let addr: SocketAddr = args[i + 1].parse().unwrap();
        let conns: usize = args[i + 2].parse().unwrap();
        let secs: f64 = args[i + 3].parse().unwrap();
        let (rate, p50, p99) = client(addr, conns, secs);
        println!("{rate} {p50} {p99}");
        let _ = io::stdout().flush();
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let (secs, runs) = plan();
    let mut servers = vec!["gort", "tokio"];
    match build_go_server() {
        Ok(_) => servers.push("go"),
        Err(e) => println!("note: Go's server is skipped: {e}"),
    }
    println!(
        "echo: {MSG}-byte round trips, {secs} s per run after {WARMUP:?} warm-up, {runs} runs alternating, medians; {}",
        if std::env::var_os("ECHO_PIN").is_some_and(|v| v != "0") {
            "ECHO_PIN: server on CPU 0 with 1 worker (GOMAXPROCS=1), client on CPU 1".to_string()
        } else {
            format!("server workers (GOMAXPROCS for Go) = {}", workers())
        }
    );
    println!(
        "| conns | gort msgs/s | tokio msgs/s | Go msgs/s | gort/tokio | gort/Go | p50 µs gort / tokio / Go | p99 µs gort / tokio / Go |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for conns in CONNS {
        // Per server: (rates, p50s, p99s).
        let mut acc = vec![(Vec::new(), Vec::new(), Vec::new()); servers.len()];
        for _ in 0..runs {
            for (name, acc) in servers.iter().zip(acc.iter_mut()) {
                let (rate, p50, p99) = run_once(name, conns, secs);
                acc.0.push(rate);
                acc.1.push(p50);
                acc.2.push(p99);
            }
        }
        let meds: Vec<(f64, f64, f64)> = acc
            .into_iter()
            .map(|(r, a, b)| (median(r), median(a), median(b)))
            .collect();
        let go = meds.get(2).copied();
        let fmt =
            |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |x| format!("{x:.prec$}"));
        let (g, t) = (meds[0], meds[1]);
        println!(
            "| {conns} | {:.0} | {:.0} | {} | {:.2} | {} | {:.1} / {:.1} / {} | {:.1} / {:.1} / {} |",
            g.0,
            t.0,
            fmt(go.map(|x| x.0), 0),
            g.0 / t.0,
            fmt(go.map(|x| g.0 / x.0), 2),
            g.1,
            t.1,
            fmt(go.map(|x| x.1), 1),
            g.2,
            t.2,
            fmt(go.map(|x| x.2), 1),
        );
    }
}
