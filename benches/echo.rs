//! Echo throughput and latency: the same echo server on gort and on tokio,
//! loaded by a client in a separate process.
//!
//! The client is a single-threaded mio event loop (neither runtime's code),
//! so it loads both servers identically. Each connection writes 64 bytes,
//! waits for the 64-byte echo, and repeats; the client counts round trips
//! for a fixed time and records each round trip's latency.
//!
//! Run: `cargo bench --bench echo` (about a minute). Modes used internally:
//! `--server gort|tokio` (prints its address, serves until stdin closes) and
//! `--client ADDR CONNS SECS` (prints `msgs_per_sec p50_us p99_us`).

mod common;

use common::workers;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--server") {
        match args[i + 1].as_str() {
            "gort" => serve_gort(),
            "tokio" => serve_tokio(),
            other => panic!("unknown runtime {other}"),
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--client") {
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
    println!(
        "echo: {MSG}-byte round trips, {secs} s per run after {WARMUP:?} warm-up, {runs} runs alternating, medians; server workers = {}",
        workers()
    );
    println!(
        "| conns | gort msgs/s | tokio msgs/s | gort/tokio | gort p50 µs | tokio p50 µs | gort p99 µs | tokio p99 µs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for conns in CONNS {
        let mut g = (Vec::new(), Vec::new(), Vec::new());
        let mut t = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            for (name, acc) in [("gort", &mut g), ("tokio", &mut t)] {
                let (rate, p50, p99) = run_once(name, conns, secs);
                acc.0.push(rate);
                acc.1.push(p50);
                acc.2.push(p99);
            }
        }
        let (gr, gp50, gp99) = (median(g.0), median(g.1), median(g.2));
        let (tr, tp50, tp99) = (median(t.0), median(t.1), median(t.2));
        println!(
            "| {conns} | {gr:.0} | {tr:.0} | {:.2} | {gp50:.1} | {tp50:.1} | {gp99:.1} | {tp99:.1} |",
            gr / tr
        );
    }
}
