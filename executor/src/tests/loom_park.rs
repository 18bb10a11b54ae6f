//! loom models of the M parker (`park.rs`): `unpark` racing `park` and
//! `park_timeout` never loses the wakeup, and a permit is consumed once.
//!
//! loom's `Condvar::wait_timeout` never times out, so a lost wakeup shows
//! up as a deadlock, which loom reports as a failure. The timeout path
//! itself is covered by the plain tests in `tests/park.rs`.
//!
//! Mutation-checked: `unpark` without taking the mutex before `notify_one`
//! deadlocks `loom_park_permit_then_race`.

use std::time::Duration;

use gort_netpoll::loom::sync::Arc;
use gort_netpoll::loom::sync::atomic::AtomicUsize;
use gort_netpoll::loom::sync::atomic::Ordering::{Acquire, Relaxed};
use gort_netpoll::loom::thread;

use crate::park::Parker;

/// Work published before `unpark` is visible after `park` returns.
#[test]
fn loom_park_unpark_race() {
    loom::model(|| {
        let (mut parker, unparker) = Parker::new();
        let work = Arc::new(AtomicUsize::new(0));
        let w = work.clone();
        let th = thread::spawn(move || {
            w.store(1, Relaxed);
            unparker.unpark();
        });
        // Loop as the scheduler does: park until the work is seen.
        while work.load(Acquire) == 0 {
            parker.park();
        }
        th.join().unwrap();
    });
}

/// Two unparkers race a `park_timeout` (with a timeout loom never fires).
#[test]
fn loom_park_timeout_two_unparkers() {
    loom::model(|| {
        let (mut parker, unparker) = Parker::new();
        let u2 = unparker.clone();
        let t1 = thread::spawn(move || unparker.unpark());
        let t2 = thread::spawn(move || u2.unpark());
        // At least one permit reaches this park.
        parker.park_timeout(Duration::from_secs(3600));
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

/// A permit left before park is consumed by one park, and a second unpark
/// racing the second park still wakes it.
#[test]
fn loom_park_permit_then_race() {
    loom::model(|| {
        let (mut parker, unparker) = Parker::new();
        unparker.unpark();
        parker.park();
        let th = thread::spawn(move || unparker.unpark());
        parker.park();
        th.join().unwrap();
    });
}
