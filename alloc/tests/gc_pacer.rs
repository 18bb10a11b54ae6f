//! The pacer starts cycles on its own (GOGC), stops when turned off, and the
//! memory limit pulls the goal down. One test function: the phases share
//! the process-wide pacer and must not interleave.

#![cfg(not(loom))]

use std::time::{Duration, Instant};

use gort_alloc::{Gc, GcCell, Trace, gc_stats, set_gc_percent, set_memory_limit};

/// An object that points to itself: garbage only a cycle can free (an
/// acyclic object is freed by its last drop and never reaches the pacer).
#[derive(Trace)]
struct SelfLoop {
    me: GcCell<Option<Gc<SelfLoop>>>,
    #[trace(skip)]
    _payload: [u64; 4],
}

/// Allocates cyclic garbage until `done` says so or `bytes` were allocated;
/// returns how many bytes it allocated.
fn allocate_garbage(bytes: usize, mut done: impl FnMut() -> bool) -> usize {
    let mut allocated = 0;
    while allocated < bytes && !done() {
        for _ in 0..1024 {
            let node = Gc::new(SelfLoop {
                me: GcCell::new(None),
                _payload: [0; 4],
            });
            *node.me.borrow_mut() = Some(node.clone());
        }
        allocated += 1024 * 64;
    }
    allocated
}

/// Acyclic garbage is freed by its last drop: it never triggers a cycle.
fn acyclic_garbage_starts_no_cycle() {
    gort_alloc::collect();
    let before = gc_stats().num_gc;
    for _ in 0..(64 << 20) / 64 {
        std::hint::black_box(Gc::new([0u64; 4]));
    }
    assert_eq!(
        gc_stats().num_gc,
        before,
        "64 MiB of acyclic garbage was freed at its last drop, yet a cycle ran"
    );
}

#[test]
fn pacer_starts_cycles_by_itself_and_obeys_off_and_the_limit() {
    // GOGC=100 (the default): allocating far past the 4 MiB minimum goal
    // starts background cycles without any collect() call.
    assert_eq!(set_gc_percent(100), 100, "GOGC defaults to 100");
    let before = gc_stats().num_gc;
    let deadline = Instant::now() + Duration::from_secs(60);
    allocate_garbage(usize::MAX, || {
        gc_stats().num_gc > before + 1 || Instant::now() > deadline
    });
    let stats = gc_stats();
    assert!(
        stats.num_gc > before + 1,
        "no background cycle within 60 s of allocation: {stats:?}"
    );
    assert!(
        stats.next_gc >= 4 << 20,
        "the goal never drops below 4 MiB: {stats:?}"
    );

    // GOGC off: 64 MiB of garbage starts no cycle.
    assert_eq!(set_gc_percent(-1), 100);
    // A cycle the pacer requested before may still be pending: two explicit
    // collections leave none (each waits for a cycle that starts after it).
    gort_alloc::collect();
    gort_alloc::collect();
    let before = gc_stats().num_gc;
    allocate_garbage(64 << 20, || false);
    assert_eq!(gc_stats().num_gc, before, "GOGC=off must not start cycles");
    assert_eq!(gc_stats().gc_percent, -1);

    // A memory limit still applies with GOGC off: the goal sits at 15/16 of
    // it, and allocating past it starts cycles again.
    let limit = 8 << 20;
    let old = set_memory_limit(limit);
    assert_eq!(gc_stats().next_gc as usize, limit - limit / 16);
    let before = gc_stats().num_gc;
    let deadline = Instant::now() + Duration::from_secs(60);
    allocate_garbage(usize::MAX, || {
        gc_stats().num_gc > before || Instant::now() > deadline
    });
    assert!(
        gc_stats().num_gc > before,
        "the memory limit started no cycle within 60 s"
    );
    set_memory_limit(old);
    set_gc_percent(100);

    acyclic_garbage_starts_no_cycle();
}
