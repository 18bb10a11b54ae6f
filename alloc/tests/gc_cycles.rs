//! Cycles, self-loops, survival, destructors and cells, single-threaded.

#![cfg(not(loom))]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gort_alloc::{Gc, GcCell, GcMutex, Trace, Weak, collect, gc_stats};

/// A node that counts its drops.
#[derive(Trace)]
struct Node {
    next: GcMutex<Option<Gc<Node>>>,
    #[trace(skip)]
    value: usize,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn node(value: usize, drops: &Arc<AtomicUsize>) -> Gc<Node> {
    Gc::new(Node {
        next: GcMutex::new(None),
        value,
        drops: drops.clone(),
    })
}

/// Builds a ring of `n` nodes and returns its first node.
fn ring(n: usize, drops: &Arc<AtomicUsize>) -> Gc<Node> {
    let first = node(0, drops);
    let mut last = first.clone();
    for value in 1..n {
        let next = node(value, drops);
        *last.next.lock() = Some(next.clone());
        last = next;
    }
    *last.next.lock() = Some(first.clone());
    first
}

fn ring_of(n: usize) {
    let drops = Arc::new(AtomicUsize::new(0));
    let first = ring(n, &drops);
    collect();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "a ring held from the stack must survive"
    );
    // Walk it: every value is still there.
    let mut cursor = first.clone();
    for expected in 0..n {
        assert_eq!(cursor.value, expected);
        let next = cursor.next.lock().clone().expect("ring is closed");
        cursor = next;
    }
    assert!(Gc::ptr_eq(&cursor, &first));
    drop(cursor);
    drop(first);
    collect();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        n,
        "every node of an unreachable ring of {n} is dropped once"
    );
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), n, "no node is dropped twice");
}

#[test]
fn cycle_of_2_is_freed() {
    ring_of(2);
}

#[test]
fn cycle_of_10_is_freed() {
    ring_of(10);
}

#[test]
fn cycle_of_10_000_is_freed() {
    ring_of(10_000);
}

#[test]
fn self_loop_is_freed() {
    let drops = Arc::new(AtomicUsize::new(0));
    let lone = node(7, &drops);
    *lone.next.lock() = Some(lone.clone());
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert_eq!(lone.value, 7);
    drop(lone);
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn objects_reachable_only_through_the_heap_survive() {
    let drops = Arc::new(AtomicUsize::new(0));
    let root = node(1, &drops);
    {
        let child = node(2, &drops);
        let grandchild = node(3, &drops);
        *child.next.lock() = Some(grandchild);
        *root.next.lock() = Some(child);
    }
    for _ in 0..3 {
        collect();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    let child = root.next.lock().clone().unwrap();
    let grandchild = child.next.lock().clone().unwrap();
    assert_eq!((root.value, child.value, grandchild.value), (1, 2, 3));
    drop((child, grandchild));
    // Cut the chain: both below the root become garbage.
    *root.next.lock() = None;
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    drop(root);
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn gc_cell_borrows_like_refcell() {
    let cell = Gc::new(GcCell::new(vec![1, 2]));
    {
        let first = cell.borrow();
        let second = cell.borrow();
        assert_eq!(first.len() + second.len(), 4);
        let error = cell
            .try_borrow_mut()
            .err()
            .expect("shared borrows block borrow_mut");
        assert_eq!(error.to_string(), "GcCell is already borrowed");
    }
    cell.borrow_mut().push(3);
    let guard = cell.borrow_mut();
    let error = cell.try_borrow().err().expect("borrow_mut blocks borrow");
    assert_eq!(error.to_string(), "GcCell is already mutably borrowed");
    drop(guard);
    assert_eq!(*cell.borrow(), vec![1, 2, 3]);
}

#[test]
fn gc_mutex_does_not_poison() {
    let mutex = Arc::new(GcMutex::new(5));
    let clone = mutex.clone();
    let result = std::thread::spawn(move || {
        let _guard = clone.lock();
        panic!("panic while holding the lock");
    })
    .join();
    assert!(result.is_err());
    *mutex.lock() += 1;
    assert_eq!(*mutex.lock(), 6);
    assert!(mutex.try_lock().is_some());
}

/// `GcMutex` is its borrow flag plus a parking place: threads that find it
/// held sleep and are woken. Four threads take it 20,000 times each while
/// collections run; a non-atomic read-modify-write of the value under the
/// lock counts every increment only if the lock excludes, and a lost wake-up
/// hangs the test (the join bound reports it).
#[test]
fn gc_mutex_excludes_and_wakes_under_contention() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 20_000;
    let mutex = Arc::new(GcMutex::new((0usize, None::<Gc<u64>>)));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (mutex, done) = (mutex.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    let mut guard = mutex.lock();
                    let seen = guard.0;
                    // Give another thread the chance to break in.
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                    guard.0 = seen + 1;
                    guard.1 = Some(Gc::new((t * ROUNDS + i) as u64));
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Release);
            })
        })
        .collect();
    let start = std::time::Instant::now();
    while done.load(std::sync::atomic::Ordering::Acquire) < THREADS {
        collect();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "GcMutex waiters were not woken within 120 s"
        );
    }
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    let guard = mutex.lock();
    assert_eq!(guard.0, THREADS * ROUNDS, "an increment was lost");
    assert!(guard.1.is_some());
    drop(guard);
    assert!(mutex.try_lock().is_some());
}

