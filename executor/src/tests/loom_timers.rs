//! loom models of the timer entry protocol (`time/timers.rs`): fire racing
//! the owner's poll (no lost wakeup) and fire racing cancel (exactly one
//! wins: `len` ends at zero, the waker is released, no zombie miscounted).
//!
//! Mutation-checked: dropping the re-check of `state` after storing the
//! waker in `TimerHandle::poll_fired` fails `loom_timers_fire_vs_poll`.

use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use gort_netpoll::loom::sync::Arc;
use gort_netpoll::loom::sync::atomic::AtomicUsize;
use gort_netpoll::loom::sync::atomic::Ordering::SeqCst;
use gort_netpoll::loom::thread;

use crate::time::timers::Timers;

/// Counts wakes; shared by every waker of one modelled task.
struct WakeCount(AtomicUsize);

impl Wake for WakeCount {
    fn wake(self: StdArc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn far_past_and_future() -> (Instant, Instant) {
    let now = Instant::now();
    (now, now + Duration::from_secs(3600))
}

#[test]
fn loom_timers_fire_vs_poll() {
    loom::model(|| {
        let timers = Arc::new(Timers::new());
        let (due, later) = far_past_and_future();
        // The first poll registered with one waker; the sleep is then polled
        // with a different one (it moved to another task) while another P
        // fires the timer. Separate counters: waking the old waker does not
        // wake the new owner.
        let old = StdArc::new(WakeCount(AtomicUsize::new(0)));
        let new = StdArc::new(WakeCount(AtomicUsize::new(0)));
        let handle = Timers::add(&timers, due, Waker::from(old.clone()));

        let t = timers.clone();
        let firer = thread::spawn(move || t.run_expired(later).fired);

        let waker = Waker::from(new.clone());
        let polled = handle.poll_fired(&mut Context::from_waker(&waker));
        assert_eq!(firer.join().unwrap(), 1);
        // No lost wakeup: a Pending poll is followed by a wake of its waker.
        if polled == Poll::Pending {
            assert_eq!(new.0.load(SeqCst), 1, "Pending poll never woken");
        }
        assert_eq!(
            old.0.load(SeqCst) + new.0.load(SeqCst),
            1,
            "one wake per fire"
        );
        assert!(handle.is_fired());
        assert_eq!(timers.len(), 0);
    });
}

#[test]
fn loom_timers_fire_vs_cancel() {
    loom::model(|| {
        let timers = Arc::new(Timers::new());
        let wakes = StdArc::new(WakeCount(AtomicUsize::new(0)));
        let (due, later) = far_past_and_future();
        let handle = Timers::add(&timers, due, Waker::from(wakes.clone()));

        let t = timers.clone();
        let firer = thread::spawn(move || t.run_expired(later).fired);
        drop(handle);
        let fired = firer.join().unwrap();

        // Exactly one of fire and cancel won.
        assert_eq!(fired, wakes.0.load(SeqCst), "woken iff fired");
        assert!(fired <= 1);
        assert_eq!(timers.len(), 0, "live count decremented exactly once");
        // Whoever won dropped the timer's waker clone.
        assert_eq!(StdArc::strong_count(&wakes), 1, "waker leaked");
        // A later run finds nothing and leaves the heap empty.
        assert_eq!(timers.run_expired(later).fired, 0);
        assert_eq!(timers.heap_len(), 0);
    });
}
