//! `block_in_place`'s slow path (syscall.rs, `ExitSyscall`): the M's P was
//! handed off during the section, and the M takes an idle P for the rest
//! of the poll (or none).
//! - Timers: a `Sleep` made in the rest of the poll registers with the heap
//!   of the P the M now holds (until branch `sysfix` it went to the old P's
//!   heap, which another M was running, so it fired only when that M's poll
//!   ended or sysmon handed that P off again); without a P, with the
//!   `block_on` heap, which sysmon watches.
//! - Sysmon: taking a P wakes sysmon from its deep sleep, as every other P
//!   acquisition does (m.rs, `acquire`), so the rest of the poll and the
//!   tasks after it are watched.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::context;
use crate::scheduler::Shared;
use crate::task::block_in_place;
use crate::{Builder, JoinHandle, spawn, time};

/// Bound for waits that normally take milliseconds (a loaded machine).
const GENEROUS: Duration = Duration::from_secs(20);

/// The id of the P parked in this M's slot (we are inside a poll).
fn held_p() -> Option<usize> {
    context::with_current_m(|m| m?.slot().borrow((), |p, ()| p.id).ok())
}

/// Waits (bounded) until `cond` holds, on this thread.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < GENEROUS, "{what} within {GENEROUS:?}");
        std::thread::yield_now();
    }
}

/// Pending timers of each P's heap (the last heap is `block_on`'s).
fn pending(shared: &Shared) -> Vec<usize> {
    shared.timers.iter().map(|t| t.len()).collect()
}

/// A task spinning in one poll from its start until freed: the P it runs
/// on stays busy.
struct Hog {
    started: Arc<AtomicBool>,
    free: Arc<AtomicBool>,
    join: JoinHandle<()>,
}

impl Hog {
    /// Spawns it from the current task, onto this P's runq.
    fn spawn() -> Hog {
        let started = Arc::new(AtomicBool::new(false));
        let free = Arc::new(AtomicBool::new(false));
        let (s, f) = (started.clone(), free.clone());
        let join = spawn(async move {
            s.store(true, SeqCst);
            wait_until("the task frees the hog", || f.load(SeqCst));
        });
        Hog {
            started,
            free,
            join,
        }
    }

    /// Blocks until it runs: on this P, only once sysmon handed it off.
    fn wait_started(&self) {
        wait_until("sysmon hands the P off and the hog runs", || {
            self.started.load(SeqCst)
        });
    }

    async fn finish(self) {
        self.free.store(true, SeqCst);
        self.join.await.unwrap();
    }
}

/// Sleeps 5 ms from the current poll: the pending timers per heap before
/// and after the sleep registered (its first poll), and how long it took.
async fn sleep_5ms(shared: &Shared) -> (Vec<usize>, Vec<usize>, Duration) {
    let before = pending(shared);
    let mut sleep = Box::pin(time::sleep(Duration::from_millis(5)));
    std::future::poll_fn(|cx| {
        assert!(
            sleep.as_mut().poll(cx).is_pending(),
            "a 5 ms sleep fired at once"
        );
        Poll::Ready(())
    })
    .await;
    let after = pending(shared);
    let start = Instant::now();
    Pin::new(&mut sleep).await;
    (before, after, start.elapsed())
}