/// `try_lock` refuses while another thread holds the lock, and succeeds once
/// it lets go.
#[test]
fn gc_mutex_try_lock_refuses_while_held() {
    let mutex = Arc::new(GcMutex::new(1));
    let guard = mutex.lock();
    let clone = mutex.clone();
    let refused = std::thread::spawn(move || clone.try_lock().is_none())
        .join()
        .unwrap();
    assert!(refused, "try_lock took a held GcMutex");
    drop(guard);
    assert_eq!(*mutex.try_lock().expect("free again"), 1);
}

/// Holds a handle to another object and reads it in its destructor.
#[derive(Trace)]
struct Peeker {
    other: GcMutex<Option<Gc<Peeker>>>,
    #[trace(skip)]
    id: usize,
    #[trace(skip)]
    seen: Arc<Mutex<Vec<Result<usize, String>>>>,
}

impl Drop for Peeker {
    fn drop(&mut self) {
        let other = self.other.lock().clone();
        if let Some(other) = other {
            let outcome = catch_unwind(AssertUnwindSafe(|| other.id)).map_err(|payload| {
                match payload.downcast_ref::<&str>() {
                    Some(message) => message.to_string(),
                    None => payload
                        .downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| "non-string panic".into()),
                }
            });
            self.seen.lock().unwrap().push(outcome);
        }
    }
}

#[test]
fn destructor_reaching_another_unreachable_object_gets_a_clear_panic() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let a = Gc::new(Peeker {
        other: GcMutex::new(None),
        id: 1,
        seen: seen.clone(),
    });
    let b = Gc::new(Peeker {
        other: GcMutex::new(Some(a.clone())),
        id: 2,
        seen: seen.clone(),
    });
    *a.other.lock() = Some(b.clone());
    drop((a, b));
    collect();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "both destructors ran once: {seen:?}");
    for outcome in seen.iter() {
        let message = outcome
            .as_ref()
            .expect_err("a condemned object must not be readable");
        assert!(
            message.contains("found unreachable"),
            "unclear panic: {message}"
        );
    }
    let stats = gc_stats();
    assert!(stats.num_gc >= 1 && stats.last_gc > 0, "{stats:?}");
    let mem = gort_alloc::stats();
    assert!(
        mem.gc.num_gc >= stats.num_gc,
        "MemStats embeds the GC statistics"
    );
    assert!(format!("{mem:?}").contains("num_gc"));
}

static STASH: Mutex<Vec<Gc<Resurrect>>> = Mutex::new(Vec::new());

#[derive(Trace)]
struct Resurrect {
    me: GcMutex<Option<Gc<Resurrect>>>,
}

impl Drop for Resurrect {
    fn drop(&mut self) {
        if let Some(me) = self.me.lock().take() {
            STASH.lock().unwrap().push(me);
        }
    }
}

#[test]
fn a_destructor_that_keeps_a_handle_leaks_instead_of_dangling() {
    let leaked_before = gc_stats().leaked_objects;
    let object = Gc::new(Resurrect {
        me: GcMutex::new(None),
    });
    *object.me.lock() = Some(object.clone());
    drop(object);
    collect();
    let kept = STASH
        .lock()
        .unwrap()
        .pop()
        .expect("the destructor stashed a handle");
    assert!(gc_stats().leaked_objects > leaked_before);
    let read = catch_unwind(AssertUnwindSafe(|| kept.me.lock().is_none()));
    assert!(read.is_err(), "reading a resurrected object panics");
    // Once its last handle is gone, a cycle frees its memory (checked by
    // the arena's count of objects it freed without them being condemned:
    // none, and by valgrind).
    drop(kept);
    collect();
    collect();
    assert_eq!(gc_stats().unexpected_dead, 0);
}

