//! Loom model of the park protocol (`park.rs`): an unpark racing a blocking
//! poll is never lost.

use crate::loom::sync::Arc;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::thread;
use crate::park::Park;

/// The poller begins and ends one blocking poll while another thread
/// unparks. Lost would mean: the poller waited, no waker was fired, and no
/// interrupt is left pending for the next poll.
#[test]
fn loom_unpark_races_blocking_poll() {
    loom::model(|| {
        let park = Arc::new(Park::new());
        // Set by the unparker when it fires the waker: the "eventfd".
        let fired = Arc::new(AtomicBool::new(false));
        let (p2, f2) = (park.clone(), fired.clone());
        let unparker = thread::spawn(move || {
            if p2.unpark() {
                f2.fetch_or(true, Ordering::SeqCst);
            }
        });
        let waited = park.begin_blocking();
        // The wait itself: the poller's epoll_wait would end on `fired`.
        park.end_blocking();
        unparker.join().unwrap();
        if waited {
            assert!(
                fired.load(Ordering::SeqCst) || park.is_notified(),
                "unpark lost: the poller waited, nothing fired, nothing pending"
            );
        } else {
            assert!(
                !park.is_polling(),
                "a consumed interrupt leaves the poller idle"
            );
        }
    });
}

/// Two unparks while one poller blocks: the waker fires at most once per
/// wait (the second sees WOKEN and skips the syscall).
#[test]
fn loom_two_unparks_fire_at_most_once() {
    loom::model(|| {
        let park = Arc::new(Park::new());
        assert!(park.begin_blocking());
        let fires = Arc::new(crate::loom::sync::atomic::AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (p, f) = (park.clone(), fires.clone());
                thread::spawn(move || {
                    if p.unpark() {
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            fires.load(Ordering::SeqCst),
            1,
            "exactly one syscall for a blocked poller"
        );
        park.end_blocking();
        assert!(!park.is_polling());
    });
}
