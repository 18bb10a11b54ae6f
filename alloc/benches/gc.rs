//! Gc<T> against the collectors Rust users pick today, side by side:
//! `dumpster` 2 (sync), `gc` (rust-gc), `bacon_rajan_cc`, and `Arc` as the
//! no-collection baseline.
//!
//! Run: `cargo bench -p gort-alloc --bench gc` (`GC_BENCH_REPS=n` to change the
//! number of runs; each figure is the median; `GC_BENCH_ONLY=abcdn` picks
//! workloads). Workloads:
//! - (a) allocate and drop 1,000,000 small objects, then collect
//!   (`GC_BENCH_ONLY=n`: `Gc::new` + drop and `Arc::new` + drop per call,
//!   in isolation);
//! - (b) build and drop 100,000 cycles of 2 and of 10 objects, then collect;
//! - (c) a random graph workload on two threads (200,000 operations each),
//!   then collect. gort, dumpster and Arc share one graph between the
//!   threads; `gc` and `bacon_rajan_cc` are single-threaded, so each thread
//!   runs its own graph (gort is also run that way, for a like-for-like
//!   row, once with the shared graph's `GcMutex` nodes and once with
//!   `GcCell` nodes and `RefCell` slots, the types the single-threaded
//!   crates use);
//! - (d) the longest time (and the p99) any mutator operation waits while a
//!   heap of 1,000,000 live objects is collected.

// gc_derive 0.5 emits its impls inside a const block.
#![allow(non_local_definitions)]

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SMALL: usize = 1_000_000;
const CYCLES: usize = 100_000;
const GRAPH_OPS: usize = 200_000;
const SLOTS: usize = 256;
const LIVE: usize = 1_000_000;

