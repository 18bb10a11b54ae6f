//! Behaviour of the runtime API: spawn, join, block_on, shutdown, panics.

#![cfg(not(loom))]

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, mpsc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gort_executor::{Builder, Handle, Runtime, spawn, task};

mod common;
use common::{DropCount, GENEROUS, rt};

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn block_on_runs_spawned_tasks() {
    let rt = rt(2);
    let out = rt.block_on(async {
        let hs: Vec<_> = (0..100u64).map(|i| spawn(async move { i * 2 })).collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(out, (0..100u64).map(|i| i * 2).sum::<u64>());
}

#[test]
fn block_on_accepts_non_send_future() {
    let rt = rt(1);
    let local = std::rc::Rc::new(5);
    let l2 = local.clone();
    assert_eq!(rt.block_on(async move { *l2 + 1 }), 6);
}

#[test]
fn spawn_from_outside_threads() {
    let rt = rt(2);
    let handle = rt.handle();
    let joins: Vec<_> = (0..4)
        .map(|t| {
            let h = handle.clone();
            std::thread::spawn(move || {
                (0..250)
                    .map(|i| h.spawn(async move { t * 1000 + i }))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let handles: Vec<_> = joins.into_iter().flat_map(|j| j.join().unwrap()).collect();
    let rt_spawned = rt.spawn(async { 7 });
    let sum: usize = rt.block_on(async move {
        let mut s = 0;
        for h in handles {
            s += h.await.unwrap();
        }
        s + rt_spawned.await.unwrap()
    });
    let expected: usize = (0..4)
        .flat_map(|t| (0..250).map(move |i| t * 1000 + i))
        .sum::<usize>()
        + 7;
    assert_eq!(sum, expected);
}

#[test]
fn hundred_thousand_tasks() {
    let rt = rt(2);
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    rt.block_on(async move {
        let hs: Vec<_> = (0..100_000)
            .map(|_| {
                let c = c.clone();
                spawn(async move {
                    c.fetch_add(1, SeqCst);
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert_eq!(counter.load(SeqCst), 100_000);
}

#[test]
fn panic_reaches_join_handle_and_runtime_goes_on() {
    let rt = rt(2);
    let err = rt
        .block_on(rt.spawn(async { panic!("task exploded") }))
        .unwrap_err();
    assert!(err.is_panic() && !err.is_cancelled());
    assert!(err.to_string().contains("task exploded"), "{err}");
    assert_eq!(panic_message(err.into_panic()), "task exploded");
    assert_eq!(
        rt.block_on(rt.spawn(async { 3 })).unwrap(),
        3,
        "runtime still works"
    );
}

#[test]
fn panic_in_block_on_reaches_caller() {
    let rt = rt(1);
    let r = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { panic!("block_on boom") })
    }));
    assert_eq!(panic_message(r.unwrap_err()), "block_on boom");
    assert_eq!(
        rt.block_on(async { 1 }),
        1,
        "runtime usable after a block_on panic"
    );
}

#[test]
fn nested_block_on_panics_clearly() {
    let rt = rt(1);
    let r = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { Handle::current().block_on(async { 1 }) })
    }));
    let msg = panic_message(r.unwrap_err());
    assert!(msg.contains("cannot block_on inside a runtime"), "{msg}");
    // From a task too: the panic goes to its JoinHandle.
    let err = rt
        .block_on(rt.spawn(async { Handle::current().block_on(async { 1 }) }))
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot block_on inside a runtime"),
        "{err}"
    );
}

#[test]
fn outside_a_runtime_errors_clearly() {
    assert!(Handle::try_current().is_err());
    let r = catch_unwind(|| Handle::current());
    assert!(panic_message(r.unwrap_err()).contains("outside a gort runtime"));
    let r = catch_unwind(|| spawn(async {}));
    let msg = panic_message(r.unwrap_err());
    assert!(
        msg.contains("outside a gort runtime") && msg.contains("runtime.rs"),
        "{msg}"
    );
    assert!(task::try_id().is_none());
}

#[test]
fn bad_configuration_is_an_error() {
    let e = Builder::new().worker_threads(0).build().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = Builder::new()
        .worker_threads(4)
        .max_threads(2)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("max_threads"), "{e}");
}

#[test]
fn task_ids_are_distinct_and_visible() {
    let rt = rt(2);
    let (a, b) = rt.block_on(async {
        let a = spawn(async { task::id() });
        let b = spawn(async { task::id() });
        let (ia, ib) = (a.id(), b.id());
        assert_eq!(a.await.unwrap(), ia);
        assert_eq!(b.await.unwrap(), ib);
        (ia, ib)
    });
    assert_ne!(a, b);
}

#[test]
fn thread_names_are_applied() {
    let rt = Builder::new()
        .worker_threads(1)
        .thread_name("custom")
        .build()
        .unwrap();
    let name = rt
        .block_on(rt.spawn(async { std::thread::current().name().map(str::to_owned) }))
        .unwrap();
    assert_eq!(name.as_deref(), Some("custom-0"));
}

/// Signals `polling` during its first poll, then waits for `release` before
/// returning Pending; never completes.
struct BlockInPoll {
    polling: Arc<Barrier>,
    release: Arc<Barrier>,
    _drops: DropCount,
}
impl Future for BlockInPoll {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.polling.wait();
        self.release.wait();
        Poll::Pending
    }
}

#[test]
fn abort_during_poll_cancels_after_the_poll() {
    let rt = rt(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (polling, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let h = rt.spawn(BlockInPoll {
        polling: polling.clone(),
        release: release.clone(),
        _drops: DropCount(drops.clone()),
    });
    polling.wait(); // the task is inside poll
    h.abort();
    assert_eq!(
        drops.load(SeqCst),
        0,
        "the future is not dropped while it is being polled"
    );
    release.wait();
    let err = rt.block_on(h).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(drops.load(SeqCst), 1, "future dropped exactly once");
}

#[test]
fn abort_idle_task_and_is_finished() {
    let rt = rt(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let d = DropCount(drops.clone());
    let h = rt.spawn(async move {
        let _d = d;
        std::future::pending::<()>().await
    });
    assert!(!h.is_finished());
    h.abort();
    let e = rt.block_on(h).unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn join_handle_dropped_while_task_completes() {
    let rt = rt(2);
    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..2000 {
        let d = DropCount(drops.clone());
        let h = rt.spawn(async move { d });
        drop(h);
    }
    rt.block_on(async {
        // Wait for every detached task's output to be dropped.
        let start = Instant::now();
        while drops.load(SeqCst) < 2000 {
            assert!(
                start.elapsed() < GENEROUS,
                "outputs dropped: {} of 2000",
                drops.load(SeqCst)
            );
            task::yield_now().await;
        }
    });
    assert_eq!(drops.load(SeqCst), 2000, "each output dropped exactly once");
}

#[test]
fn shutdown_drops_every_pending_future_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let rt = rt(2);
        let spawned = Arc::new(AtomicUsize::new(0));
        for i in 0..1000 {
            let d = DropCount(drops.clone());
            let s = spawned.clone();
            rt.spawn(async move {
                let _d = d;
                s.fetch_add(1, SeqCst);
                if i % 2 == 0 {
                    std::future::pending::<()>().await; // waiting: only the owned list knows it
                } else {
                    loop {
                        task::yield_now().await; // always queued
                    }
                }
            });
        }
        rt.block_on(async {
            while spawned.load(SeqCst) < 1000 {
                task::yield_now().await;
            }
        });
        // Some never-polled tasks too.
        for _ in 0..100 {
            let d = DropCount(drops.clone());
            rt.spawn(async move {
                let _d = d;
            });
        }
        assert!(
            drops.load(SeqCst) <= 100,
            "the 1000 pending futures are alive until shutdown"
        );
    }
    assert_eq!(
        drops.load(SeqCst),
        1100,
        "every future dropped exactly once at shutdown"
    );
}

#[test]
fn spawn_after_shutdown_started_is_cancelled() {
    let rt = rt(1);
    let handle = rt.handle();
    drop(rt);
    let h = handle.spawn(async { 1 });
    let err = futures::executor::block_on(h).unwrap_err();
    assert!(err.is_cancelled());
}

#[test]
fn shutdown_timeout_detaches_a_stuck_m() {
    let rt = rt(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let d = DropCount(drops.clone());
    rt.spawn(async move {
        let _d = d;
        entered_tx.send(()).unwrap();
        release_rx.recv().unwrap(); // blocks the M
        std::future::pending::<()>().await
    });
    entered_rx.recv_timeout(GENEROUS).expect("task started");
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(50));
    assert!(start.elapsed() < GENEROUS);
    assert_eq!(
        drops.load(SeqCst),
        0,
        "the stuck task is still being polled"
    );
    release_tx.send(()).unwrap();
    let start = Instant::now();
    while drops.load(SeqCst) == 0 {
        assert!(
            start.elapsed() < GENEROUS,
            "the M should cancel the task after its poll"
        );
        std::thread::yield_now();
    }
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn ping_pong_pair_does_not_starve_the_queue() {
    use futures::channel::mpsc as fmpsc;
    use futures::{SinkExt, StreamExt};
    let rt = rt(1);
    let done = Arc::new(AtomicBool::new(false));
    let (ok_tx, ok_rx) = mpsc::channel();
    let d = done.clone();
    rt.spawn(async move {
        let (mut a_tx, mut a_rx) = fmpsc::channel::<()>(1);
        let (mut b_tx, mut b_rx) = fmpsc::channel::<()>(1);
        let d2 = d.clone();
        spawn(async move {
            while let Some(()) = a_rx.next().await {
                if b_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        spawn(async move {
            // Queued behind the pair on the same P.
            d2.store(true, SeqCst);
        });
        a_tx.send(()).await.unwrap();
        while !d.load(SeqCst) {
            b_rx.next().await.unwrap();
            a_tx.send(()).await.unwrap();
        }
        ok_tx.send(()).unwrap();
    });
    ok_rx
        .recv_timeout(GENEROUS)
        .expect("the queued task must run while the pair ping-pongs");
}

#[test]
fn remote_spawn_runs_while_local_work_is_busy() {
    let rt = rt(1);
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..64 {
        let s = stop.clone();
        rt.spawn(async move {
            while !s.load(SeqCst) {
                task::yield_now().await;
            }
        });
    }
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move { tx.send(()).unwrap() });
    let r = rx.recv_timeout(GENEROUS);
    stop.store(true, SeqCst);
    r.expect("a remote spawn must run while local tasks keep yielding");
}

#[test]
fn unconstrained_never_yields_for_budget() {
    struct CountPolls<F>(F, Arc<AtomicUsize>);
    impl<F: Future + Unpin> Future for CountPolls<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.1.fetch_add(1, SeqCst);
            Pin::new(&mut self.0).poll(cx)
        }
    }
    /// Polls of the task's top future while it spends 1000 budget units,
    /// inside `unconstrained` or not.
    fn polls_for_1000_units(rt: &Runtime, unconstrained: bool) -> usize {
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        rt.block_on(rt.spawn(async move {
            let work = async {
                for _ in 0..1000 {
                    task::consume_budget().await;
                }
            };
            if unconstrained {
                CountPolls(Box::pin(task::unconstrained(work)), p).await;
            } else {
                CountPolls(Box::pin(work), p).await;
            }
        }))
        .unwrap();
        polls.load(SeqCst)
    }
    let rt = rt(1);
    assert_eq!(
        polls_for_1000_units(&rt, true),
        1,
        "unconstrained work ran in one poll"
    );
    let polls = polls_for_1000_units(&rt, false);
    assert!(
        polls >= 1000 / 128,
        "budgeted work yields every 128 units: {polls} polls"
    );
}

#[test]
fn dropping_a_runtime_inside_its_own_task_detaches() {
    let rt = rt(1);
    let inner = rt.handle();
    let victim = Runtime::new().unwrap();
    // Dropping *another* runtime from a task waits for it as usual.
    rt.block_on(rt.spawn(async move { drop(victim) })).unwrap();
    let own = Arc::new(std::sync::Mutex::new(Some(rt)));
    let own2 = own.clone();
    let h = inner.spawn(async move {
        let rt = own2.lock().unwrap().take().unwrap();
        drop(rt); // must not wait for this very M
        5
    });
    assert_eq!(futures::executor::block_on(h).unwrap(), 5);
    let late = inner.spawn(async { 1 });
    assert!(
        futures::executor::block_on(late)
            .unwrap_err()
            .is_cancelled()
    );
}

#[test]
fn no_lost_wakeup_when_ms_go_idle_between_rounds() {
    // Each round finds every M parked (or parking) and must wake one; a lost
    // wakeup hangs a round, which the watchdog turns into a failure.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = rt(2);
        for i in 0..20_000u32 {
            let h = rt.handle();
            let got = std::thread::scope(|s| {
                s.spawn(|| futures::executor::block_on(h.spawn(async move { i })))
                    .join()
            });
            assert_eq!(got.unwrap().unwrap(), i);
            if i % 2 == 0 {
                assert_eq!(rt.block_on(rt.spawn(async move { i + 1 })).unwrap(), i + 1);
            }
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("a round hung: lost wakeup");
}

#[test]
fn spawned_task_takes_runnext_and_yield_goes_to_the_tail() {
    use std::sync::Mutex;
    let rt = rt(1);
    let order = rt
        .block_on(rt.spawn(async {
            let log = Arc::new(Mutex::new(Vec::new()));
            let (a, b) = (log.clone(), log.clone());
            spawn(async move { a.lock().unwrap().push("a") });
            // Takes runnext; "a" is kicked to the tail of the runq.
            spawn(async move { b.lock().unwrap().push("b") });
            // The yielding task goes behind "a".
            task::yield_now().await;
            log.lock().unwrap().clone()
        }))
        .unwrap();
    assert_eq!(order, ["b", "a"]);
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Runtime>();
    assert_send_sync::<Handle>();
    assert_send_sync::<gort_executor::JoinHandle<u8>>();
    assert_send_sync::<gort_executor::JoinError>();
    assert_send_sync::<Builder>();
}
