//! SpanAlloc against glibc malloc (`std::alloc::System`) and mimalloc, side
//! by side in one run, called directly through `GlobalAlloc`:
//! - `small_1t`: a batch of 64 small objects (16..=256 bytes) allocated then
//!   freed, on one thread (per iteration: 64 alloc + 64 free);
//! - `small_2t`: the same batch loop on two threads at once (wall time per
//!   batch of each thread);
//! - `churn`: a ring of 1024 live objects of mixed sizes (8 B to 64 KiB,
//!   mostly small), one slot replaced per iteration (one free + one alloc).
//!
//! Run: `cargo bench -p gort-alloc --bench alloc`.

use criterion::{Criterion, criterion_group, criterion_main};
use gort_alloc::SpanAlloc;
use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::{Duration, Instant};

const BATCH: usize = 64;

fn layouts() -> [Layout; BATCH] {
    std::array::from_fn(|i| Layout::from_size_align(16 + (i * 37) % 241, 8).unwrap())
}

/// One batch: allocate 64 objects, touch each, free them in allocation order.
#[inline(always)]
fn batch<A: GlobalAlloc>(a: &A, ls: &[Layout; BATCH], ptrs: &mut [*mut u8; BATCH]) {
    for (p, l) in ptrs.iter_mut().zip(ls) {
        // SAFETY: non-zero layouts.
        *p = unsafe { a.alloc(*l) };
        // SAFETY: the allocation holds at least one byte (null would fault,
        // which a benchmark may treat as a failure).
        unsafe { p.write(1) };
    }
    for (p, l) in ptrs.iter().zip(ls) {
        // SAFETY: allocated just above with `l`.
        unsafe { a.dealloc(black_box(*p), *l) };
    }
}

fn small_1t<A: GlobalAlloc>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    a: &'static A,
) {
    let ls = layouts();
    let mut ptrs = [std::ptr::null_mut(); BATCH];
    c.bench_function(name, |b| b.iter(|| batch(a, &ls, &mut ptrs)));
}

fn small_2t<A: GlobalAlloc + Sync>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    a: &'static A,
) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        let ls = layouts();
                        let mut ptrs = [std::ptr::null_mut(); BATCH];
                        for _ in 0..iters {
                            batch(a, &ls, &mut ptrs);
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn churn_size(r: &mut Rng) -> usize {
    let x = r.next();
    match x % 16 {
        0..=11 => 8 + (x >> 8) as usize % 248,     // 75%: up to 256 B
        12..=14 => 256 + (x >> 8) as usize % 3840, // 19%: up to 4 KiB
        _ => 4096 + (x >> 8) as usize % 61440,     // 6%: up to 64 KiB
    }
}

fn churn<A: GlobalAlloc>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    a: &'static A,
) {
    const RING: usize = 1024;
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut ring: Vec<(*mut u8, Layout)> = (0..RING)
        .map(|_| {
            let l = Layout::from_size_align(churn_size(&mut r), 8).unwrap();
            // SAFETY: non-zero layout.
            (unsafe { a.alloc(l) }, l)
        })
        .collect();
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            let slot = &mut ring[i % RING];
            i = i.wrapping_add(7);
            // SAFETY: the slot holds a live allocation with its layout.
            unsafe { a.dealloc(slot.0, slot.1) };
            let l = Layout::from_size_align(churn_size(&mut r), 8).unwrap();
            // SAFETY: non-zero layout.
            let p = unsafe { a.alloc(l) };
            // SAFETY: at least one byte.
            unsafe { p.write(1) };
            *slot = (p, l);
        })
    });
    for (p, l) in ring {
        // SAFETY: live allocations with their layouts.
        unsafe { a.dealloc(p, l) };
    }
}

static SPAN: SpanAlloc = SpanAlloc;
static GLIBC: System = System;
static MI: MiMalloc = MiMalloc;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("small_1t");
    small_1t(&mut g, "spanalloc", &SPAN);
    small_1t(&mut g, "glibc", &GLIBC);
    small_1t(&mut g, "mimalloc", &MI);
    g.finish();
    let mut g = c.benchmark_group("small_2t");
    small_2t(&mut g, "spanalloc", &SPAN);
    small_2t(&mut g, "glibc", &GLIBC);
    small_2t(&mut g, "mimalloc", &MI);
    g.finish();
    let mut g = c.benchmark_group("churn");
    churn(&mut g, "spanalloc", &SPAN);
    churn(&mut g, "glibc", &GLIBC);
    churn(&mut g, "mimalloc", &MI);
    g.finish();
}

criterion_group! {
    name = alloc_benches;
    config = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(alloc_benches);