fn reps() -> usize {
    std::env::var("GC_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..reps())
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------- nodes

#[derive(gort_alloc::Trace)]
struct GortNode {
    next: gort_alloc::GcCell<Option<gort_alloc::Gc<GortNode>>>,
}

#[derive(gort_alloc::Trace)]
struct GortShared {
    edges: gort_alloc::GcMutex<Vec<gort_alloc::Gc<GortShared>>>,
}

/// A node of a graph that stays on one thread: `GcCell` edges, like the
/// single-threaded crates' nodes.
#[derive(gort_alloc::Trace)]
struct GortLocal {
    edges: gort_alloc::GcCell<Vec<gort_alloc::Gc<GortLocal>>>,
}

#[derive(dumpster::Trace)]
struct DumpsterNode {
    next: Mutex<Option<dumpster::sync::Gc<DumpsterNode>>>,
}

#[derive(dumpster::Trace)]
struct DumpsterShared {
    edges: Mutex<Vec<dumpster::sync::Gc<DumpsterShared>>>,
}

#[derive(gc::Trace, gc::Finalize)]
struct RustGcNode {
    next: gc::GcCell<Vec<gc::Gc<RustGcNode>>>,
}

struct BaconNode {
    next: RefCell<Vec<bacon_rajan_cc::Cc<BaconNode>>>,
}

impl bacon_rajan_cc::Trace for BaconNode {
    fn trace(&self, tracer: &mut bacon_rajan_cc::Tracer) {
        self.next.trace(tracer);
    }
}

struct ArcNode {
    next: Mutex<Vec<Arc<ArcNode>>>,
}

// ---------------------------------------------------------------- (a)

/// Allocates and drops `SMALL` objects with `new`, then runs `collect`.
fn alloc_drop<H>(new: impl Fn(u64) -> H, collect: impl Fn()) -> Duration {
    median(|| {
        for i in 0..SMALL {
            black_box(new(i as u64));
        }
        collect();
    })
}

fn small_objects() -> Vec<(&'static str, Duration)> {
    vec![
        ("gort", alloc_drop(gort_alloc::Gc::new, gort_alloc::collect)),
        (
            "dumpster",
            alloc_drop(dumpster::sync::Gc::new, dumpster::sync::collect),
        ),
        ("gc", alloc_drop(gc::Gc::new, gc::force_collect)),
        (
            "bacon_rajan_cc",
            alloc_drop(bacon_rajan_cc::Cc::new, bacon_rajan_cc::collect_cycles),
        ),
        ("Arc", alloc_drop(Arc::new, || {})),
    ]
}

/// `Gc::new` + drop against `Arc::new` + drop, per call, with no collection
/// in the loop (the figure the 1.5x target is about).
fn new_drop_in_isolation() {
    const CALLS: usize = 10_000_000;
    let per_call = |d: Duration| d.as_secs_f64() * 1e9 / CALLS as f64;
    let gort = median(|| {
        for i in 0..CALLS {
            black_box(gort_alloc::Gc::new(i as u64));
        }
    });
    let arc = median(|| {
        for i in 0..CALLS {
            black_box(Arc::new(i as u64));
        }
    });
    println!("\nnew + drop in isolation ({CALLS} calls)");
    println!("  Gc::new + drop   {:>6.1} ns", per_call(gort));
    println!(
        "  Arc::new + drop  {:>6.1} ns   (gort/Arc = {:.2})",
        per_call(arc),
        gort.as_secs_f64() / arc.as_secs_f64()
    );
}

// ---------------------------------------------------------------- (b)

/// Builds and drops `CYCLES` rings of `len` nodes made by `new` and linked
/// by `link(from, to)`, then runs `collect`.
fn rings<H: Clone>(
    len: usize,
    new: impl Fn() -> H,
    link: impl Fn(&H, H),
    collect: impl Fn(),
) -> Duration {
    median(|| {
        for _ in 0..CYCLES {
            let first = new();
            let mut last = first.clone();
            for _ in 1..len {
                let node = new();
                link(&last, node.clone());
                last = node;
            }
            link(&last, first);
        }
        collect();
    })
}

fn cycles(len: usize) -> Vec<(&'static str, Duration)> {
    vec![
        (
            "gort",
            rings(
                len,
                || {
                    gort_alloc::Gc::new(GortNode {
                        next: gort_alloc::GcCell::new(None),
                    })
                },
                |from, to| *from.next.borrow_mut() = Some(to),
                gort_alloc::collect,
            ),
        ),
        (
            "dumpster",
            rings(
                len,
                || {
                    dumpster::sync::Gc::new(DumpsterNode {
                        next: Mutex::new(None),
                    })
                },
                |from, to| *from.next.lock().unwrap() = Some(to),
                dumpster::sync::collect,
            ),
        ),
        (
            "gc",
            rings(
                len,
                || {
                    gc::Gc::new(RustGcNode {
                        next: gc::GcCell::new(Vec::new()),
                    })
                },
                |from, to| from.next.borrow_mut().push(to),
                gc::force_collect,
            ),
        ),
        (
            "bacon_rajan_cc",
            rings(
                len,
                || {
                    bacon_rajan_cc::Cc::new(BaconNode {
                        next: RefCell::new(Vec::new()),
                    })
                },
                |from, to| from.next.borrow_mut().push(to),
                bacon_rajan_cc::collect_cycles,
            ),
        ),
        (
            "Arc (cycle cut by hand)",
            rings(
                len,
                || {
                    Arc::new(ArcNode {
                        next: Mutex::new(Vec::new()),
                    })
                },
                |from, to| {
                    // Closing the ring (`to` already has a successor): cut
                    // it instead, so the ring can be freed.
                    if to.next.lock().unwrap().is_empty() {
                        from.next.lock().unwrap().push(to);
                    } else {
                        to.next.lock().unwrap().clear();
                    }
                },
                || {},
            ),
        ),
    ]
}

// ---------------------------------------------------------------- (c)

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One random graph operation on `slots`, generic over the handle type.
macro_rules! graph_op {
    ($rng:expr, $slots:expr, $new:expr, $lock:ident, $edges:ident) => {{
        let a = $rng.below(SLOTS);
        let b = $rng.below(SLOTS);
        match $rng.below(4) {
            0 => *$lock!($slots[a]) = Some($new),
            1 => {
                let from = $lock!($slots[a]).clone();
                let to = $lock!($slots[b]).clone();
                if let (Some(from), Some(to)) = (from, to) {
                    let mut edges = $lock!(from.$edges);
                    if edges.len() >= 4 {
                        edges.remove(0);
                    }
                    edges.push(to);
                }
            }
            2 => {
                let node = $lock!($slots[a]).clone();
                if let Some(node) = node {
                    $lock!(node.$edges).clear();
                }
            }
            _ => *$lock!($slots[a]) = None,
        }
    }};
}

macro_rules! lock_mutex {
    ($e:expr) => {
        $e.lock().unwrap()
    };
}
macro_rules! lock_gort {
    ($e:expr) => {
        $e.lock()
    };
}
macro_rules! borrow_cell {
    ($e:expr) => {
        $e.borrow_mut()
    };
}

/// `GRAPH_OPS` random operations on a graph that stays on this thread, its
/// slots in `RefCell`s (the single-threaded crates' setting); returns the
/// slots for the caller to drop before it collects.
macro_rules! local_graph {
    ($seed:expr, $handle:ty, $new:expr, $edges:ident) => {{
        let mut rng = Rng($seed);
        let slots: Vec<RefCell<Option<$handle>>> = (0..SLOTS).map(|_| RefCell::new(None)).collect();
        for _ in 0..GRAPH_OPS {
            graph_op!(rng, slots, $new, borrow_cell, $edges);
        }
        slots
    }};
}

#[derive(gort_alloc::Trace)]
struct GortTable {
    slots: Vec<gort_alloc::GcMutex<Option<gort_alloc::Gc<GortShared>>>>,
}

fn gort_table() -> gort_alloc::Gc<GortTable> {
    gort_alloc::Gc::new(GortTable {
        slots: (0..SLOTS).map(|_| gort_alloc::GcMutex::new(None)).collect(),
    })
}

/// `GRAPH_OPS` random operations on `table`'s graph.
fn gort_graph_ops(table: &gort_alloc::Gc<GortTable>, seed: u64) {
    let mut rng = Rng(seed);
    for _ in 0..GRAPH_OPS {
        graph_op!(
            rng,
            table.slots,
            gort_alloc::Gc::new(GortShared {
                edges: gort_alloc::GcMutex::new(Vec::new()),
            }),
            lock_gort,
            edges
        );
    }
}

fn two_threads(work: impl Fn(u64) + Sync) {
    std::thread::scope(|scope| {
        for seed in [0x1234_5678u64, 0x8765_4321] {
            let work = &work;
            scope.spawn(move || work(seed));
        }
    });
}

fn random_graph() -> Vec<(&'static str, Duration)> {
    vec![
        (
            "gort (shared graph)",
            median(|| {
                let table = gort_table();
                two_threads(|seed| gort_graph_ops(&table, seed));
                drop(table);
                gort_alloc::collect();
            }),
        ),
        (
            "gort (one graph per thread)",
            median(|| {
                two_threads(|seed| gort_graph_ops(&gort_table(), seed));
                gort_alloc::collect();
            }),
        ),
        (
            "gort (one graph per thread, GcCell)",
            median(|| {
                two_threads(|seed| {
                    drop(local_graph!(
                        seed,
                        gort_alloc::Gc<GortLocal>,
                        gort_alloc::Gc::new(GortLocal {
                            edges: gort_alloc::GcCell::new(Vec::new()),
                        }),
                        edges
                    ));
                });
                gort_alloc::collect();
            }),
        ),
        (
            "dumpster (shared graph)",
            median(|| {
                let slots: Vec<Mutex<Option<dumpster::sync::Gc<DumpsterShared>>>> =
                    (0..SLOTS).map(|_| Mutex::new(None)).collect();
                two_threads(|seed| {
                    let mut rng = Rng(seed);
                    for _ in 0..GRAPH_OPS {
                        graph_op!(
                            rng,
                            slots,
                            dumpster::sync::Gc::new(DumpsterShared {
                                edges: Mutex::new(Vec::new()),
                            }),
                            lock_mutex,
                            edges
                        );
                    }
                });
                drop(slots);
                dumpster::sync::collect();
            }),
        ),
        (
            "gc (one graph per thread)",
            median(|| {
                two_threads(|seed| {
                    drop(local_graph!(
                        seed,
                        gc::Gc<RustGcNode>,
                        gc::Gc::new(RustGcNode {
                            next: gc::GcCell::new(Vec::new()),
                        }),
                        next
                    ));
                    gc::force_collect();
                });
            }),
        ),
        (
            "bacon_rajan_cc (one graph per thread)",
            median(|| {
                two_threads(|seed| {
                    drop(local_graph!(
                        seed,
                        bacon_rajan_cc::Cc<BaconNode>,
                        bacon_rajan_cc::Cc::new(BaconNode {
                            next: RefCell::new(Vec::new()),
                        }),
                        next
                    ));
                    bacon_rajan_cc::collect_cycles();
                });
            }),
        ),
        (
            "Arc (shared graph; leaks its cycles)",
            median(|| {
                let slots: Vec<Mutex<Option<Arc<ArcNode>>>> =
                    (0..SLOTS).map(|_| Mutex::new(None)).collect();
                two_threads(|seed| {
                    let mut rng = Rng(seed);
                    for _ in 0..GRAPH_OPS {
                        graph_op!(
                            rng,
                            slots,
                            Arc::new(ArcNode {
                                next: Mutex::new(Vec::new()),
                            }),
                            lock_mutex,
                            next
                        );
                    }
                });
            }),
        ),
    ]
}

// ---------------------------------------------------------------- (d)

/// Latencies of mutator operations, in nanoseconds.
struct Waits(Vec<u64>);

impl Waits {
    fn report(mut self) -> (u64, u64, usize) {
        self.0.sort_unstable();
        let max = *self.0.last().unwrap_or(&0);
        let p99 = self.0.get(self.0.len() * 99 / 100).copied().unwrap_or(0);
        (max, p99, self.0.len())
    }
}

/// Times one operation into `waits`.
fn timed(waits: &mut Waits, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    waits.0.push(start.elapsed().as_nanos() as u64);
}

fn pause_gort() -> (u64, u64, usize, Duration) {
    pause_gort_with(true)
}

/// The same mutator loop while another thread only spins, for about the time
/// a collection takes: what sharing the CPUs costs without any collector.
fn pause_gort_baseline() -> (u64, u64, usize, Duration) {
    pause_gort_with(false)
}

fn pause_gort_with(collecting: bool) -> (u64, u64, usize, Duration) {
    let new = || {
        gort_alloc::Gc::new(GortShared {
            edges: gort_alloc::GcMutex::new(Vec::new()),
        })
    };
    let live: Vec<gort_alloc::Gc<GortShared>> = (0..LIVE).map(|_| new()).collect();
    // Link them into a binary tree (node i is the parent of 2i+1 and
    // 2i+2), so marking follows a million edges and no drop recurses deeply.
    for i in 1..live.len() {
        live[(i - 1) / 2].edges.lock().push(live[i].clone());
    }
    let root = live[0].clone();
    let sample: Vec<_> = live.iter().step_by(1000).cloned().collect();
    drop(live);
    gort_alloc::collect();
    let result = mutate_during(
        move || {
            if collecting {
                gort_alloc::collect();
            } else {
                // Busy, like a collector, but touching no GC state.
                let start = Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(140) {
                    x = black_box(x.wrapping_add(1));
                }
            }
        },
        &sample,
        new,
        |node| {
            let mut edges = node.edges.lock();
            if let Some(edge) = edges.pop() {
                edges.push(edge);
            }
        },
    );
    drop((root, sample));
    result
}

fn pause_dumpster() -> (u64, u64, usize, Duration) {
    let new = || {
        dumpster::sync::Gc::new(DumpsterShared {
            edges: Mutex::new(Vec::new()),
        })
    };
    let live: Vec<dumpster::sync::Gc<DumpsterShared>> = (0..LIVE).map(|_| new()).collect();
    for i in 1..live.len() {
        live[(i - 1) / 2]
            .edges
            .lock()
            .unwrap()
            .push(live[i].clone());
    }
    let root = live[0].clone();
    let sample: Vec<_> = live.iter().step_by(1000).cloned().collect();
    drop(live);
    let result = mutate_during(dumpster::sync::collect, &sample, new, |node| {
        let mut edges = node.edges.lock().unwrap();
        if let Some(edge) = edges.pop() {
            edges.push(edge);
        }
    });
    drop((root, sample));
    result
}

/// Runs `collect` on another thread and, until it returns, random mutator
/// operations on this one (allocate, clone, lock and touch a node, drop),
/// timing each. Returns the longest wait, the p99, the number of
/// operations and how long `collect` took.
fn mutate_during<H: Clone>(
    collect: impl FnOnce() + Send + 'static,
    sample: &[H],
    new: impl Fn() -> H,
    touch: impl Fn(&H),
) -> (u64, u64, usize, Duration) {
    let done = Arc::new(AtomicBool::new(false));
    let collector = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            collect();
            let took = start.elapsed();
            done.store(true, Ordering::Release);
            took
        })
    };
    let mut waits = Waits(Vec::with_capacity(1 << 22));
    let mut rng = Rng(99);
    let mut keep = Vec::new();
    while !done.load(Ordering::Acquire) {
        let node = &sample[rng.below(sample.len())];
        match rng.below(4) {
            0 => timed(&mut waits, || keep.push(new())),
            1 => timed(&mut waits, || keep.push(node.clone())),
            2 => timed(&mut waits, || touch(node)),
            _ => timed(&mut waits, || {
                keep.pop();
            }),
        }
        if keep.len() > 1000 {
            timed(&mut waits, || keep.clear());
        }
    }
    let took = collector.join().unwrap();
    drop(keep);
    let (max, p99, n) = waits.report();
    (max, p99, n, took)
}

