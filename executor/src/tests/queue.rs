//! Unit and stress tests of the local runq (`queue.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use super::{Item, assert_exactly_once, drop_log, pop_global_ids, pop_ids};
use crate::inject::Inject;
use crate::queue::{LOCAL_QUEUE_CAPACITY, local};

const CAP: usize = LOCAL_QUEUE_CAPACITY;

#[test]
fn pop_is_fifo_after_runnext() {
    let log = drop_log();
    let inject = Inject::new();
    let (mut q, _steal) = local::<Item>();
    for i in 0..3 {
        q.push_back(Item::new(i, &log), &inject);
    }
    q.push_next(Item::new(9, &log), &inject);
    assert_eq!(q.len(), 4);
    assert!(q.has_runnext());
    let (first, inherit) = q.pop().unwrap();
    assert_eq!(
        (first.id(), inherit),
        (9, true),
        "runnext first, inheriting the slice"
    );
    let rest: Vec<(usize, bool)> = std::iter::from_fn(|| q.pop())
        .map(|(it, inh)| (it.id(), inh))
        .collect();
    assert_eq!(rest, [(0, false), (1, false), (2, false)]);
    assert!(q.is_empty() && !q.has_runnext() && inject.is_empty());
}

#[test]
fn push_next_kicks_previous_runnext_to_tail() {
    let log = drop_log();
    let inject = Inject::new();
    let (mut q, _steal) = local::<Item>();
    q.push_back(Item::new(0, &log), &inject);
    q.push_next(Item::new(1, &log), &inject);
    q.push_next(Item::new(2, &log), &inject);
    let order: Vec<usize> = std::iter::from_fn(|| q.pop())
        .map(|(it, _)| it.id())
        .collect();
    assert_eq!(order, [2, 0, 1]);
}

#[test]
fn full_ring_moves_half_and_item_to_global_queue_in_order() {
    let log = drop_log();
    let inject = Inject::new();
    let (mut q, _steal) = local::<Item>();
    for i in 0..=CAP {
        q.push_back(Item::new(i, &log), &inject);
    }
    assert_eq!(
        inject.len(),
        CAP / 2 + 1,
        "half the ring plus the new item overflow"
    );
    assert_eq!(q.len(), CAP / 2);
    let global: Vec<usize> = std::iter::from_fn(|| inject.pop())
        .map(|it| it.id())
        .collect();
    let expected: Vec<usize> = (0..CAP / 2).chain([CAP]).collect();
    assert_eq!(
        global, expected,
        "the oldest half goes first, then the new item"
    );
    let local_ids: Vec<usize> = std::iter::from_fn(|| q.pop())
        .map(|(it, _)| it.id())
        .collect();
    assert_eq!(local_ids, (CAP / 2..CAP).collect::<Vec<_>>());
}

#[test]
fn overflow_into_closed_global_queue_drops_items() {
    let log = drop_log();
    let inject = Inject::new();
    inject.close();
    let (mut q, _steal) = local::<Item>();
    for i in 0..=CAP {
        q.push_back(Item::new(i, &log), &inject);
    }
    assert_eq!(log.lock().unwrap().len(), CAP / 2 + 1);
    while q.pop().is_some() {}
    assert_exactly_once(log.lock().unwrap().clone(), CAP + 1, "dropped or popped");
}

#[test]
fn steal_takes_half_rounded_up_and_returns_one() {
    let log = drop_log();
    let inject = Inject::new();
    let (mut victim, steal) = local::<Item>();
    let (mut thief, _thief_steal) = local::<Item>();
    for i in 0..7 {
        victim.push_back(Item::new(i, &log), &inject);
    }
    let got = steal
        .steal_into(&mut thief, false)
        .expect("7 items to steal from");
    // 7 - 7/2 = 4 stolen: 0, 1, 2 land in the thief's ring, 3 is returned.
    assert_eq!(got.id(), 3);
    assert_eq!(thief.len(), 3);
    assert_eq!(victim.len(), 3);
    let thief_ids: Vec<usize> = std::iter::from_fn(|| thief.pop())
        .map(|(it, _)| it.id())
        .collect();
    assert_eq!(thief_ids, [0, 1, 2]);
    drop(got);
    while victim.pop().is_some() {}
}

