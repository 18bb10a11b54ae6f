//! Times the two halves of the gc bench's workload (b): building and dropping
//! 100,000 rings, then `collect()`; for profiling (`perf record`).
//! Arguments: the ring length (2) and the rounds (5).

use std::time::Instant;

use gort_alloc::{Gc, GcCell, Trace};

#[derive(Trace)]
struct Node {
    next: GcCell<Option<Gc<Node>>>,
}

fn main() {
    let len: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2);
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..100_000 {
            let first = Gc::new(Node {
                next: GcCell::new(None),
            });
            let mut last = first.clone();
            for _ in 1..len {
                let node = Gc::new(Node {
                    next: GcCell::new(None),
                });
                *last.next.borrow_mut() = Some(node.clone());
                last = node;
            }
            *last.next.borrow_mut() = Some(first);
        }
        let built = start.elapsed();
        gort_alloc::collect();
        let total = start.elapsed();
        println!(
            "rings of {len}: build {:.1} ms, collect {:.1} ms",
            built.as_secs_f64() * 1e3,
            (total - built).as_secs_f64() * 1e3
        );
    }
    let stats = gort_alloc::gc_stats();
    println!("{stats:?}");
}
