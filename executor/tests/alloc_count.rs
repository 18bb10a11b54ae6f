//! At most one heap allocation per spawned task (amortised).

#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use gort_executor::{Builder, spawn};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(SeqCst) {
            ALLOCS.fetch_add(1, SeqCst);
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn one_allocation_per_spawn() {
    const N: usize = 10_000;
    let rt = Builder::new().worker_threads(2).build().unwrap();
    // Warm up: thread-locals, queue buffers.
    rt.block_on(async {
        for _ in 0..100 {
            spawn(async {}).await.unwrap();
        }
    });
    let handles = rt.block_on(async {
        let mut v = Vec::with_capacity(N);
        COUNTING.store(true, SeqCst);
        for i in 0..N {
            v.push(spawn(async move { i }));
        }
        let mut sum = 0;
        for h in v.iter_mut() {
            sum += h.await.unwrap();
        }
        COUNTING.store(false, SeqCst);
        assert_eq!(sum, N * (N - 1) / 2);
        v
    });
    drop(handles);
    let allocs = ALLOCS.load(SeqCst);
    assert!(allocs <= N + 64, "{allocs} allocations for {N} spawns");
}
