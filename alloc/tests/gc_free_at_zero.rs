//! Free at count zero (DESIGN.md section 7): the drop of the last handle to
//! an acyclic object runs its destructor on the dropping thread, at once,
//! when no cycle runs. One test function: a collection running beside it
//! (another test, or the pacer) would rightly defer frees to the sweep, so
//! the phases run in order with pacing off.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use gort_alloc::{Gc, GcMutex, Trace, collect, gc_stats, set_gc_percent};

/// A list node that records its drop and the thread that ran it.
#[derive(Trace)]
struct Link {
    next: GcMutex<Option<Gc<Link>>>,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
    #[trace(skip)]
    dropped_on: Arc<Mutex<Vec<ThreadId>>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        self.dropped_on
            .lock()
            .unwrap()
            .push(std::thread::current().id());
    }
}

/// A value whose destructor calls `collect()` and allocates, clones and
/// drops handles: all nest inside the last drop's barrier operation.
#[derive(Trace)]
struct Busy {
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        // A cycle cannot start while this destructor runs: this must return
        // at once, not wait for one.
        collect();
        let fresh = Gc::new(7u64);
        let copy = fresh.clone();
        assert_eq!(*copy + *fresh, 14);
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn last_drop_frees_at_once_on_the_dropping_thread() {
    set_gc_percent(-1);
    collect();
    let cycles_before = gc_stats().num_gc;

    // A chain of 1,000 nodes: dropping the head drops all of them, here.
    let drops = Arc::new(AtomicUsize::new(0));
    let dropped_on = Arc::new(Mutex::new(Vec::new()));
    let head = Gc::new(Link {
        next: GcMutex::new(None),
        drops: drops.clone(),
        dropped_on: dropped_on.clone(),
    });
    let mut tail = head.clone();
    for _ in 1..1000 {
        let next = Gc::new(Link {
            next: GcMutex::new(None),
            drops: drops.clone(),
            dropped_on: dropped_on.clone(),
        });
        *tail.next.lock() = Some(next.clone());
        tail = next;
    }
    drop(tail);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "the chain is still held");
    drop(head);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1000,
        "dropping the head's last handle must drop the whole chain at once"
    );
    let me = std::thread::current().id();
    assert!(
        dropped_on.lock().unwrap().iter().all(|&t| t == me),
        "destructors of acyclic garbage run on the dropping thread"
    );

    // A destructor that collects, allocates and clones does not deadlock.
    let busy = Arc::new(AtomicUsize::new(0));
    drop(Gc::new(Busy {
        drops: busy.clone(),
    }));
    assert_eq!(busy.load(Ordering::SeqCst), 1);

    // A `Weak` keeps the memory: the last strong drop leaves the object to
    // the collector, which then makes `upgrade` fail.
    let weak_drops = Arc::new(AtomicUsize::new(0));
    let held = Gc::new(Link {
        next: GcMutex::new(None),
        drops: weak_drops.clone(),
        dropped_on: dropped_on.clone(),
    });
    let weak = Gc::downgrade(&held);
    drop(held);
    assert_eq!(weak_drops.load(Ordering::SeqCst), 0);
    collect();
    assert_eq!(weak_drops.load(Ordering::SeqCst), 1);
    assert!(weak.upgrade().is_none());

    // A ring of two: each destructor, run by the sweep, drops the last
    // handle to the other condemned object (a store, no decrement,
    // last_drop.rs): both are freed and neither is counted as kept alive.
    let leaked_before = gc_stats().leaked_objects;
    let ring_drops = Arc::new(AtomicUsize::new(0));
    let link = || {
        Gc::new(Link {
            next: GcMutex::new(None),
            drops: ring_drops.clone(),
            dropped_on: dropped_on.clone(),
        })
    };
    let (a, b) = (link(), link());
    *a.next.lock() = Some(b.clone());
    *b.next.lock() = Some(a.clone());
    drop((a, b));
    assert_eq!(ring_drops.load(Ordering::SeqCst), 0, "a ring needs a cycle");
    collect();
    assert_eq!(ring_drops.load(Ordering::SeqCst), 2);
    assert_eq!(
        gc_stats().leaked_objects,
        leaked_before,
        "the sweep saw a handle left on a ring node whose last handle was dropped"
    );

    // A million objects allocated and dropped reuse the same few slots and
    // start no cycle (pacing is off, but the heap must not grow either).
    let live_before = gc_stats().heap_alloc;
    for i in 0..1_000_000u64 {
        std::hint::black_box(Gc::new(i));
    }
    let grown = gc_stats().heap_alloc.saturating_sub(live_before);
    assert!(
        grown < 1 << 20,
        "1M dropped objects left {grown} bytes counted in the heap"
    );
    assert_eq!(
        gc_stats().num_gc,
        cycles_before + 2,
        "only the two explicit collect() calls above ran cycles"
    );

    // Dead slots the thread kept but did not reuse before a cycle are
    // released by the next snapshots and freed by the arena, and only they.
    collect();
    collect();
    let stats = gc_stats();
    assert_eq!(stats.unexpected_dead, 0, "{stats:?}");
    assert_eq!(stats.destructor_panics, 0, "{stats:?}");

    // A dead slot stays counted in the pacer's heap until it is reused or a
    // snapshot releases it, which subtracts its bytes: rounds of 64 KiB
    // objects dropped (half kept as dead slots, half freed) and a cycle
    // leave the count where it was. Releasing dead slots with 0 bytes
    // would leave 32 KiB per round counted: 1.6 MiB after 50 rounds.
    let before = gc_stats().heap_alloc;
    for _ in 0..50 {
        let held: Vec<Gc<[u8; 1000]>> = (0..64).map(|_| Gc::new([7; 1000])).collect();
        drop(held);
        collect();
    }
    let after = gc_stats().heap_alloc;
    assert!(
        after <= before + (256 << 10),
        "dead slots stayed counted: heap_alloc went from {before} to {after}"
    );
    set_gc_percent(100);
}
