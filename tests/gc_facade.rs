//! The GC through the facade alone: `gort::Gc`, `gort::GcCell`,
//! `gort::GcMutex` and `#[derive(gort::Trace)]`, whose generated code names
//! `::gort::alloc` paths (a program depending only on `gort` must build).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gort::{Gc, GcCell, GcMutex, Trace};

#[derive(Trace)]
struct Node {
    next: GcCell<Option<Gc<Node>>>,
    shared: GcMutex<Vec<Gc<Node>>>,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn node(drops: &Arc<AtomicUsize>) -> Gc<Node> {
    Gc::new(Node {
        next: GcCell::new(None),
        shared: GcMutex::new(Vec::new()),
        drops: drops.clone(),
    })
}

#[test]
fn a_cycle_built_through_the_facade_is_collected() {
    let drops = Arc::new(AtomicUsize::new(0));
    let a = node(&drops);
    let b = node(&drops);
    *a.next.borrow_mut() = Some(b.clone());
    b.shared.lock().push(a.clone());
    let kept = node(&drops);
    kept.shared.lock().push(kept.clone()); // a self-loop still held outside
    drop((a, b));
    gort::collect();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        2,
        "the two-node cycle is freed, the held self-loop is not"
    );
    assert_eq!(kept.shared.lock().len(), 1);
    assert!(gort::alloc::gc_stats().num_gc >= 1);
}
