//! Loom model of the readiness/waker protocol of `registration.rs` and
//! `atomic_waker.rs`.
//!
//! The property, in every interleaving: a readiness event is never lost. When
//! the task did not consume the data, it was woken *and* the readiness it
//! will re-check is still set (so its next poll retries the syscall).
//!
//! The kernel is modelled by `data` (SeqCst, like a syscall): the poller
//! thread stores it before reporting the edge, the task's "syscall" swaps it
//! out or gets `WouldBlock`. Every write in the models is an RMW (see
//! `spawn_poller` for the loom bug that rules out plain stores).

use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use crate::loom::sync::Arc;
use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::loom::thread;
use crate::registration::{Direction, PollDesc, READABLE};

struct CountingWaker {
    wakes: AtomicUsize,
}

impl Wake for CountingWaker {
    fn wake(self: StdArc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Waker, StdArc<CountingWaker>) {
    let counter = StdArc::new(CountingWaker {
        wakes: AtomicUsize::new(0),
    });
    (Waker::from(counter.clone()), counter)
}

/// A descriptor whose read readiness was cleared by an earlier WouldBlock.
fn parked_desc() -> Arc<PollDesc> {
    let desc = Arc::new(PollDesc::new(0));
    let start = desc.ready_now(Direction::Read).expect("starts optimistic");
    desc.clear_readiness(start);
    desc
}

/// The poller's side: data arrives, the edge is recorded, wakers are taken
/// and (standing in for the executor's batch inject) woken.
fn spawn_poller(desc: Arc<PollDesc>, data: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        // An RMW, not a store: loom 0.7 lets a plain store slip between the
        // read and write halves of a concurrent RMW (tokio-rs/loom#254),
        // which would report histories no hardware can produce.
        data.fetch_or(true, Ordering::SeqCst);
        desc.set_readiness(READABLE);
        let mut out = Vec::new();
        desc.take_wakers(READABLE, &mut out);
        for w in out {
            w.wake();
        }
    })
}

/// The task's side: poll_io's loop. Returns whether it consumed the data.
fn task_read(desc: &PollDesc, data: &AtomicBool, cx: &mut Context<'_>) -> bool {
    loop {
        match desc.poll_ready(cx, Direction::Read) {
            Poll::Ready(ev) => {
                if data.swap(false, Ordering::SeqCst) {
                    return true;
                }
                // WouldBlock: forget exactly the readiness we acted on.
                desc.clear_readiness(ev);
            }
            Poll::Pending => return false,
        }
    }
}

fn assert_not_lost(desc: &PollDesc, data: &AtomicBool, got: bool, waker: &CountingWaker) {
    if !got {
        assert!(
            data.load(Ordering::SeqCst),
            "data vanished without being read"
        );
        assert!(
            waker.wakes.load(Ordering::SeqCst) >= 1,
            "lost wakeup: task parked, data pending, never woken"
        );
        assert!(
            desc.ready_now(Direction::Read).is_some(),
            "task woken but readiness was cleared: its retry would park forever"
        );
    }
}

/// One poller event against one task's read loop, from `desc`'s state.
fn race_one_event(desc: Arc<PollDesc>) {
    let data = Arc::new(AtomicBool::new(false));
    let poller = spawn_poller(desc.clone(), data.clone());
    let (waker, count) = counting_waker();
    let got = task_read(&desc, &data, &mut Context::from_waker(&waker));
    poller.join().unwrap();
    assert_not_lost(&desc, &data, got, &count);
}

/// An edge arrives while the task registers its waker (readiness starts
/// cleared, as after an earlier WouldBlock).
#[test]
fn loom_event_while_registering() {
    loom::model(|| race_one_event(parked_desc()));
}

/// An edge arrives between the task's readiness snapshot, its WouldBlock and
/// its clear (readiness starts set: the optimistic first try).
#[test]
fn loom_event_while_clearing() {
    loom::model(|| race_one_event(Arc::new(PollDesc::new(0))));
}

