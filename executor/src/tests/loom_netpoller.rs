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
