//! Loom model of the netpoller role's deadline (netpoller.rs): a timer
//! added while the role holder computes how long to sleep is never slept
//! through.
//!
//! The holder runs the production `Role::begin_block` over a real
//! `Timers` heap; the adder runs the production `Timers::add`, whose wake
//! hook is `Role::timer_added`. The poll itself is a parker: a holder that
//! computed "no deadline" parks until the hook breaks it (a computed
//! deadline means the poll would end by itself). If the two StoreLoad
//! fences did not pair, loom finds the schedule where the holder misses the
//! timer and the hook misses `poll_until`: the holder then parks forever and
//! loom reports a deadlock.

use std::task::Waker;
use std::time::{Duration, Instant};

use gort_netpoll::loom::sync::Arc;
use gort_netpoll::loom::thread;

use crate::netpoller::{Break, Role};
use crate::park::Parker;
use crate::time::Timers;

#[test]
fn loom_netpoller_timer_added_while_the_holder_computes_its_deadline() {
    loom::model(|| {
        let role = Arc::new(Role::new());
        let (mut poll, breaker) = Parker::new();
        let timers = {
            let role = role.clone();
            Arc::new(Timers::with_wake_hook(Box::new(move |deadline| {
                if role.timer_added(Some(deadline)) == Break::Poller {
                    breaker.unpark();
                }
            })))
        };

        let adder = {
            let timers = timers.clone();
            thread::spawn(move || {
                let at = Instant::now() + Duration::from_secs(3600);
                Timers::add(&timers, at, Waker::noop().clone())
            })
        };

        assert!(role.try_claim(), "one holder in this model");
        let deadline = role.begin_block(|| timers.next_deadline());
        if deadline.is_none() {
            // Sleeps until an event or a break: the timer must break it.
            poll.park();
        }
        role.end_block();
        role.release();

        let handle = adder.join().unwrap();
        assert_eq!(timers.len(), 1, "the timer is pending exactly once");
        drop(handle);
        assert_eq!(timers.len(), 0, "dropping the handle cancels it");
    });
}

/// "Two ways to wait" (netpoller.rs): the role holder chooses to wait for
/// timers only because P1 is busy, while P1's M releases it and parks. The
/// holder runs the production `Role::choose_timers_only`; the releasing M
/// runs the production `Idle::park_m` (its `npidle` store and fence) and
/// then, as `m.rs` `stopm` does for an M that finds the role held,
/// `Role::must_leave_timers_only`. Either the holder sees P1 released and
/// waits in netpoll, or the releasing M sees the mode and wakes it, and it
/// chooses again. If either side's StoreLoad fence were missing, loom finds
/// the schedule where the holder parks for timers with no P busy to poll
/// the sockets, and no one wakes it: a deadlock.
#[test]
fn loom_netpoller_last_busy_p_released_while_the_holder_chooses() {
    use crate::idle::{Idle, MNote};

    loom::model(|| {
        let role = Arc::new(Role::new());
        // Two Ps: P0 idle (the holder's M released it), P1 held by M1.
        let idle = Arc::new(Idle::<usize>::new(2, vec![0], Vec::new()));
        let (mut holder_parker, holder) = Parker::new();
        let (_m1_parker, m1_unparker) = Parker::new();
        let m1_note = MNote::<usize>::new(m1_unparker);

        let m1 = {
            let (role, idle) = (role.clone(), idle.clone());
            thread::spawn(move || {
                let got = idle.park_m(
                    1,
                    &m1_note,
                    false,
                    || false,
                    || {
                        if role.must_leave_timers_only(|| idle.npidle_seqcst() == idle.nprocs()) {
                            holder.unpark();
                        }
                        None // M1 would now park; the model ends here for it
                    },
                );
                assert!(got.is_none());
            })
        };

        assert!(role.try_claim(), "one holder in this model");
        let mut waits = 0;
        while role.choose_timers_only(|| idle.npidle_seqcst() < idle.nprocs()) {
            // Timers only, no timer pending: sleeps until woken.
            holder_parker.park();
            role.leave_timers_only();
            waits += 1;
        }
        // Waiting in netpoll now: the sockets are watched.
        assert!(waits <= 1, "one wake is enough to choose again");
        role.release();
        m1.join().unwrap();
    });
}
