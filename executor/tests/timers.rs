//! Timers driven by the scheduler: Ms fire expired timers in findrunnable
//! and bound their idle sleep by the earliest deadline.

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
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let rt = rt(2);
        for _ in 0..100 {
            let d = D(drops.clone());
            rt.spawn(async move {
                let _d = d;
                time::sleep(Duration::from_secs(3600)).await;
            });
        }
        rt.block_on(time::sleep(Duration::from_millis(5)));
    }
    assert_eq!(drops.load(SeqCst), 100);
}
