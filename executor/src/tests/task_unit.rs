//! Single-threaded tests of the task layer over the test scheduler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;

use super::test_sched::{DropCount, TestSched};
use crate::task::JoinHandle;

fn poll_join<T>(jh: &mut JoinHandle<T>) -> Poll<Result<T, crate::JoinError>> {
    Pin::new(jh).poll(&mut Context::from_waker(noop_waker_ref()))
}

#[test]
fn output_reaches_join_handle() {
    let s = TestSched::new();
    let (mut jh, n) = s.spawn(async { 7 });
    n.unwrap().run();
    assert!(jh.is_finished());
    assert_eq!(poll_join(&mut jh).map(Result::unwrap), Poll::Ready(7));
    drop(jh);
    assert_eq!(s.cells_freed(), 1);
}

#[test]
fn panic_goes_to_join_handle() {
    let s = TestSched::new();
    let (mut jh, n) = s.spawn(async { panic!("boom") });
    n.unwrap().run();
    match poll_join::<()>(&mut jh) {
        Poll::Ready(Err(e)) => {
            assert!(e.is_panic());
            assert!(e.to_string().contains("boom"), "{e}");
            let p = e.into_panic();
            assert_eq!(p.downcast_ref::<&str>(), Some(&"boom"));
        }
        other => panic!("expected a panic error, got {:?}", other.map(|r| r.is_ok())),
    }
}

#[test]
fn detached_task_drops_output() {
    let s = TestSched::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let out = DropCount(drops.clone());
    let (jh, n) = s.spawn(async move { out });
    drop(jh);
    n.unwrap().run();
    assert_eq!(drops.load(SeqCst), 1);
    assert_eq!(s.cells_freed(), 1);
}

#[test]
fn shutdown_drops_pending_future_once() {
    let s = TestSched::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..10 {
        let c = DropCount(drops.clone());
        let (jh, n) = s.spawn(async move {
            let _c = c;
            std::future::pending::<()>().await
        });
        n.unwrap().run();
        handles.push(jh);
    }
    assert_eq!(s.0.owned.len(), 10);
    s.0.owned.close_and_shutdown_all();
    assert_eq!(drops.load(SeqCst), 10);
    for mut jh in handles {
        assert!(matches!(poll_join(&mut jh), Poll::Ready(Err(e)) if e.is_cancelled()));
    }
    assert_eq!(s.cells_freed(), 10);
    // Spawning after close cancels at once.
    let (mut jh, n) = s.spawn(async { 1 });
    assert!(n.is_none());
    assert!(matches!(poll_join(&mut jh), Poll::Ready(Err(e)) if e.is_cancelled()));
}

#[test]
fn join_waker_is_woken_on_completion() {
    let s = TestSched::new();
    let (jh, n) = s.spawn(async { 5u8 });
    let (outer, on) = s.spawn(async move { jh.await.unwrap() + 1 });
    on.unwrap().run(); // awaits jh: registers the join waker
    assert!(!outer.is_finished());
    n.unwrap().run(); // completes inner, wakes outer onto the queue
    s.drain();
    let mut outer = outer;
    assert_eq!(poll_join(&mut outer).map(Result::unwrap), Poll::Ready(6));
}

#[test]
fn task_cell_stays_small() {
    use crate::task::raw::{Cell, Header};
    // A future of two words, like one awaiting a oneshot receiver.
    type F = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
    let header = std::mem::size_of::<Header>();
    let cell = std::mem::size_of::<Cell<F, crate::runtime::Handle>>();
    // 40 + the spawn location and the diagnostics stamp (diag branch).
    assert!(header <= 56, "task header grew to {header} bytes");
    // header 56 + scheduler 8 + join waker 16 + stage 24 (future 16 + tag).
    assert!(
        cell <= 104,
        "task cell for a 16-byte future grew to {cell} bytes"
    );
}
