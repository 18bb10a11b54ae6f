//! Times the two halves of the gc bench's workload (a): allocating and
//! dropping 1,000,000 small objects, then `collect()`; for profiling
//! (`perf record`, `valgrind --tool=callgrind`). Argument: the rounds (5).

use std::hint::black_box;
use std::time::Instant;

use gort_alloc::Gc;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    for _ in 0..rounds {
        let start = Instant::now();
        for i in 0..1_000_000u64 {
            black_box(Gc::new(i));
        }
        let built = start.elapsed();
        gort_alloc::collect();
        let total = start.elapsed();
        println!(
            "1M small objects: alloc+drop {:.2} ms, collect {:.2} ms",
            built.as_secs_f64() * 1e3,
            (total - built).as_secs_f64() * 1e3
        );
    }
    let stats = gort_alloc::gc_stats();
    println!("cycles: {} ({rounds} by collect())", stats.num_gc);
}
