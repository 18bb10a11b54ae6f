//! At most one heap allocation per spawned task (amortised).

#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::SeqCst};

use gort_executor::{Builder, spawn};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated and not yet freed, over the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(SeqCst) {
            ALLOCS.fetch_add(1, SeqCst);
        }
        LIVE.fetch_add(layout.size() as isize, SeqCst);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, SeqCst);
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counters are process-wide, so the two checks run in one test, one
/// after the other.
#[test]
fn allocations() {
    one_allocation_per_spawn();
    shutdown_frees_everything();
}

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

/// Dropping a runtime with pending tasks (waiting, queued, never polled)
/// frees every task and every runtime structure.
fn shutdown_frees_everything() {
    // Warm up once so lazily created process-wide state (thread-local
    // destructors' registration, std's thread bookkeeping) is not counted.
    drop(Builder::new().worker_threads(2).build().unwrap());
    let before = LIVE.load(SeqCst);
    {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let rx = futures::future::FutureExt::shared(rx);
        let mut kept = Vec::new();
        for i in 0..1000 {
            let rx = rx.clone();
            let h = rt.spawn(async move {
                let _ = rx.await;
                vec![0u8; 64] // an output that must not leak either
            });
            if i % 2 == 0 {
                kept.push(h); // JoinHandles outliving the runtime
            }
        }
        rt.block_on(async {
            for _ in 0..10 {
                gort_executor::task::yield_now().await;
            }
        });
        drop(rt);
        drop(kept);
        drop(tx);
    }
    let after = LIVE.load(SeqCst);
    assert!(
        after - before <= 1024,
        "{} bytes still allocated after the runtime was dropped",
        after - before
    );
}
