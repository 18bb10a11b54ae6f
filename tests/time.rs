//! `gort::time` on the real scheduler: sleep ordering, timeout with
//! `Elapsed`, interval's missed-tick behaviours, and cancellation by drop.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::watchdog;
use gort::time::{self, Elapsed, MissedTickBehavior};

const PERIOD: Duration = Duration::from_millis(20);

#[gort::test(worker_threads = 2)]
async fn sleeps_wake_in_deadline_order_across_ps() {
    let _dog = watchdog(60, "sleep ordering");
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    // Spawned in reverse so that order comes from the deadlines only;
    // 4 ms apart, well above timer precision.
    let joins: Vec<_> = (0..25u32)
        .rev()
        .map(|i| {
            let tx = tx.clone();
            gort::spawn(async move {
                time::sleep_until(start + Duration::from_millis(10 + 4 * u64::from(i))).await;
                tx.send(i).unwrap();
            })
        })
        .collect();
    for j in joins {
        j.await.unwrap();
    }
    drop(tx);
    let order: Vec<u32> = rx.iter().collect();
    assert_eq!(
        order,
        (0..25).collect::<Vec<_>>(),
        "sleeps woke out of order"
    );
    assert!(start.elapsed() >= Duration::from_millis(10 + 4 * 24));
}

#[gort::test(worker_threads = 2)]
async fn timeout_elapses_with_elapsed_and_passes_ready_values() {
    let _dog = watchdog(60, "timeout");
    let start = Instant::now();
    let r = time::timeout(
        Duration::from_millis(15),
        time::sleep(Duration::from_secs(3600)),
    )
    .await;
    let took = start.elapsed();
    let err: Elapsed = r.expect_err("a 1 h sleep under a 15 ms timeout must elapse");
    assert_eq!(err.to_string(), "deadline has elapsed");
    assert!(
        took >= Duration::from_millis(15),
        "timed out early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "timeout fired late: {took:?}"
    );

    let r = time::timeout(Duration::from_secs(3600), async { 42 }).await;
    assert_eq!(r, Ok(42));
    let r = time::timeout(
        Duration::from_millis(200),
        time::sleep(Duration::from_millis(5)),
    )
    .await;
    assert_eq!(r, Ok(()), "the inner sleep finished first");
}

/// Ticks scheduled at `start + k * PERIOD`; the task stalls 3.5 periods
/// after the first tick, then ticks three more times.
async fn ticks_after_a_stall(behavior: MissedTickBehavior) -> (Instant, Vec<Instant>) {
    let start = Instant::now() + PERIOD;
    let mut iv = time::interval_at(start, PERIOD);
    iv.set_missed_tick_behavior(behavior);
    assert_eq!(iv.tick().await, start);
    // A slow receiver: blocks its M on purpose for 3.5 periods.
    std::thread::sleep(PERIOD * 7 / 2);
    let mut ticks = Vec::new();
    for _ in 0..3 {
        ticks.push(iv.tick().await);
    }
    (start, ticks)
}

#[gort::test(worker_threads = 2)]
async fn interval_skip_drops_missed_ticks_like_go() {
    let _dog = watchdog(60, "interval skip");
    let (s, ticks) = ticks_after_a_stall(MissedTickBehavior::Skip).await;
    // One late tick at once (the one due at 1 period), then the schedule
    // resumes at the first multiple after now: 4, 5 periods.
    assert_eq!(ticks, vec![s + PERIOD, s + PERIOD * 4, s + PERIOD * 5]);
}

#[gort::test(worker_threads = 2)]
async fn interval_burst_fires_every_missed_tick() {
    let _dog = watchdog(60, "interval burst");
    let (s, ticks) = ticks_after_a_stall(MissedTickBehavior::Burst).await;
    assert_eq!(ticks, vec![s + PERIOD, s + PERIOD * 2, s + PERIOD * 3]);
}

#[gort::test(worker_threads = 2)]
async fn interval_delay_restarts_from_the_late_tick() {
    let _dog = watchdog(60, "interval delay");
    let (s, ticks) = ticks_after_a_stall(MissedTickBehavior::Delay).await;
    assert_eq!(ticks[0], s + PERIOD);
    let gap = ticks[2] - ticks[1];
    assert_eq!(gap, PERIOD, "ticks after the delay are a period apart");
    assert!(
        ticks[1] >= s + PERIOD * 7 / 2 + PERIOD,
        "the schedule restarts one period after the late tick: {:?}",
        ticks[1] - s
    );
}

#[gort::test(worker_threads = 2)]
async fn dropping_a_sleep_cancels_it() {
    let _dog = watchdog(60, "sleep cancellation");
    let fired = Arc::new(AtomicUsize::new(0));
    // Tasks whose sleeps are aborted: their futures (and sleeps) drop.
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let fired = fired.clone();
            gort::spawn(async move {
                time::sleep(Duration::from_millis(30)).await;
                fired.fetch_add(1, SeqCst);
            })
        })
        .collect();
    // And a sleep dropped after being polled once (registered).
    {
        let sleep = time::sleep(Duration::from_millis(30));
        let mut sleep = std::pin::pin!(sleep);
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(sleep.as_mut().poll(cx))).await;
        assert!(polled.is_pending());
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        assert!(t.await.unwrap_err().is_cancelled());
    }
    // Past every deadline: nothing fired, and the runtime still sleeps fine.
    time::sleep(Duration::from_millis(60)).await;
    assert_eq!(fired.load(SeqCst), 0, "a cancelled sleep fired its task");
}