/// Driver drop races with a task about to park: it is woken or sees
/// SHUTDOWN, and the waker is taken exactly once.
#[test]
fn loom_shutdown_while_registering() {
    loom::model(|| {
        let desc = parked_desc();
        let d2 = desc.clone();
        let dropper = thread::spawn(move || {
            let mut out = Vec::new();
            d2.shutdown(&mut out);
            let n = out.len();
            for w in out {
                w.wake();
            }
            n
        });

        let (waker, count) = counting_waker();
        let saw = match desc.poll_ready(&mut Context::from_waker(&waker), Direction::Read) {
            Poll::Ready(ev) => {
                assert!(ev.is_shutdown(), "only SHUTDOWN can make it ready here");
                true
            }
            Poll::Pending => false,
        };
        let taken = dropper.join().unwrap();
        assert!(taken <= 1, "one waker per direction, taken at most once");
        assert!(
            saw || count.wakes.load(Ordering::SeqCst) >= 1,
            "task parked on a dead driver and was never woken"
        );
        let after = desc.ready_now(Direction::Read).expect("SHUTDOWN is sticky");
        assert!(after.is_shutdown(), "SHUTDOWN must never be cleared");
    });
}

/// The task re-registers with a new waker (it moved to another M) while the
/// poller takes: the waker that ends up woken is the new one, or the task
/// sees the readiness itself.
#[test]
fn loom_reregister_new_waker_while_taking() {
    loom::model(|| {
        let desc = parked_desc();
        let (old, old_count) = counting_waker();
        assert!(
            desc.poll_ready(&mut Context::from_waker(&old), Direction::Read)
                .is_pending()
        );
        let data = Arc::new(AtomicBool::new(false));
        let poller = spawn_poller(desc.clone(), data.clone());

        let (new, new_count) = counting_waker();
        let got = task_read(&desc, &data, &mut Context::from_waker(&new));
        poller.join().unwrap();
        if !got && old_count.wakes.load(Ordering::SeqCst) == 1 {
            // The poller took the old waker before the new one was stored:
            // then the re-check after registering must have seen the edge.
            panic!("old waker woken, task parked with the new one and data pending");
        }
        assert_not_lost(&desc, &data, got, &new_count);
    });
}

/// A reader and a writer wait on one socket; one event reports both
/// directions. Each task is woken or sees its own readiness, and neither
/// direction's clear erases the other's.
#[test]
fn loom_two_directions_independent() {
    use crate::registration::WRITABLE;

    loom::model(|| {
        let desc = Arc::new(PollDesc::new(0));
        for dir in [Direction::Read, Direction::Write] {
            let ev = desc.ready_now(dir).expect("starts optimistic");
            desc.clear_readiness(ev);
        }
        let d2 = desc.clone();
        let poller = thread::spawn(move || {
            d2.set_readiness(READABLE | WRITABLE);
            let mut out = Vec::new();
            d2.take_wakers(READABLE | WRITABLE, &mut out);
            for w in out {
                w.wake();
            }
        });
        let d3 = desc.clone();
        let writer = thread::spawn(move || {
            let (w, count) = counting_waker();
            let ready = d3
                .poll_ready(&mut Context::from_waker(&w), Direction::Write)
                .is_ready();
            (ready, count)
        });
        let (r, r_count) = counting_waker();
        let r_ready = desc
            .poll_ready(&mut Context::from_waker(&r), Direction::Read)
            .is_ready();
        poller.join().unwrap();
        let (w_ready, w_count) = writer.join().unwrap();
        assert!(
            r_ready || r_count.wakes.load(Ordering::SeqCst) >= 1,
            "reader lost"
        );
        assert!(
            w_ready || w_count.wakes.load(Ordering::SeqCst) >= 1,
            "writer lost"
        );
        assert!(
            desc.ready_now(Direction::Read).is_some(),
            "read readiness kept"
        );
        assert!(
            desc.ready_now(Direction::Write).is_some(),
            "write readiness kept"
        );
    });
}
