//! loom models of the local runq (`queue.rs`): owner push/pop (ring,
//! runnext, overflow into the global queue) racing one or two thieves.
//! Property: every item is popped, stolen or overflowed exactly once, and
//! dropped exactly once (no loss, no duplicate, no leak).
//!
//! Items carry their id in a loom `UnsafeCell`, so a queue that hands an
//! item to another thread without a happens-before edge fails as a causality
//! violation. Mutation-checked (each made a model fail): the thief's
//! `CAS head` replaced by load + store; `push_back`'s tail store made
//! `Relaxed`; `push_next`'s swap made `Relaxed`; `steal_into`'s tail store
//! made `Relaxed`.

use gort_netpoll::loom::thread;

use super::{Item, assert_exactly_once, drop_log, pop_global_ids, pop_ids};
use crate::inject::Inject;
use crate::queue::{LOCAL_QUEUE_CAPACITY, Local, Steal, local};

/// A thief: `rounds` steal attempts into its own runq, draining it each time.
fn thief(steal: Steal<Item>, rounds: usize, steal_runnext: bool) -> Vec<usize> {
    let (mut mine, _mine_steal) = local::<Item>();
    let mut ids = Vec::new();
    for _ in 0..rounds {
        if let Some(it) = steal.steal_into(&mut mine, steal_runnext) {
            ids.push(it.id());
        }
        ids.extend(pop_ids(&mut mine));
    }
    ids
}

fn drain(q: &mut Local<Item>, inject: &Inject<Item>, ids: &mut Vec<usize>) {
    ids.extend(pop_ids(q));
    ids.extend(pop_global_ids(inject));
}

/// The owner overflows the ring (CAP + 2 pushes, one via runnext, a pop in
/// between) while one thief steals twice, also taking runnext.
#[test]
fn loom_queue_overflow_with_one_thief() {
    const N: usize = LOCAL_QUEUE_CAPACITY + 2;
    loom::model(|| {
        let log = drop_log();
        let inject = Inject::new();
        let (mut owner, steal) = local::<Item>();
        let th = thread::spawn(move || thief(steal, 2, true));

        let mut ids = Vec::new();
        for i in 0..N {
            let item = Item::new(i, &log);
            if i == 1 {
                owner.push_next(item, &inject);
            } else {
                owner.push_back(item, &inject);
            }
            if i == 2 {
                if let Some((it, _)) = owner.pop() {
                    ids.push(it.id());
                }
            }
        }
        drain(&mut owner, &inject, &mut ids);
        ids.extend(th.join().unwrap());
        assert_exactly_once(ids, N, "popped, stolen or overflowed");
        assert_exactly_once(log.lock().unwrap().clone(), N, "dropped");
    });
}

/// Two thieves race each other and the owner's pops over a small queue whose
/// runnext is set; only one of them may win each item.
#[test]
fn loom_queue_two_thieves_and_runnext() {
    const N: usize = 3;
    loom::model(|| {
        let log = drop_log();
        let inject = Inject::new();
        let (mut owner, steal) = local::<Item>();
        owner.push_back(Item::new(0, &log), &inject);
        owner.push_back(Item::new(1, &log), &inject);
        owner.push_next(Item::new(2, &log), &inject);

        let s1 = steal.clone();
        let t1 = thread::spawn(move || thief(s1, 1, true));
        let t2 = thread::spawn(move || thief(steal, 1, true));

        let mut ids = Vec::new();
        if let Some((it, _)) = owner.pop() {
            ids.push(it.id());
        }
        drain(&mut owner, &inject, &mut ids);
        ids.extend(t1.join().unwrap());
        ids.extend(t2.join().unwrap());
        assert_exactly_once(ids, N, "popped or stolen");
        assert_exactly_once(log.lock().unwrap().clone(), N, "dropped");
    });
}

/// A thief steals from a P that is itself stealing into its own ring from
/// a third queue: the tail published by `steal_into` must carry the copied
/// slots to the second thief.
#[test]
fn loom_queue_chained_steal_publishes_slots() {
    const N: usize = 4;
    loom::model(|| {
        let log = drop_log();
        let inject = Inject::new();
        let (mut origin, origin_steal) = local::<Item>();
        for i in 0..N {
            origin.push_back(Item::new(i, &log), &inject);
        }
        let (mut middle, middle_steal) = local::<Item>();
        let th = thread::spawn(move || thief(middle_steal, 1, false));

        let mut ids = Vec::new();
        if let Some(it) = origin_steal.steal_into(&mut middle, false) {
            ids.push(it.id());
        }
        drain(&mut middle, &inject, &mut ids);
        drain(&mut origin, &inject, &mut ids);
        ids.extend(th.join().unwrap());
        assert_exactly_once(ids, N, "popped or stolen");
    });
}

/// The owner pushes (ring and runnext) and pops while two thieves steal with
/// `steal_runnext`: pushes race steals, and runnext is fought over by the
/// owner's swap and two CASes.
#[test]
fn loom_queue_owner_pushes_while_two_thieves_steal() {
    const N: usize = 3;
    loom::model(|| {
        let log = drop_log();
        let inject = Inject::new();
        let (mut owner, steal) = local::<Item>();
        let s1 = steal.clone();
        let t1 = thread::spawn(move || thief(s1, 1, true));
        let t2 = thread::spawn(move || thief(steal, 1, true));

        let mut ids = Vec::new();
        owner.push_back(Item::new(0, &log), &inject);
        owner.push_next(Item::new(1, &log), &inject);
        if let Some((it, _)) = owner.pop() {
            ids.push(it.id());
        }
        owner.push_next(Item::new(2, &log), &inject);
        drain(&mut owner, &inject, &mut ids);
        ids.extend(t1.join().unwrap());
        ids.extend(t2.join().unwrap());
        assert_exactly_once(ids, N, "popped or stolen");
        assert_exactly_once(log.lock().unwrap().clone(), N, "dropped");
    });
}
