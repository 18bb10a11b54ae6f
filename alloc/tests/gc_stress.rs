//! A randomised multi-threaded stress test: threads mutate a shared graph
//! through `GcMutex` and private graphs through `GcCell` while collections
//! run back to back. Every object a thread reaches must be alive and intact
//! (the model: reachable means not dropped, with its check word); at the end
//! every object is dropped exactly once.

#![cfg(not(loom))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gort_alloc::{Gc, GcCell, GcMutex, Trace, Weak, collect, gc_stats};

const MAX_OBJECTS: usize = 3_000_000;
const SLOTS: usize = 64;
const BALLAST: usize = 100_000;
const MAX_EDGES: usize = 4;

struct Ledger {
    next_id: AtomicUsize,
    drops: Vec<AtomicU8>,
}

impl Ledger {
    fn new() -> Arc<Ledger> {
        Arc::new(Ledger {
            next_id: AtomicUsize::new(0),
            drops: (0..MAX_OBJECTS).map(|_| AtomicU8::new(0)).collect(),
        })
    }

    fn id(&self) -> Option<usize> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        (id < MAX_OBJECTS).then_some(id)
    }
}

fn check_word(id: usize) -> u64 {
    (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5
}

/// A shared object: edges through a `GcMutex`.
#[derive(Trace)]
struct Obj {
    #[trace(skip)]
    id: usize,
    #[trace(skip)]
    check: u64,
    edges: GcMutex<Vec<Gc<Obj>>>,
    #[trace(skip)]
    ledger: Arc<Ledger>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.ledger.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

/// A thread-private object: edges and shared objects through `GcCell`s.
#[derive(Trace)]
struct Local {
    #[trace(skip)]
    id: usize,
    #[trace(skip)]
    check: u64,
    next: GcCell<Option<Gc<Local>>>,
    shared: GcCell<Option<Gc<Obj>>>,
    #[trace(skip)]
    ledger: Arc<Ledger>,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.ledger.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct Table {
    slots: Vec<GcMutex<Option<Gc<Obj>>>>,
}

/// Asserts that a reachable object was not dropped and is intact.
fn check_alive(ledger: &Ledger, id: usize, check: u64) {
    assert_eq!(
        check,
        check_word(id),
        "object {id} was overwritten: freed while reachable"
    );
    assert_eq!(
        ledger.drops[id].load(Ordering::SeqCst),
        0,
        "object {id} was dropped while reachable"
    );
}

/// When the mutators of the random test stop.
#[derive(Clone)]
struct Until {
    deadline: Instant,
    cap: Instant,
    cycles: Arc<AtomicUsize>,
}

/// Collections that must run beside the mutators.
const MIN_CYCLES: usize = 3;

impl Until {
    fn keep_going(&self) -> bool {
        let now = Instant::now();
        now < self.cap && (now < self.deadline || self.cycles.load(Ordering::Relaxed) < MIN_CYCLES)
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn new_obj(ledger: &Arc<Ledger>) -> Option<Gc<Obj>> {
    let id = ledger.id()?;
    Some(Gc::new(Obj {
        id,
        check: check_word(id),
        edges: GcMutex::new(Vec::new()),
        ledger: ledger.clone(),
    }))
}

fn walk(ledger: &Ledger, start: Gc<Obj>, rng: &mut Rng, steps: usize) -> Gc<Obj> {
    let mut cursor = start;
    for _ in 0..steps {
        check_alive(ledger, cursor.id, cursor.check);
        let next = {
            let edges = cursor.edges.lock();
            if edges.is_empty() {
                None
            } else {
                Some(edges[rng.below(edges.len())].clone())
            }
        };
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    check_alive(ledger, cursor.id, cursor.check);
    cursor
}

/// Runs random operations until `deadline` has passed and at least
/// `MIN_CYCLES` collections ran beside them (under valgrind a collection can
/// take longer than the whole time budget), or until `cap`.
fn mutator(table: Gc<Table>, ledger: Arc<Ledger>, seed: u64, until: Until) -> usize {
    let mut rng = Rng(seed | 1);
    let mut held: Vec<Gc<Obj>> = Vec::new();
    // Weak handles to objects that may die at any time: an upgrade that
    // succeeds must find the object alive and intact.
    let mut weaks: Vec<Weak<Obj>> = Vec::new();
    let mut local_head: Option<Gc<Local>> = None;
    let mut ops = 0;
    while until.keep_going() {
        ops += 1;
        let slot = &table.slots[rng.below(SLOTS)];
        match rng.below(9) {
            0 => {
                let Some(obj) = new_obj(&ledger) else { break };
                *slot.lock() = Some(obj);
            }
            1 | 2 => {
                // Link: an edge from one slot's object to another's.
                let from = slot.lock().clone();
                let to = table.slots[rng.below(SLOTS)].lock().clone();
                if let (Some(from), Some(to)) = (from, to) {
                    let mut edges = from.edges.lock();
                    if edges.len() >= MAX_EDGES {
                        // Move the oldest edge into a slot: a handle moving
                        // between two objects through two locks.
                        let moved = edges.remove(0);
                        drop(edges);
                        *table.slots[rng.below(SLOTS)].lock() = Some(moved);
                        from.edges.lock().push(to);
                    } else {
                        edges.push(to);
                    }
                }
            }
            3 => {
                // Unlink: drop an edge.
                if let Some(obj) = slot.lock().clone() {
                    obj.edges.lock().pop();
                }
            }
            4 | 5 => {
                // Walk and keep what we reach on the stack for a while.
                let start = slot.lock().clone();
                if let Some(start) = start {
                    let end = walk(&ledger, start, &mut rng, 16);
                    if weaks.len() < 64 {
                        weaks.push(Gc::downgrade(&end));
                    } else {
                        weaks[rng.below(64)] = Gc::downgrade(&end);
                    }
                    held.push(end);
                    if held.len() > 8 {
                        held.remove(rng.below(held.len()));
                    }
                }
            }
            6 => {
                // Take an object out of a slot (the only handle may now be ours).
                if let Some(obj) = slot.lock().take() {
                    held.push(obj);
                }
            }
            7 => {
                // Private GcCell list: push a node that also points into the
                // shared graph; sometimes cut the list (a garbage cycle when
                // the tail points back).
                let Some(id) = ledger.id() else { break };
                let node = Gc::new(Local {
                    id,
                    check: check_word(id),
                    next: GcCell::new(local_head.take()),
                    shared: GcCell::new(held.last().cloned()),
                    ledger: ledger.clone(),
                });
                if rng.below(4) == 0 {
                    // Close a cycle through the last node of a short prefix.
                    let mut cursor = node.clone();
                    for _ in 0..rng.below(4) {
                        let next = cursor.next.borrow().clone();
                        match next {
                            Some(next) => cursor = next,
                            None => break,
                        }
                    }
                    *cursor.next.borrow_mut() = Some(node.clone());
                    local_head = None;
                } else {
                    local_head = Some(node);
                }
            }
            _ if !weaks.is_empty() && rng.below(2) == 0 => {
                if let Some(obj) = weaks[rng.below(weaks.len())].upgrade() {
                    check_alive(&ledger, obj.id, obj.check);
                }
            }
            _ => {
                // Read the private list.
                let mut cursor = local_head.clone();
                let mut steps = 0;
                while let Some(node) = cursor {
                    check_alive(&ledger, node.id, node.check);
                    if let Some(shared) = node.shared.borrow().as_ref() {
                        check_alive(&ledger, shared.id, shared.check);
                    }
                    steps += 1;
                    if steps > 32 {
                        // Cut long lists so they become garbage.
                        *node.next.borrow_mut() = None;
                        break;
                    }
                    cursor = node.next.borrow().clone();
                }
            }
        }
    }
    ops
}

#[test]
fn random_graph_mutation_during_collections() {
    let ledger = Ledger::new();
    let table = Gc::new(Table {
        slots: (0..SLOTS).map(|_| GcMutex::new(None)).collect(),
    });
    // Ballast: a large live heap makes each cycle's counting and marking
    // long, so mutations land inside the windows the barriers must cover.
    let ballast: Vec<Gc<Vec<u64>>> = (0..BALLAST).map(|i| Gc::new(vec![i as u64])).collect();
    let ballast = Gc::new(GcMutex::new(ballast));
    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicUsize::new(0));
    let gc_before = gc_stats().num_gc;
    let collector = {
        let (stop, cycles) = (stop.clone(), cycles.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                collect();
                cycles.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let start = Instant::now();
    let until = Until {
        deadline: start + Duration::from_millis(if cfg!(debug_assertions) { 1500 } else { 3000 }),
        cap: start + Duration::from_secs(300),
        cycles: cycles.clone(),
    };
    let threads: Vec<_> = (0..3u64)
        .map(|seed| {
            let table = table.clone();
            let ledger = ledger.clone();
            let until = until.clone();
            std::thread::spawn(move || mutator(table, ledger, 0x1234_5678 + seed * 977, until))
        })
        .collect();
    let ops: usize = threads
        .into_iter()
        .map(|t| t.join().expect("mutator"))
        .sum();
    stop.store(true, Ordering::Relaxed);
    collector.join().expect("collector thread");
    let cycles = cycles.load(Ordering::Relaxed);
    assert!(
        cycles >= MIN_CYCLES,
        "only {cycles} collections ran beside the mutators in 300 s"
    );

    // Everything still reachable from the table is alive.
    for slot in &table.slots {
        if let Some(obj) = slot.lock().clone() {
            let mut rng = Rng(7);
            walk(&ledger, obj, &mut rng, 64);
        }
    }
    drop(table);
    assert_eq!(ballast.lock().len(), BALLAST);
    drop(ballast);
    collect();
    collect();
    let created = ledger.next_id.load(Ordering::Relaxed).min(MAX_OBJECTS);
    let mut missing = 0;
    for (id, drops) in ledger.drops[..created].iter().enumerate() {
        match drops.load(Ordering::SeqCst) {
            1 => {}
            0 => missing += 1,
            n => panic!("object {id} dropped {n} times"),
        }
    }
    assert_eq!(
        missing, 0,
        "{missing} of {created} objects never dropped after the last collection"
    );
    eprintln!(
        "stress: {ops} ops, {created} objects, {cycles} collections, stats {:?}",
        gc_stats()
    );
    let stats = gc_stats();
    assert!(stats.num_gc > gc_before);
    assert_eq!(
        stats.unexpected_dead, 0,
        "the arena freed objects the collector did not condemn"
    );
}

/// A queue node (single-threaded, through `GcCell`).
#[derive(Trace)]
struct QNode {
    #[trace(skip)]
    id: usize,
    #[trace(skip)]
    check: u64,
    next: GcCell<Option<Gc<QNode>>>,
    #[trace(skip)]
    ledger: Arc<Ledger>,
}

impl Drop for QNode {
    fn drop(&mut self) {
        self.ledger.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

/// Dequeuing (`head = head.next.clone()`, then the old head dies) while
/// cycles count handles: the new head was counted as held only by the old
/// head, the old head is counted later as held by no one. Only the clone
/// barrier keeps the new head alive.
#[test]
fn dequeue_by_clone_during_counting_keeps_the_new_head() {
    dequeue_during_counting(false);
}

/// The same, moving the handle out (`borrow_mut().take()`): only the deletion
/// barrier keeps the new head alive.
#[test]
fn dequeue_by_take_during_counting_keeps_the_new_head() {
    dequeue_during_counting(true);
}

/// Ballast between the nodes spreads them over the all-objects list so the
/// window between their counts is wide.
fn dequeue_during_counting(take: bool) {
    const NODES: usize = 20_000;
    const SPREAD: usize = 20;
    let ledger = Ledger::new();
    let mut ballast = Vec::with_capacity(NODES * SPREAD);
    let first = ledger.id().unwrap();
    let head = Gc::new(QNode {
        id: first,
        check: check_word(first),
        next: GcCell::new(None),
        ledger: ledger.clone(),
    });
    let mut tail = head.clone();
    for _ in 1..NODES {
        let id = ledger.id().unwrap();
        let node = Gc::new(QNode {
            id,
            check: check_word(id),
            next: GcCell::new(None),
            ledger: ledger.clone(),
        });
        *tail.next.borrow_mut() = Some(node.clone());
        tail = node;
        for i in 0..SPREAD {
            ballast.push(Gc::new(i));
        }
    }
    drop(tail);
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                collect();
            }
        })
    };
    let mut head = head;
    let mut dequeued = 1;
    loop {
        let next = if take {
            head.next.borrow_mut().take()
        } else {
            head.next.borrow().clone()
        };
        let Some(next) = next else { break };
        head = next;
        dequeued += 1;
        check_alive(&ledger, head.id, head.check);
        for _ in 0..200 {
            std::hint::spin_loop();
        }
    }
    stop.store(true, Ordering::Relaxed);
    collector.join().expect("collector thread");
    assert_eq!(dequeued, NODES);
    drop((head, ballast));
    collect();
    for (id, drops) in ledger.drops[..NODES].iter().enumerate() {
        assert_eq!(drops.load(Ordering::SeqCst), 1, "node {id}");
    }
}