#[test]
fn block_in_place_slow_path_moves_the_timers_to_the_new_p() {
    // Two Ps. `holder` keeps one busy, so that the task `t` runs on the
    // other (`old`), and `hog`, spawned by `t` onto `old`'s runq, cannot be
    // stolen (no M is idle with a P). `t` then blocks in place until sysmon
    // hands `old` to a new M that runs `hog`, frees `holder` so that its P
    // goes idle, and returns: exitsyscall finds `old` gone and takes the
    // idle P (`new`).
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let shared = rt.handle().shared.clone();
    let holder_started = Arc::new(AtomicBool::new(false));
    let free_holder = Arc::new(AtomicBool::new(false));
    let (started, free) = (holder_started.clone(), free_holder.clone());
    let holder = rt.spawn(async move {
        started.store(true, SeqCst);
        wait_until("the test frees the holder", || free.load(SeqCst));
    });
    wait_until("the holder runs", || holder_started.load(SeqCst));
    let sh = shared.clone();
    let t = rt.spawn(async move {
        let old = held_p().expect("a task polls with a P");
        let hog = Hog::spawn();
        block_in_place(|| {
            hog.wait_started();
            free_holder.store(true, SeqCst);
            wait_until("the holder's P goes idle", || sh.idle.npidle() > 0);
        });
        let new = held_p().expect("exitsyscall took the idle P");
        assert_ne!(new, old, "the old P runs the hog on another M");
        let (before, after, took) = sleep_5ms(&sh).await;
        hog.finish().await;
        (old, new, before, after, took)
    });
    let (old, new, before, after, took) = rt.block_on(t).unwrap();
    rt.block_on(holder).unwrap();
    let mut want = before.clone();
    want[new] += 1;
    assert_eq!(
        after, want,
        "pending timers per heap before the sleep {before:?}, after {after:?}: the sleep \
         must register with the heap of P{new}, which the M took after losing P{old}"
    );
    assert!(
        took < GENEROUS,
        "a 5 ms sleep took {took:?} after block_in_place's slow path"
    );
}

#[test]
fn block_in_place_without_a_p_left_registers_sleeps_where_sysmon_looks() {
    // One P. `t` blocks in place until sysmon hands the P to a new M that
    // runs `hog`; `hog` keeps it (a CPU loop, no budget) until `t` is done.
    // `t` returns with no idle P to take, so the rest of its poll runs
    // without one: its sleep goes to the `block_on` heap, and sysmon, which
    // sees that timer expire while no P is idle, hands the P back from the
    // hog's M so that the sleep fires.
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let shared = rt.handle().shared.clone();
    let block_on_heap = shared.timers.len() - 1;
    let sh = shared.clone();
    let t = rt.spawn(async move {
        let hog = Hog::spawn();
        block_in_place(|| {
            hog.wait_started();
        });
        let held = held_p();
        let (before, after, took) = sleep_5ms(&sh).await;
        hog.finish().await;
        (held, before, after, took)
    });
    let (held, before, after, took) = rt.block_on(t).unwrap();
    assert_eq!(
        held, None,
        "the only P runs the hog: exitsyscall finds none"
    );
    let mut want = before.clone();
    want[block_on_heap] += 1;
    assert_eq!(
        after, want,
        "pending timers per heap before the sleep {before:?}, after {after:?}: a poll left \
         without a P registers with the block_on heap"
    );
    assert!(
        took < GENEROUS,
        "a 5 ms sleep took {took:?}: nobody ran the block_on heap while the hog held the P"
    );
}

#[test]
fn block_in_place_taking_an_idle_p_wakes_a_sleeping_sysmon() {
    // One P. The section outlasts SYSCALL_MAX (10 ms), so sysmon hands the
    // P to another M, which finds nothing and leaves it idle; with every P
    // idle for IDLE_BEFORE_SLEEP sysmon parks. The section then ends and
    // the M takes the idle P back: sysmon must wake up, since this M now
    // runs tasks with a P and nothing else may wake it.
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let sh = rt.handle().shared.clone();
    let held = rt.block_on(rt.spawn(async move {
        block_in_place(|| {
            wait_until("sysmon parks while the section runs", || {
                sh.sysmon.is_sleeping()
            });
        });
        // Still in the poll, holding the P: a woken sysmon stays awake.
        wait_until("exitsyscall's P acquisition wakes sysmon", || {
            !sh.sysmon.is_sleeping()
        });
        held_p()
    }));
    assert_eq!(
        held.unwrap(),
        Some(0),
        "exitsyscall took the idle P back (slow path)"
    );
}
