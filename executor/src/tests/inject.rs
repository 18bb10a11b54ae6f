//! Unit tests of the global run queue (`inject.rs`).

use std::sync::Arc;
use std::thread;

use super::{Item, assert_exactly_once, drop_log, pop_global_ids};
use crate::inject::Inject;
use crate::queue::LOCAL_QUEUE_CAPACITY;

#[test]
fn push_pop_fifo_and_len() {
    let log = drop_log();
    let inject = Inject::new();
    assert!(inject.is_empty() && inject.pop().is_none());
    for i in 0..3 {
        assert!(inject.push(Item::new(i, &log)).is_ok());
    }
    inject.push_batch((3..6).map(|i| Item::new(i, &log)));
    assert_eq!(inject.len(), 6);
    let ids: Vec<usize> = std::iter::from_fn(|| inject.pop())
        .map(|it| it.id())
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
    assert!(inject.is_empty());
}

#[test]
fn closed_queue_refuses_push_and_drops_batches() {
    let log = drop_log();
    let inject = Inject::new();
    inject.push(Item::new(0, &log)).ok().unwrap();
    assert!(!inject.is_closed());
    assert!(inject.close(), "first close closes");
    assert!(!inject.close(), "second close reports already closed");
    assert!(inject.is_closed());
    let back = inject
        .push(Item::new(1, &log))
        .expect_err("push after close is refused");
    assert_eq!(back.id(), 1);
    inject.push_batch((2..4).map(|i| Item::new(i, &log)));
    assert_eq!(*log.lock().unwrap(), [2, 3], "batch after close is dropped");
    assert_eq!(inject.len(), 1);
    assert_eq!(
        inject.pop().map(|it| it.id()),
        Some(0),
        "a closed queue still drains"
    );
}

#[test]
fn pop_batch_takes_oldest_up_to_max_and_clamps() {
    let log = drop_log();
    let inject = Inject::new();
    let n = LOCAL_QUEUE_CAPACITY + 10;
    inject.push_batch((0..n).map(|i| Item::new(i, &log)));
    let mut ids = Vec::new();
    assert_eq!(inject.pop_batch(3, |it| ids.push(it.id())), 3);
    assert_eq!(ids, [0, 1, 2]);
    assert_eq!(inject.pop_batch(0, |_| panic!("max 0 takes nothing")), 0);
    let taken = inject.pop_batch(usize::MAX, |it| ids.push(it.id()));
    assert_eq!(
        taken, LOCAL_QUEUE_CAPACITY,
        "one batch never exceeds a runq"
    );
    assert_eq!(inject.len(), n - 3 - LOCAL_QUEUE_CAPACITY);
    ids.extend(pop_global_ids(&inject));
    assert_eq!(ids, (0..n).collect::<Vec<_>>());
}

#[test]
fn pop_batch_closure_may_push_back_without_deadlock() {
    let log = drop_log();
    let inject = Inject::new();
    inject.push_batch((0..4).map(|i| Item::new(i, &log)));
    let taken = inject.pop_batch(2, |it| inject.push(it).ok().unwrap());
    assert_eq!(taken, 2);
    let ids: Vec<usize> = std::iter::from_fn(|| inject.pop())
        .map(|it| it.id())
        .collect();
    assert_eq!(ids, [2, 3, 0, 1]);
}

#[test]
fn panicking_pop_batch_closure_drops_the_rest() {
    let log = drop_log();
    let inject = Arc::new(Inject::new());
    inject.push_batch((0..5).map(|i| Item::new(i, &log)));
    let q = inject.clone();
    let result = thread::spawn(move || {
        q.pop_batch(4, |it| {
            if it.id() == 1 {
                panic!("closure fails on item 1");
            }
        })
    })
    .join();
    assert!(result.is_err());
    drop(inject);
    assert_exactly_once(log.lock().unwrap().clone(), 5, "dropped");
}

#[test]
fn drop_drops_queued_items() {
    let log = drop_log();
    let inject = Inject::new();
    inject.push_batch((0..10).map(|i| Item::new(i, &log)));
    drop(inject);
    assert_exactly_once(log.lock().unwrap().clone(), 10, "dropped with the queue");
}

#[test]
fn stress_concurrent_batches_conserve_items() {
    const PER: usize = 20_000;
    let log = drop_log();
    let inject = Arc::new(Inject::new());
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let inject = inject.clone();
            let log = log.clone();
            thread::spawn(move || {
                for chunk in (p * PER..(p + 1) * PER).collect::<Vec<_>>().chunks(7) {
                    inject.push_batch(chunk.iter().map(|&i| Item::new(i, &log)));
                }
            })
        })
        .collect();
    let mut ids = Vec::new();
    while ids.len() < 2 * PER {
        if inject.pop_batch(16, |it| ids.push(it.id())) == 0 {
            thread::yield_now();
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert!(inject.is_empty());
    assert_exactly_once(ids, 2 * PER, "popped");
}

/// Cost of the global queue on its hot paths, single-threaded (release:
/// `cargo test --release -p gort-executor -- --ignored --nocapture measure_inject`).
#[test]
#[ignore = "measurement, prints figures"]
fn measure_inject_cost() {
    const ROUNDS: usize = 20_000;
    const BATCH: usize = LOCAL_QUEUE_CAPACITY / 2;
    let log = drop_log();
    let inject = Inject::new();
    let items: Vec<Item> = (0..BATCH).map(|i| Item::new(i, &log)).collect();
    let mut items = Some(items);
    let start = std::time::Instant::now();
    for _ in 0..ROUNDS {
        inject.push_batch(items.take().unwrap().into_iter());
        let mut back = Vec::with_capacity(BATCH);
        inject.pop_batch(BATCH, |it| back.push(it));
        items = Some(back);
    }
    let batch_ns = start.elapsed().as_nanos() as f64 / (ROUNDS * BATCH) as f64;
    let mut items = items.unwrap();
    let start = std::time::Instant::now();
    for _ in 0..ROUNDS {
        for it in items.drain(..) {
            inject.push(it).ok().unwrap();
        }
        items.extend(std::iter::from_fn(|| inject.pop()));
    }
    let single_ns = start.elapsed().as_nanos() as f64 / (ROUNDS * BATCH) as f64;
    println!(
        "inject: batch push+pop {batch_ns:.1} ns/item, single push+pop {single_ns:.1} ns/item"
    );
}