#[derive(Trace)]
enum Shape {
    Leaf(#[trace(skip)] u32),
    Pair(Gc<Shape>, Gc<Shape>),
    Named {
        child: Option<Gc<Shape>>,
        label: String,
    },
    Empty,
}

#[derive(Trace)]
struct Wrapper<T: 'static>(T, std::marker::PhantomData<T>);

#[test]
fn derive_handles_enums_tuples_and_generics() {
    let leaf = Gc::new(Shape::Leaf(3));
    let pair = Gc::new(Shape::Pair(leaf.clone(), leaf.clone()));
    let named = Gc::new(Shape::Named {
        child: Some(pair.clone()),
        label: "top".into(),
    });
    let wrapped = Gc::new(Wrapper(named.clone(), std::marker::PhantomData));
    drop((leaf, pair, named));
    collect();
    let Shape::Named { child, label } = &*wrapped.0 else {
        panic!("wrong variant")
    };
    assert_eq!(label, "top");
    let Shape::Pair(left, right) = &**child.as_ref().unwrap() else {
        panic!("wrong variant")
    };
    assert!(Gc::ptr_eq(left, right));
    assert!(matches!(**left, Shape::Leaf(3)));
    assert!(matches!(*Gc::new(Shape::Empty), Shape::Empty));
}

#[test]
fn gc_forwards_comparisons_and_formatting() {
    let a = Gc::new(String::from("x"));
    let b = Gc::new(String::from("x"));
    assert_eq!(a, b);
    assert!(!Gc::ptr_eq(&a, &b));
    assert_eq!(format!("{a} {b:?}"), "x \"x\"");
    let mut set = std::collections::HashSet::new();
    set.insert(a.clone());
    assert!(set.contains(&b));
    assert!(Gc::new(1) < Gc::new(2));
}

/// `#[trace(crate = "...")]` names the path to gort-alloc; here the facade's
/// derive (which defaults to `::gort::alloc`) is pointed at `gort_alloc`.
#[derive(gort_macros::Trace)]
#[trace(crate = "::gort_alloc")]
struct ViaFacadeDerive {
    child: Option<Gc<Node>>,
}

#[test]
fn derive_crate_attribute_overrides_the_path() {
    let drops = Arc::new(AtomicUsize::new(0));
    let holder = Gc::new(ViaFacadeDerive {
        child: Some(node(5, &drops)),
    });
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert_eq!(holder.child.as_ref().unwrap().value, 5);
    drop(holder);
    collect();
    // A handle the derive failed to report would have made the child look
    // like a root in this collection, so it would survive it.
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the derive reports the child"
    );
}

#[test]
fn weak_upgrades_until_the_object_is_collected() {
    let drops = Arc::new(AtomicUsize::new(0));
    let strong = node(1, &drops);
    let weak = Gc::downgrade(&strong);
    let again = weak.upgrade().expect("alive while a Gc exists");
    assert!(Gc::ptr_eq(&again, &strong));
    drop((strong, again));
    collect();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "a Weak does not keep its object alive"
    );
    assert!(weak.upgrade().is_none(), "upgrade after the collection");
    let weak2 = weak.clone();
    assert!(weak2.upgrade().is_none());
    // The Weaks keep the header; dropping them lets a cycle free it.
    drop((weak, weak2));
    collect();
    collect();
    assert_eq!(gc_stats().unexpected_dead, 0);
}

#[test]
fn weak_to_a_garbage_cycle_is_cleared() {
    let drops = Arc::new(AtomicUsize::new(0));
    let first = ring(3, &drops);
    let weak = Gc::downgrade(&first);
    drop(first);
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    assert!(weak.upgrade().is_none());
}

/// A tree with Weak parent pointers: the parent link does not keep the
/// parent alive.
#[derive(Trace)]
struct TreeNode {
    parent: GcMutex<Option<Weak<TreeNode>>>,
    children: GcMutex<Vec<Gc<TreeNode>>>,
    #[trace(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for TreeNode {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn weak_parent_pointers() {
    let drops = Arc::new(AtomicUsize::new(0));
    let new = || {
        Gc::new(TreeNode {
            parent: GcMutex::new(None),
            children: GcMutex::new(Vec::new()),
            drops: drops.clone(),
        })
    };
    let root = new();
    let child = new();
    *child.parent.lock() = Some(Gc::downgrade(&root));
    root.children.lock().push(child.clone());
    collect();
    let parent = child.parent.lock().as_ref().unwrap().upgrade().unwrap();
    assert!(Gc::ptr_eq(&parent, &root));
    drop((parent, root));
    collect();
    // The root is gone; the child lives on (held from the stack).
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(child.parent.lock().as_ref().unwrap().upgrade().is_none());
    drop(child);
    collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}
