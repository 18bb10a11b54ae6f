//! tokio's multi-threaded scheduler workloads (tokio's
//! `benches/rt_multi_threaded.rs`), written once and run on gort and tokio in
//! one criterion group per workload, with the same worker count: this
//! machine's cores. Parameters are tokio's: 10,000 spawns, 1,000 for busy2,
//! 200 tasks x 1,000 yields, 1,000 ping-pongs, a chain of 1,000 spawns, a
//! 10 us stall.
//!
//! Run: `cargo bench --bench rt_multi_threaded`, then
//! `python3 scripts/bench_table.py` for the table of medians and ratios.

mod common;

use common::{BenchRt, Gort, Tokio, workers};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::channel::oneshot;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const NUM_SPAWN: usize = 10_000;
const STALL_DUR: Duration = Duration::from_micros(10);

fn stall() {
    let now = Instant::now();
    while now.elapsed() < STALL_DUR {
        std::thread::yield_now();
    }
}

fn spawn_many_local<R: BenchRt>(c: &mut Criterion) {
    let rt = R::build(workers());
    let (tx, rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    c.benchmark_group("spawn_many_local")
        .bench_function(R::NAME, |b| {
            b.iter(|| {
                rem.store(NUM_SPAWN, Relaxed);
                rt.block_on(async {
                    for _ in 0..NUM_SPAWN {
                        let tx = tx.clone();
                        let rem = rem.clone();
                        drop(R::spawn(async move {
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                tx.send(()).unwrap();
                            }
                        }));
                    }
                    rx.recv().unwrap();
                });
            })
        });
}

fn spawn_many_remote_idle<R: BenchRt>(c: &mut Criterion) {
    let rt = R::build(workers());
    let mut handles = Vec::with_capacity(NUM_SPAWN);
    c.benchmark_group("spawn_many_remote_idle")
        .bench_function(R::NAME, |b| {
            b.iter(|| {
                for _ in 0..NUM_SPAWN {
                    handles.push(rt.spawn_on(async {}));
                }
                rt.block_on(async {
                    for handle in handles.drain(..) {
                        handle.await;
                    }
                });
            })
        });
}

fn spawn_many_remote_busy1<R: BenchRt>(c: &mut Criterion) {
    let rt = R::build(workers());
    let mut handles = Vec::with_capacity(NUM_SPAWN);
    let flag = Arc::new(AtomicBool::new(true));
    for _ in 0..(2 * workers()) {
        let flag = flag.clone();
        drop(rt.spawn_on(async move {
            while flag.load(Relaxed) {
                R::yield_now().await;
                stall();
            }
        }));
    }
    c.benchmark_group("spawn_many_remote_busy1")
        .bench_function(R::NAME, |b| {
            b.iter(|| {
                for _ in 0..NUM_SPAWN {
                    handles.push(rt.spawn_on(async {}));
                }
                rt.block_on(async {
                    for handle in handles.drain(..) {
                        handle.await;
                    }
                });
            })
        });
    flag.store(false, Relaxed);
}

fn busy2_chain<R: BenchRt>(flag: Arc<AtomicBool>) {
    drop(R::spawn(async move {
        if flag.load(Relaxed) {
            stall();
            busy2_chain::<R>(flag);
        }
    }));
}

fn spawn_many_remote_busy2<R: BenchRt>(c: &mut Criterion) {
    const NUM_SPAWN: usize = 1_000;
    let rt = R::build(workers());
    let mut handles = Vec::with_capacity(NUM_SPAWN);
    let flag = Arc::new(AtomicBool::new(true));
    for _ in 0..workers() {
        let flag = flag.clone();
        drop(rt.spawn_on(async move { busy2_chain::<R>(flag) }));
    }
    c.benchmark_group("spawn_many_remote_busy2")
        .bench_function(R::NAME, |b| {
            b.iter(|| {
                for _ in 0..NUM_SPAWN {
                    handles.push(rt.spawn_on(async {}));
                }
                rt.block_on(async {
                    for handle in handles.drain(..) {
                        handle.await;
                    }
                });
            })
        });
    flag.store(false, Relaxed);
}

fn yield_many<R: BenchRt>(c: &mut Criterion) {
    const NUM_YIELD: usize = 1_000;
    const TASKS: usize = 200;
    let rt = R::build(workers());
    let (tx, rx) = mpsc::sync_channel(TASKS);
    c.benchmark_group("yield_many")
        .bench_function(R::NAME, |b| {
            b.iter(|| {
                for _ in 0..TASKS {
                    let tx = tx.clone();
                    drop(rt.spawn_on(async move {
                        for _ in 0..NUM_YIELD {
                            R::yield_now().await;
                        }
                        tx.send(()).unwrap();
                    }));
                }
                for _ in 0..TASKS {
                    rx.recv().unwrap();
                }
            })
        });
}

fn ping_pong<R: BenchRt>(c: &mut Criterion) {
    const NUM_PINGS: usize = 1_000;
    let rt = R::build(workers());
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    c.benchmark_group("ping_pong").bench_function(R::NAME, |b| {
        b.iter(|| {
            let done_tx = done_tx.clone();
            let rem = rem.clone();
            rem.store(NUM_PINGS, Relaxed);
            rt.block_on(async {
                drop(R::spawn(async move {
                    for _ in 0..NUM_PINGS {
                        let rem = rem.clone();
                        let done_tx = done_tx.clone();
                        drop(R::spawn(async move {
                            let (tx1, rx1) = oneshot::channel::<()>();
                            let (tx2, rx2) = oneshot::channel::<()>();
                            drop(R::spawn(async move {
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
        })
    });
}

fn chain<R: BenchRt>(done_tx: mpsc::SyncSender<()>, n: usize) {
    if n == 0 {
        done_tx.send(()).unwrap();
    } else {
        drop(R::spawn(async move { chain::<R>(done_tx, n - 1) }));
    }
}

fn chained_spawn<R: BenchRt>(c: &mut Criterion) {
    const ITER: usize = 1_000;
    let rt = R::build(workers());
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    c.benchmark_group("chained_spawn")
        .bench_function(R::NAME, |b| {
            b.iter(|| {
                let done_tx = done_tx.clone();
                rt.block_on(async {
                    drop(R::spawn(async move { chain::<R>(done_tx, ITER) }));
                    done_rx.recv().unwrap();
                });
            })
        });
}

/// Each workload runs on gort, then on tokio, before the next workload.
fn scheduler(c: &mut Criterion) {
    macro_rules! both {
        ($($workload:ident),*) => {$(
            $workload::<Gort>(c);
            $workload::<Tokio>(c);
        )*};
    }
    both!(
        spawn_many_local,
        spawn_many_remote_idle,
        spawn_many_remote_busy1,
        spawn_many_remote_busy2,
        yield_many,
        ping_pong,
        chained_spawn
    );
}

criterion_group!(rt_multi_threaded, scheduler);
criterion_main!(rt_multi_threaded);
