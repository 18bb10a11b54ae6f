//! The time module driven by the real scheduler: sleeps on Ms and on a
//! `block_on` thread, timers racing the M that sleeps in netpoll.

#![cfg(not(loom))]

use std::time::{Duration, Instant};

use gort_executor::{Builder, Runtime, spawn, time};

const GENEROUS: Duration = Duration::from_secs(20);

fn rt(n: usize) -> Runtime {
    Builder::new()
        .worker_threads(n)
        .build()
        .expect("runtime builds")
}

#[test]
fn sleep_on_block_on_thread_fires() {
    let rt = rt(2);
    let start = Instant::now();
    rt.block_on(time::sleep(Duration::from_millis(20)));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(20), "woke early: {took:?}");
    assert!(took < GENEROUS, "sleep from block_on never fired: {took:?}");
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

#[test]
fn timeout_and_interval_run_on_the_runtime() {
    let rt = rt(2);
    rt.block_on(async {
        let r = time::timeout(Duration::from_millis(10), time::sleep(GENEROUS)).await;
        assert!(r.is_err(), "timeout did not elapse");
        let r = time::timeout(GENEROUS, async { 7 }).await;
        assert_eq!(r, Ok(7));
        let mut iv = time::interval(Duration::from_millis(2));
        let start = Instant::now();
        for _ in 0..5 {
            iv.tick().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(8));
    });
}