#[test]
fn steal_runnext_only_when_asked() {
    let log = drop_log();
    let inject = Inject::new();
    let (mut victim, steal) = local::<Item>();
    let (mut thief, _s) = local::<Item>();
    victim.push_next(Item::new(5, &log), &inject);
    assert!(!steal.is_empty());
    assert!(
        steal.steal_into(&mut thief, false).is_none(),
        "runnext is left alone"
    );
    let got = steal
        .steal_into(&mut thief, true)
        .expect("last pass takes runnext");
    assert_eq!(got.id(), 5);
    assert!(victim.is_empty() && !victim.has_runnext() && thief.is_empty());
}

#[test]
fn steal_is_bounded_by_the_thiefs_free_slots() {
    let log = drop_log();
    let inject = Inject::new();
    let (mut victim, steal) = local::<Item>();
    let (mut thief, _s) = local::<Item>();
    for i in 0..CAP {
        victim.push_back(Item::new(i, &log), &inject);
        thief.push_back(Item::new(1000 + i, &log), &inject);
    }
    assert!(
        steal.steal_into(&mut thief, true).is_none(),
        "a full thief takes nothing"
    );
    thief.pop().unwrap();
    let got = steal.steal_into(&mut thief, true).expect("one free slot");
    assert_eq!(got.id(), 0);
    assert_eq!(victim.len(), CAP - 1);
    assert_eq!(thief.len(), CAP - 1);
    while victim.pop().is_some() {}
    while thief.pop().is_some() {}
    drop(got);
    assert_eq!(log.lock().unwrap().len(), 2 * CAP);
}

#[test]
fn empty_queue_steals_nothing() {
    let (_victim, steal) = local::<Item>();
    let (mut thief, _s) = local::<Item>();
    assert!(steal.is_empty());
    assert!(steal.steal_into(&mut thief, true).is_none());
}

/// One owner pushes (ring, runnext, overflow) and pops while two thieves
/// steal; every item ends up popped, stolen or in the global queue, once.
#[test]
fn stress_owner_and_two_thieves_conserve_items() {
    const N: usize = 200_000;
    let log = drop_log();
    let inject = Arc::new(Inject::new());
    let (mut owner, steal) = local::<Item>();
    let done = Arc::new(AtomicBool::new(false));
    let thieves: Vec<_> = (0..2)
        .map(|_| {
            let steal = steal.clone();
            let done = done.clone();
            thread::spawn(move || {
                let (mut mine, _s) = local::<Item>();
                let mut ids = Vec::new();
                loop {
                    let finished = done.load(Ordering::Acquire);
                    match steal.steal_into(&mut mine, true) {
                        Some(it) => ids.push(it.id()),
                        None if finished && steal.is_empty() => break,
                        None => std::hint::spin_loop(),
                    }
                    ids.extend(pop_ids(&mut mine));
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for i in 0..N {
        let item = Item::new(i, &log);
        if i % 3 == 0 {
            owner.push_next(item, &inject);
        } else {
            owner.push_back(item, &inject);
        }
        if i % 5 == 0 {
            if let Some((it, _)) = owner.pop() {
                ids.push(it.id());
            }
        }
    }
    ids.extend(pop_ids(&mut owner));
    done.store(true, Ordering::Release);
    for t in thieves {
        ids.extend(t.join().expect("thief panicked"));
    }
    ids.extend(pop_global_ids(&inject));
    assert_exactly_once(ids, N, "popped, stolen or overflowed");
    assert_exactly_once(log.lock().unwrap().clone(), N, "dropped");
}
