//! Timers driven by the scheduler: Ms fire expired timers in findrunnable
//! and bound their idle sleep by the earliest deadline; a timer added while
//! every M is idle breaks the M sleeping in netpoll.

#![cfg(not(loom))]

use std::time::{Duration, Instant};

use gort_executor::{spawn, time};

mod common;
use common::{DropCount, GENEROUS, rt};

#[test]
fn spawned_task_sleep_fires_on_an_idle_runtime() {
    let rt = rt(2);
    let start = Instant::now();
    let h = rt.spawn(async {
        time::sleep(Duration::from_millis(20)).await;
        Instant::now()
    });
    let woke = rt.block_on(h).unwrap();
    assert!(
        woke - start >= Duration::from_millis(20),
        "woke early: {:?}",
        woke - start
    );
    assert!(start.elapsed() < GENEROUS);
}

#[test]
fn block_on_sleep_fires() {
    let rt = rt(1);
    let start = Instant::now();
    rt.block_on(time::sleep(Duration::from_millis(15)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(15) && took < GENEROUS,
        "{took:?}"
    );
}

#[test]
fn many_sleeps_all_fire() {
    let rt = rt(2);
    let n = rt.block_on(async {
        let hs: Vec<_> = (0..1000u64)
            .map(|i| {
                spawn(async move {
                    time::sleep(Duration::from_millis(1 + i % 20)).await;
                    1usize
                })
            })
            .collect();
        let mut n = 0;
        for h in hs {
            n += h.await.unwrap();
        }
        n
    });
    assert_eq!(n, 1000);
}

#[test]
fn timeout_fires_on_a_pending_future() {
    let rt = rt(2);
    let r = rt.block_on(rt.spawn(async {
        time::timeout(Duration::from_millis(10), std::future::pending::<()>()).await
    }));
    assert!(r.unwrap().is_err(), "timeout must elapse");
}

#[test]
fn shutdown_cancels_sleeping_tasks() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let rt = rt(2);
        for _ in 0..100 {
            let d = DropCount(drops.clone());
            rt.spawn(async move {
                let _d = d;
                time::sleep(Duration::from_secs(3600)).await;
            });
        }
        rt.block_on(time::sleep(Duration::from_millis(5)));
    }
    assert_eq!(drops.load(SeqCst), 100);
}

#[test]
fn sleeps_in_tasks_fire_in_deadline_order() {
    let rt = rt(2);
    let order = rt.block_on(async {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut joins = Vec::new();
        for i in (0..20u64).rev() {
            let tx = tx.clone();
            joins.push(spawn(async move {
                time::sleep(Duration::from_millis(5 + 3 * i)).await;
                tx.send(i).unwrap();
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
        drop(tx);
        rx.iter().collect::<Vec<_>>()
    });
    assert_eq!(order, (0..20).collect::<Vec<_>>());
}

/// Every M idle (one in netpoll with no deadline, the other parked): a
/// sleep added from `block_on` must break the poller.
#[test]
fn sleep_added_while_idle_breaks_the_poller() {
    for n in [1, 2, 4] {
        let rt = rt(n);
        for _ in 0..20 {
            // Let the Ms go idle (no work at all), then sleep from outside.
            std::thread::sleep(Duration::from_millis(2));
            let start = Instant::now();
            rt.block_on(time::sleep(Duration::from_millis(3)));
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{n} Ps: a 3 ms sleep took {:?}: the poller slept through it",
                start.elapsed()
            );
        }
    }
}

/// A task sleeping a long time, then another task adding a short sleep
/// while the poller waits for the long one.
#[test]
fn sleep_added_while_idle_with_a_later_timer_breaks_the_poller() {
    let rt = rt(2);
    let _long = rt.spawn(time::sleep(Duration::from_secs(3600)));
    std::thread::sleep(Duration::from_millis(5));
    let start = Instant::now();
    rt.block_on(async {
        spawn(time::sleep(Duration::from_millis(5))).await.unwrap();
    });
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a 5 ms sleep behind a 1 h one took {:?}",
        start.elapsed()
    );
}
