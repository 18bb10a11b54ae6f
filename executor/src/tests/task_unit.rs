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
    // The dump's time in state has no field: it is the top half of the
    // state word (task/state.rs, the stamp).
    assert!(header <= 40, "task header grew to {header} bytes");
    // header 40 + scheduler 8 + join waker 16 + stage 24 (a tagless union of
    // the 16-byte future and the 24-byte outcome of a `()` output) + spawn
    // location 8 (sysmon's handoff warning names it).
    assert!(
        cell <= 96,
        "task cell for a 16-byte future grew to {cell} bytes"
    );
}

/// The idle task of `benches/idle_task_memory.rs`: an async block (no niche
/// for an enum tag) of 40 bytes. Its cell is 112 bytes (40 + 8 + 16 + 40 +
/// 8, the spawn location included), glibc's 128-byte chunk; a tag would
/// make it 120 (still 128). 8 bytes less would move it into the 112-byte
/// chunk: 16 bytes per idle task. The dump's time in state takes no byte:
/// it is a stamp in the state word (task/state.rs).
#[test]
fn task_cell_has_no_stage_tag() {
    use crate::task::raw::Cell;
    fn cell_size<F: Future>(_: &F) -> usize {
        std::mem::size_of::<Cell<F, crate::runtime::Handle>>()
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let fut = async move {
        tx.send(()).unwrap();
        let _ = futures::future::pending::<()>().await;
        drop(rx);
    };
    let future = std::mem::size_of_val(&fut);
    let cell = cell_size(&fut);
    assert_eq!(
        cell,
        40 + 8 + 16 + future.max(24) + 8,
        "the stage of a {future}-byte future carries more than the future"
    );
}

/// A task that wakes itself during its poll comes back from `run_yielding`
/// (the M queues it) and is not scheduled; `run` sends it to the scheduler.
/// Either way it is polled again and completes once.
#[test]
fn self_wake_comes_back_from_run_yielding() {
    let s = TestSched::new();
    let (mut jh, n) = s.spawn(async {
        crate::task::yield_now().await;
        crate::task::yield_now().await;
        3
    });
    let again = n.unwrap().run_yielding().expect("a yield returns the task");
    assert!(s.pop().is_none(), "run_yielding must not schedule the task");
    again.run();
    let last = s.pop().expect("run schedules a yielded task");
    assert!(s.pop().is_none(), "scheduled once");
    assert!(
        last.run_yielding().is_none(),
        "a completed task is not returned"
    );
    assert!(s.pop().is_none());
    assert_eq!(poll_join(&mut jh).map(Result::unwrap), Poll::Ready(3));
    drop(jh);
    assert_eq!(s.cells_freed(), 1);
}

#[test]
fn the_stamp_is_written_on_wait_and_wake_and_kept_by_reference_counting() {
    use crate::metrics::since;
    use crate::task::state::{
        STAMP_SHIFT, State, TransitionToIdle, TransitionToNotified, TransitionToRunning,
    };
    let clock = || (since::stamp() >> STAMP_SHIFT) as u32;
    since::advance();
    let st = State::new();
    assert_eq!(st.load().stamp(), clock(), "spawn stamps the runnable task");
    assert_eq!(st.transition_to_running(), TransitionToRunning::Success);
    // Let the coarse clock move past one unit (65.5 us).
    let t = std::time::Instant::now();
    while clock() == st.load().stamp() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "clock stuck"
        );
        since::advance();
    }
    assert_eq!(st.transition_to_idle(), TransitionToIdle::Ok);
    let waiting = st.load().stamp();
    assert_eq!(waiting, clock(), "Pending stamps the waiting task");
    for _ in 0..1000 {
        st.ref_inc();
    }
    assert!(!st.ref_dec_n(1000));
    assert_eq!(st.load().stamp(), waiting, "counting references keeps it");
    assert_eq!(st.load().ref_count(), 2);
    while clock() == waiting {
        since::advance();
    }
    assert_eq!(
        st.transition_to_notified_by_ref(),
        TransitionToNotified::Submit
    );
    assert_eq!(
        st.load().stamp(),
        clock(),
        "a wake stamps the runnable task"
    );
    assert_eq!(st.load().ref_count(), 3);
}
