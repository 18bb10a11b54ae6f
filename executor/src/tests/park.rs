//! Unit and stress tests of the M parker (`park.rs`).

use std::thread;
use std::time::{Duration, Instant};

use crate::park::Parker;

/// A bound no correct wakeup comes near; hitting it means a lost wakeup.
const LOST_WAKEUP: Duration = Duration::from_secs(10);

#[test]
fn unpark_before_park_returns_at_once() {
    let (mut parker, unparker) = Parker::new();
    unparker.unpark();
    let start = Instant::now();
    parker.park_timeout(LOST_WAKEUP);
    assert!(start.elapsed() < LOST_WAKEUP / 2, "the permit was lost");
}

#[test]
fn many_unparks_leave_one_permit() {
    let (mut parker, unparker) = Parker::new();
    for _ in 0..3 {
        unparker.unpark();
    }
    parker.park();
    let timeout = Duration::from_millis(20);
    let start = Instant::now();
    parker.park_timeout(timeout);
    assert!(
        start.elapsed() >= timeout,
        "a second park consumed a second permit"
    );
}

#[test]
fn park_timeout_never_returns_early() {
    let (mut parker, _unparker) = Parker::new();
    for micros in [1, 50, 500, 2_000] {
        let timeout = Duration::from_micros(micros);
        let start = Instant::now();
        parker.park_timeout(timeout);
        let waited = start.elapsed();
        assert!(
            waited >= timeout,
            "park_timeout({timeout:?}) returned after {waited:?}"
        );
    }
    let start = Instant::now();
    parker.park_timeout(Duration::ZERO);
    assert!(start.elapsed() < LOST_WAKEUP / 2);
}

#[test]
fn unpark_from_another_thread_wakes_park() {
    let (mut parker, unparker) = Parker::new();
    let t = thread::spawn(move || unparker.unpark());
    let start = Instant::now();
    parker.park_timeout(LOST_WAKEUP);
    assert!(start.elapsed() < LOST_WAKEUP, "lost wakeup");
    t.join().unwrap();
}

#[test]
fn huge_timeout_is_forever_until_unparked() {
    let (mut parker, unparker) = Parker::new();
    let t = thread::spawn(move || unparker.unpark());
    parker.park_timeout(Duration::MAX);
    t.join().unwrap();
}

/// Two Ms hand a token back and forth through each other's parkers: any lost
/// wakeup stalls a side until the generous timeout and fails the test.
#[test]
fn stress_ping_pong_loses_no_wakeup() {
    const ROUNDS: usize = 20_000;
    let (mut park_a, unpark_a) = Parker::new();
    let (mut park_b, unpark_b) = Parker::new();
    let b = thread::spawn(move || {
        for _ in 0..ROUNDS {
            let start = Instant::now();
            park_b.park_timeout(LOST_WAKEUP);
            assert!(start.elapsed() < LOST_WAKEUP, "B lost a wakeup");
            unpark_a.unpark();
        }
    });
    for _ in 0..ROUNDS {
        unpark_b.unpark();
        let start = Instant::now();
        park_a.park_timeout(LOST_WAKEUP);
        assert!(start.elapsed() < LOST_WAKEUP, "A lost a wakeup");
    }
    b.join().unwrap();
}
