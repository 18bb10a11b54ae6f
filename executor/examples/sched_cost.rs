//! A fixed number of iterations of four `benches/rt_multi_threaded.rs`
//! workloads on 2 Ms, for instruction counts under callgrind (criterion's
//! adaptive iteration counts make its binary unfit for that).
//!
//! ```sh
//! cargo build --release -p gort-executor --example sched_cost
//! valgrind --tool=callgrind target/release/examples/sched_cost yield_many 2
//! valgrind --tool=callgrind target/release/examples/sched_cost yield_many 6
//! # instructions per iteration = (Ir(6) - Ir(2)) / 4
//! ```
//!
//! Same parameters as the bench: 200 tasks x 1,000 yields; 1,000
//! ping-pongs; a chain of 1,000 spawns; 10,000 local spawns; 10,000
//! spawns from outside the runtime, then awaited (spawn_many_remote_idle).

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, mpsc};

use futures::channel::oneshot;
use gort_executor::{Builder, Runtime, spawn, task};

fn yield_many(rt: &Runtime) {
    const TASKS: usize = 200;
    let (tx, rx) = mpsc::sync_channel(TASKS);
    for _ in 0..TASKS {
        let tx = tx.clone();
        drop(rt.spawn(async move {
            for _ in 0..1_000 {
                task::yield_now().await;
            }
            tx.send(()).unwrap();
        }));
    }
    for _ in 0..TASKS {
        rx.recv().unwrap();
    }
}

fn ping_pong(rt: &Runtime) {
    const NUM_PINGS: usize = 1_000;
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let rem = Arc::new(AtomicUsize::new(NUM_PINGS));
    rt.block_on(async {
        drop(spawn(async move {
            for _ in 0..NUM_PINGS {
                let rem = rem.clone();
                let done_tx = done_tx.clone();
                drop(spawn(async move {
                    let (tx1, rx1) = oneshot::channel::<()>();
                    let (tx2, rx2) = oneshot::channel::<()>();
                    drop(spawn(async move {
                        rx1.await.unwrap();
                        tx2.send(()).unwrap();
                    }));
                    tx1.send(()).unwrap();
                    rx2.await.unwrap();
                    if 1 == rem.fetch_sub(1, Relaxed) {
                        done_tx.send(()).unwrap();
                    }
                }));
            }
        }));
        done_rx.recv().unwrap();
    });
}

fn chain(done_tx: mpsc::SyncSender<()>, n: usize) {
    if n == 0 {
        done_tx.send(()).unwrap();
    } else {
        drop(spawn(async move { chain(done_tx, n - 1) }));
    }
}

fn chained_spawn(rt: &Runtime) {
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    rt.block_on(async {
        drop(spawn(async move { chain(done_tx, 1_000) }));
        done_rx.recv().unwrap();
    });
}

fn spawn_many_local(rt: &Runtime) {
    const NUM_SPAWN: usize = 10_000;
    let (tx, rx) = mpsc::sync_channel(1);
    let rem = Arc::new(AtomicUsize::new(NUM_SPAWN));
    rt.block_on(async {
        for _ in 0..NUM_SPAWN {
            let tx = tx.clone();
            let rem = rem.clone();
            drop(spawn(async move {
                if 1 == rem.fetch_sub(1, Relaxed) {
                    tx.send(()).unwrap();
                }
            }));
        }
        rx.recv().unwrap();
    });
}

fn spawn_many_remote_idle(rt: &Runtime) {
    const NUM_SPAWN: usize = 10_000;
    let handles: Vec<_> = (0..NUM_SPAWN).map(|_| rt.spawn(async {})).collect();
    rt.block_on(async {
        for handle in handles {
            handle.await.unwrap();
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sched_cost <yield_many|ping_pong|chained_spawn|spawn_many_local|\
         spawn_many_remote_idle> <iterations>";
    let workload: fn(&Runtime) = match args.next().as_deref() {
        Some("yield_many") => yield_many,
        Some("ping_pong") => ping_pong,
        Some("chained_spawn") => chained_spawn,
        Some("spawn_many_local") => spawn_many_local,
        Some("spawn_many_remote_idle") => spawn_many_remote_idle,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let Some(n) = args.next().and_then(|s| s.parse::<usize>().ok()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let rt = Builder::new().worker_threads(2).build().expect("runtime");
    for _ in 0..n {
        workload(&rt);
    }
}