/// rust-gc and bacon_rajan_cc collect on the mutator's thread: the wait is
/// the collection itself, run where the mutator allocates.
fn pause_inline(name: &str) -> (u64, u64, usize, Duration) {
    let mut waits = Waits(Vec::new());
    let took;
    if name == "gc" {
        let live: Vec<gc::Gc<RustGcNode>> = (0..LIVE)
            .map(|_| {
                gc::Gc::new(RustGcNode {
                    next: gc::GcCell::new(Vec::new()),
                })
            })
            .collect();
        for i in 1..live.len() {
            live[(i - 1) / 2].next.borrow_mut().push(live[i].clone());
        }
        let root = live[0].clone();
        drop(live);
        let start = Instant::now();
        timed(&mut waits, gc::force_collect);
        took = start.elapsed();
        drop(root);
    } else {
        let live: Vec<bacon_rajan_cc::Cc<BaconNode>> = (0..LIVE)
            .map(|_| {
                bacon_rajan_cc::Cc::new(BaconNode {
                    next: RefCell::new(Vec::new()),
                })
            })
            .collect();
        for i in 1..live.len() {
            live[(i - 1) / 2].next.borrow_mut().push(live[i].clone());
        }
        let root = live[0].clone();
        drop(live);
        let start = Instant::now();
        timed(&mut waits, bacon_rajan_cc::collect_cycles);
        took = start.elapsed();
        drop(root);
        bacon_rajan_cc::collect_cycles();
    }
    let (max, p99, n) = waits.report();
    (max, p99, n, took)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too,
    // and gets a tiny configuration.
    if std::env::args().any(|a| a == "--test" || a == "--list") || cfg!(debug_assertions) {
        println!("gc bench: run with `cargo bench -p gort-alloc --bench gc`");
        return;
    }
    let table = |title: &str, rows: Vec<(&'static str, Duration)>| {
        println!("\n{title}");
        let gort = rows[0].1;
        for (name, time) in rows {
            println!(
                "  {name:<40} {:>9.1} ms   ({:.2}x gort)",
                ms(time),
                time.as_secs_f64() / gort.as_secs_f64()
            );
        }
    };
    println!("median of {} runs", reps());
    let only = std::env::var("GC_BENCH_ONLY").unwrap_or_else(|_| "abcd".into());
    if only.contains('a') {
        table(
            "(a) allocate and drop 1M small objects, then collect",
            small_objects(),
        );
    }
    if only.contains('n') {
        new_drop_in_isolation();
    }
    if only.contains('b') {
        table(
            "(b) build and drop 100k cycles of 2, then collect",
            cycles(2),
        );
        table(
            "(b) build and drop 100k cycles of 10, then collect",
            cycles(10),
        );
    }
    if only.contains('c') {
        table(
            "(c) random graph, two threads x 200k ops, then collect",
            random_graph(),
        );
    }
    if !only.contains('d') {
        return;
    }
    println!("\n(d) mutator waits while a 1M-object heap is collected");
    let before = gort_alloc::gc_stats();
    for (name, result) in [
        ("gort (concurrent)", pause_gort()),
        (
            "gort, a spinning thread instead (baseline)",
            pause_gort_baseline(),
        ),
        ("dumpster (collect on another thread)", pause_dumpster()),
        ("gc (collects on the mutator)", pause_inline("gc")),
        (
            "bacon_rajan_cc (collects on the mutator)",
            pause_inline("bacon"),
        ),
    ] {
        let (max, p99, ops, took) = result;
        println!(
            "  {name:<42} longest wait {:>10.3} ms  p99 {:>8.3} us  ({ops} ops; collection took {:.1} ms)",
            max as f64 / 1e6,
            p99 as f64 / 1e3,
            ms(took)
        );
    }
    let after = gort_alloc::gc_stats();
    println!(
        "  gort waits on the collector itself (GcStats): {} waits, longest {:.3} ms, total {:.3} ms",
        after.pause_hist.iter().sum::<u64>() - before.pause_hist.iter().sum::<u64>(),
        after.pause_max_ns as f64 / 1e6,
        (after.pause_total_ns - before.pause_total_ns) as f64 / 1e6
    );
}
