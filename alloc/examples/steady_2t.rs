//! Two long-lived threads allocating and freeing small objects, SpanAlloc
//! against mimalloc: the steady state of the `small_2t` bench without its
//! per-sample thread start and exit. Prints the best of 12 rounds.
//!
//! Run: `cargo run --release -p gort-alloc --example steady_2t`.

use gort_alloc::SpanAlloc;
use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

const BATCH: usize = 64;
const BATCHES: usize = 20_000;
const ROUNDS: usize = 12;

/// `n` batches of 64 allocations (16..=256 bytes) then 64 frees.
#[inline(never)]
fn run<A: GlobalAlloc>(a: &A, n: usize) {
    let ls: [Layout; BATCH] =
        std::array::from_fn(|i| Layout::from_size_align(16 + (i * 37) % 241, 8).unwrap());
    let mut ptrs = [std::ptr::null_mut(); BATCH];
    for _ in 0..n {
        for (p, l) in ptrs.iter_mut().zip(&ls) {
            // SAFETY: non-zero layouts; one byte written into each object.
            unsafe {
                *p = a.alloc(*l);
                p.write(1);
            }
        }
        for (p, l) in ptrs.iter().zip(&ls) {
            // SAFETY: allocated just above with `l`.
            unsafe { a.dealloc(black_box(*p), *l) };
        }
    }
}

/// Best wall time per batch over the rounds, both threads running.
fn best_round<A: GlobalAlloc + Sync>(a: &A) -> f64 {
    let b = Barrier::new(3);
    let mut best = f64::MAX;
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    b.wait();
                    run(a, BATCHES);
                    b.wait();
                }
            });
        }
        for _ in 0..ROUNDS {
            b.wait();
            let t = Instant::now();
            b.wait();
            best = best.min(t.elapsed().as_nanos() as f64 / BATCHES as f64);
        }
    });
    best
}

fn main() {
    let span = best_round(&SpanAlloc);
    let mi = best_round(&MiMalloc);
    println!(
        "steady 2 threads, ns per batch of 64 pairs: SpanAlloc {span:.0}, mimalloc {mi:.0}, ratio {:.2}",
        span / mi
    );
}
