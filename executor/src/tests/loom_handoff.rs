//! Loom models of the handoff (pstatus.rs): sysmon retakes the P of an M
//! inside a poll (or a `block_in_place`) while that M wakes a task onto the
//! P and then returns from the poll.
//!
//! Properties, in every interleaving:
//! - the P is held by at most one party at a time (`holders` goes 0 -> 1 on
//!   every acquire and the acquire asserts it was 0), whether the owner M
//!   borrows it, takes it back, or sysmon takes it and the new M polls with
//!   it from its own slot;
//! - exactly one of the owner M and sysmon ends up with the P;
//! - every woken task is run exactly once: pushed on the P (and run by
//!   whoever holds it next) or, once the P is gone, on the global queue.
//!
//! Loom cannot model membarrier (a barrier run by other threads): the slots
//! here use the symmetric handshake, a `fence(SeqCst)` on each side, which
//! is what the compiler fence plus sysmon's membarrier provide (pstatus.rs,
//! Orderings).
//!
//! Mutation-checked (2026-11-27, `bash scripts/loom`): deleting the owner's
//! fence in `PSlot::handshake`, or sysmon's `fence` in `PSlot::retake`, makes
//! both models fail (loom finds the store-buffering interleaving: each side
//! misses the other's store, and loom reports concurrent writes to the
//! slot's cell: sysmon takes the P while the owner borrows it or takes it
//! back); so does letting `borrow` skip its handshake.

use gort_netpoll::loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use gort_netpoll::loom::sync::{Arc, Mutex};
use gort_netpoll::loom::thread;

use super::{Item, assert_exactly_once, drop_log};
use crate::pstatus::PSlot;

/// A P reduced to what the protocol moves: its runq and a holder count.
struct TestP {
    runq: Vec<Item>,
    holders: Arc<AtomicUsize>,
}

impl TestP {
    /// Claims the P for the caller; panics if someone else holds it.
    fn hold(&self) {
        let prev = self.holders.fetch_add(1, SeqCst);
        assert_eq!(prev, 0, "two Ms hold one P");
    }

    fn release(&self) {
        self.holders.fetch_sub(1, SeqCst);
    }

    /// Runs (drops) every queued task.
    fn run_all(&mut self) {
        self.hold();
        self.runq.drain(..).for_each(drop);
        self.release();
    }
}

/// Who ended up with the P.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Winner {
    OwnerM,
    Sysmon,
}

/// The owner M polls a task that wakes `wakes` tasks (ids from `first_id`)
/// from inside the poll, optionally inside a `block_in_place`, while sysmon
/// tries one retake of the word it sees.
fn model(in_syscall: bool) {
    loom::model(move || {
        let log = drop_log();
        let holders = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(PSlot::<Box<TestP>>::with_handshake(false));
        let global = Arc::new(Mutex::new(Vec::<Item>::new()));
        let winner = Arc::new(Mutex::new(Vec::<Winner>::new()));

        let p = Box::new(TestP {
            runq: Vec::new(),
            holders: holders.clone(),
        });
        // The owner M parks its P in the slot for the poll.
        let token = slot.enter(p, 1);

        let sysmon = {
            let (slot, winner) = (slot.clone(), winner.clone());
            thread::spawn(move || {
                let seen = slot.load();
                // (a tick later, the same word: the same poll)
                if let Some(p) = slot.retake(seen) {
                    winner.lock().unwrap().push(Winner::Sysmon);
                    // handoffp: the new M parks the P in its own slot for a
                    // poll of its own (while the blocked M may still store
                    // into the old slot) and runs the P's queue.
                    let slot2 = PSlot::<Box<TestP>>::with_handshake(false);
                    let token2 = slot2.enter(p, 2);
                    let _ = slot2.borrow((), |p, ()| p.run_all());
                    let mut p = slot2.exit(token2).expect("nobody retakes the new M's P");
                    p.run_all();
                }
            })
        };

        // The owner M, inside the poll.
        let wake = |id: usize| {
            let pushed = slot.borrow(Item::new(id, &log), |p, item| {
                p.hold();
                p.runq.push(item);
                p.release();
            });
            if let Err(item) = pushed {
                // The P is gone: the global queue (schedule_local's fallback).
                global.lock().unwrap().push(item);
            }
        };
        if in_syscall {
            let entered = slot.enter_syscall(token);
            wake(0); // a spawn from inside the blocking section
            if entered && !slot.exit_syscall(token) {
                // Slow path with no idle P: finish the poll without one.
            }
        } else {
            wake(0);
        }
        // The poll's own re-schedule (woken during its poll): it comes back
        // from the poll and the M queues it after `exit` (m.rs, main_loop).
        let yielded = Item::new(1, &log);
        if let Some(mut p) = slot.exit_current() {
            winner.lock().unwrap().push(Winner::OwnerM);
            p.runq.push(yielded);
            p.run_all();
        } else {
            global.lock().unwrap().push(yielded);
        }

        sysmon.join().unwrap();
        // Whoever runs the global queue runs what the P could not take.
        global.lock().unwrap().drain(..).for_each(drop);

        let winner = winner.lock().unwrap().clone();
        assert_eq!(
            winner.len(),
            1,
            "exactly one party ends up with the P: {winner:?}"
        );
        assert_eq!(holders.load(SeqCst), 0);
        assert_exactly_once(log.lock().unwrap().clone(), 2, "woken tasks");
    });
}

#[test]
fn loom_handoff_retake_races_a_poll_that_wakes() {
    model(false);
}

#[test]
fn loom_handoff_retake_races_block_in_place() {
    model(true);
}
