//! Loom models of the task state machine (state.rs, harness.rs).
//!
//! Each model runs a task whose future and output count their drops, with a
//! scheduler copy inside the cell that counts the cell's release: every model
//! asserts the future dropped once, the output dropped at most once (once when
//! produced), and the cell freed exactly once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::task::noop_waker_ref;
use gort_netpoll::loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use gort_netpoll::loom::sync::{Arc, Mutex, Notify};
use gort_netpoll::loom::thread;

use super::test_sched::{DropCount, TestSched};
use crate::task::JoinHandle;

/// Pending on its first poll (publishing its waker and signalling `ready`),
/// Ready with a counted output on the second.
struct TwoPolls {
    polls: usize,
    waker: Arc<Mutex<Option<Waker>>>,
    ready: Arc<Notify>,
    out_drops: Arc<AtomicUsize>,
    _drops: DropCount,
}

impl Future for TwoPolls {
    type Output = DropCount;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DropCount> {
        self.polls += 1;
        if self.polls == 1 {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            self.ready.notify();
            Poll::Pending
        } else {
            Poll::Ready(DropCount(self.out_drops.clone()))
        }
    }
}

struct Counters {
    fut: Arc<AtomicUsize>,
    out: Arc<AtomicUsize>,
    waker: Arc<Mutex<Option<Waker>>>,
    ready: Arc<Notify>,
}

fn two_polls(sched: &TestSched) -> (JoinHandle<DropCount>, Counters) {
    let c = Counters {
        fut: Arc::new(AtomicUsize::new(0)),
        out: Arc::new(AtomicUsize::new(0)),
        waker: Arc::new(Mutex::new(None)),
        ready: Arc::new(Notify::new()),
    };
    let fut = TwoPolls {
        polls: 0,
        waker: c.waker.clone(),
        ready: c.ready.clone(),
        out_drops: c.out.clone(),
        _drops: DropCount(c.fut.clone()),
    };
    let (jh, notified) = sched.spawn(fut);
    sched
        .0
        .queue
        .lock()
        .unwrap()
        .push_back(notified.expect("list open"));
    (jh, c)
}

fn poll_join<T>(jh: &mut JoinHandle<T>) -> Poll<Result<T, crate::JoinError>> {
    Pin::new(jh).poll(&mut Context::from_waker(noop_waker_ref()))
}

#[test]
fn loom_task_wake_during_poll() {
    loom::model(|| {
        let sched = TestSched::new();
        let (mut jh, c) = two_polls(&sched);
        let (slot, ready) = (c.waker.clone(), c.ready.clone());
        let th = thread::spawn(move || {
            ready.wait();
            let w = slot
                .lock()
                .unwrap()
                .take()
                .expect("waker published before notify");
            w.wake();
        });
        sched.drain(); // first poll, racing with the wake
        th.join().unwrap();
        sched.drain(); // the rescheduled poll
        let out = match poll_join(&mut jh) {
            Poll::Ready(Ok(out)) => out,
            other => panic!(
                "task should have completed, got {:?}",
                other.map(|r| r.map(|_| ()))
            ),
        };
        assert_eq!(c.fut.load(SeqCst), 1, "future dropped once on completion");
        drop(out);
        drop(jh);
        assert_eq!(c.out.load(SeqCst), 1, "output dropped once");
        assert_eq!(sched.cells_freed(), 1, "cell freed exactly once");
    });
}

#[test]
fn loom_task_abort_during_poll() {
    loom::model(|| {
        let sched = TestSched::new();
        let (jh, c) = two_polls(&sched);
        let ready = c.ready.clone();
        let th = thread::spawn(move || {
            ready.wait();
            jh.abort();
            jh
        });
        sched.drain(); // first poll, racing with abort
        let mut jh = th.join().unwrap();
        sched.drain(); // an abort after the poll queued the task
        match poll_join(&mut jh) {
            Poll::Ready(Err(e)) => assert!(e.is_cancelled(), "{e}"),
            other => panic!(
                "expected a cancelled task, got {:?}",
                other.map(|r| r.map(|_| ()))
            ),
        }
        assert_eq!(c.fut.load(SeqCst), 1, "future dropped exactly once");
        assert_eq!(c.out.load(SeqCst), 0, "no output was produced");
        drop(jh);
        drop(c.waker.lock().unwrap().take());
        assert_eq!(sched.cells_freed(), 1, "cell freed exactly once");
    });
}

#[test]
fn loom_task_join_dropped_while_completing() {
    loom::model(|| {
        let sched = TestSched::new();
        let out = Arc::new(AtomicUsize::new(0));
        let fut_drops = Arc::new(AtomicUsize::new(0));
        let (o, f) = (DropCount(out.clone()), DropCount(fut_drops.clone()));
        let (jh, notified) = sched.spawn(async move {
            let _f = f;
            o
        });
        let th = thread::spawn(move || drop(jh));
        notified.expect("list open").run();
        th.join().unwrap();
        assert_eq!(fut_drops.load(SeqCst), 1, "future dropped exactly once");
        assert_eq!(out.load(SeqCst), 1, "output dropped exactly once");
        assert_eq!(sched.cells_freed(), 1, "cell freed exactly once");
    });
}

#[test]
fn loom_task_shutdown_races_wake() {
    loom::model(|| {
        let sched = TestSched::new();
        let (jh, c) = two_polls(&sched);
        sched.drain(); // first poll publishes the waker
        let w = c.waker.lock().unwrap().take().expect("waker published");
        let th = thread::spawn(move || w.wake());
        sched.0.owned.close_and_shutdown_all();
        th.join().unwrap();
        drop(sched.pop()); // a wake that won the race queued a Notified: drop it unrun
        assert_eq!(c.fut.load(SeqCst), 1, "future dropped exactly once");
        drop(jh);
        assert_eq!(sched.cells_freed(), 1, "cell freed exactly once");
    });
}
