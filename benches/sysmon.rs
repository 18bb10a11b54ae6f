//! sysmon: how late timers fire beside a task that will not give its thread
//! back, gort beside tokio, each with 1 worker and with 2.
//!
//! 1. `blocking`: 50 tasks loop on `sleep(1 ms)` recording how late each
//!    wake-up is, while one task blocks its thread inside a poll for 100 ms
//!    every 300 ms (`std::thread::sleep`), for 3 s.
//! 2. `fairness`: the same sleepers beside a task looping on an always-ready
//!    `futures::channel::mpsc` receiver (it sends itself a message before
//!    each receive): not a gort future, so no budget applies and its one
//!    poll lasts the whole run.
//! 3. `socket`: the same sleepers beside a task looping on reads of the
//!    runtime's own TCP socket, which a writer thread keeps full: gort's and
//!    tokio's budgets apply, so the reader yields every 128 reads.
//!
//! Lateness is p50/p99/max over every wake-up of every sleeper, in µs.
//! gort hands the P of the blocked M to another M after 10 ms
//! (`Builder::blocking_threshold`); runtimes without a handoff freeze the
//! sleepers of that worker for the whole block.
//!
//! Run: `cargo bench --bench sysmon` (3 s per row); without `--bench` (as
//! in `cargo test --all-targets`) each row runs 0.3 s as a smoke test.

mod common;

use common::{BenchRt, Gort, Tokio};
use futures::StreamExt;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

const SLEEPERS: usize = 50;

#[derive(Clone, Copy)]
enum Hog {
    /// Blocks 100 ms inside a poll every 300 ms.
    Blocking,
    /// Polls an always-ready channel for the whole run.
    AlwaysReady,
    /// Reads the runtime's own socket, always readable, for the whole run.
    Socket,
}

/// A runtime whose own sockets the `Socket` hog reads.
trait SocketRt: BenchRt {
    /// Reads `addr` (a peer that writes without pause) until `end`.
    fn read_until(addr: SocketAddr, end: Instant) -> impl Future<Output = ()> + Send;
}

impl SocketRt for Gort {
    async fn read_until(addr: SocketAddr, end: Instant) {
        use futures::io::AsyncReadExt;
        let mut s = gort::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        while Instant::now() < end {
            if s.read(&mut buf).await.unwrap() == 0 {
                break;
            }
        }
    }
}

impl SocketRt for Tokio {
    async fn read_until(addr: SocketAddr, end: Instant) {
        use tokio::io::AsyncReadExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        while Instant::now() < end {
            if s.read(&mut buf).await.unwrap() == 0 {
                break;
            }
        }
    }
}

/// A peer that writes to the first connection until it is closed.
fn spawn_writer() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while s.write_all(&chunk).is_ok() {}
    });
    addr
}

/// Lateness of every sleeper wake-up (ns) while `hog` runs for `secs`.
fn run<R: SocketRt>(rt: &R, hog: Hog, secs: f64) -> Vec<u64> {
    rt.block_on(async move {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let stop = Arc::new(AtomicBool::new(false));
        let sleepers: Vec<_> = (0..SLEEPERS)
            .map(|_| {
                R::spawn(async move {
                    let mut late = Vec::with_capacity((secs * 1100.0) as usize);
                    while Instant::now() < end {
                        let deadline = Instant::now() + Duration::from_millis(1);
                        R::sleep(Duration::from_millis(1)).await;
                        late.push(
                            Instant::now()
                                .saturating_duration_since(deadline)
                                .as_nanos() as u64,
                        );
                    }
                    late
                })
            })
            .collect();
        let s = stop.clone();
        let hog = R::spawn(async move {
            match hog {
                Hog::Blocking => {
                    while Instant::now() < end && !s.load(SeqCst) {
                        R::sleep(Duration::from_millis(200)).await;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Hog::AlwaysReady => {
                    let (tx, mut rx) = futures::channel::mpsc::unbounded::<u64>();
                    let mut n = 0u64;
                    while Instant::now() < end {
                        tx.unbounded_send(n).unwrap();
                        n += rx.next().await.unwrap();
                    }
                    std::hint::black_box(n);
                }
                Hog::Socket => R::read_until(spawn_writer(), end).await,
            }
        });
        let mut all = Vec::new();
        for s in sleepers {
            all.extend(s.await);
        }
        stop.store(true, SeqCst);
        hog.await;
        all
    })
}

fn percentiles(mut v: Vec<u64>) -> (f64, f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    (at(0.5), at(0.99), *v.last().unwrap() as f64 / 1e3)
}

fn row<R: SocketRt>(workers: usize, hog: Hog, name: &str, secs: f64) {
    let rt = R::build(workers);
    let (p50, p99, max) = percentiles(run(&rt, hog, secs));
    println!(
        "| {name} | {} | {workers} | {p50:.0} | {p99:.0} | {max:.0} |",
        R::NAME
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let secs = if full { 3.0 } else { 0.3 };
    println!("sleep(1 ms) lateness of {SLEEPERS} tasks beside a hog, {secs} s per row (µs):");
    println!("| workload | runtime | workers | p50 | p99 | max |\n|---|---|---|---|---|---|");
    for (hog, name) in [
        (Hog::Blocking, "blocking 100 ms / 300 ms"),
        (Hog::AlwaysReady, "always-ready channel"),
        (Hog::Socket, "reading a full socket"),
    ] {
        for workers in [1, 2] {
            row::<Gort>(workers, hog, name, secs);
            row::<Tokio>(workers, hog, name, secs);
        }
    }
}
