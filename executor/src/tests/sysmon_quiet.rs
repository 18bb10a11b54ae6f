//! Sysmon's hysteresis before its deep sleep (`sysmon.rs`, `Quiet`): it
//! parks until an M takes a P only after every P has looked idle for
//! `IDLE_BEFORE_SLEEP`, and an idle runtime still gets there.

use std::time::{Duration, Instant};

use crate::sysmon::{IDLE_BEFORE_SLEEP, Quiet};

#[test]
fn quiet_needs_the_whole_interval_of_idle_ticks() {
    let t0 = Instant::now();
    let mut q = Quiet::default();
    assert!(!q.long_enough(t0), "no tick seen yet");
    q.observe(true, t0);
    assert!(!q.long_enough(t0), "idle for no time");
    let almost = t0 + IDLE_BEFORE_SLEEP - Duration::from_micros(1);
    q.observe(true, almost);
    assert!(!q.long_enough(almost), "idle just short of the interval");
    let enough = t0 + IDLE_BEFORE_SLEEP;
    q.observe(true, enough);
    assert!(q.long_enough(enough), "idle for the whole interval");
}

#[test]
fn one_busy_tick_restarts_the_interval() {
    let t0 = Instant::now();
    let mut q = Quiet::default();
    q.observe(true, t0);
    let busy = t0 + IDLE_BEFORE_SLEEP / 2;
    q.observe(false, busy);
    let later = t0 + IDLE_BEFORE_SLEEP;
    q.observe(true, later);
    assert!(
        !q.long_enough(later),
        "the busy tick must restart the interval, not extend the old one"
    );
    assert!(q.long_enough(later + IDLE_BEFORE_SLEEP));
}

#[test]
fn an_idle_runtime_still_puts_sysmon_to_sleep_and_work_wakes_it() {
    let rt = crate::Builder::new().worker_threads(2).build().unwrap();
    let shared = &rt.handle().shared;
    let wait_for = |want: bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.sysmon.is_sleeping() != want {
            assert!(Instant::now() < deadline, "{what} within 10 s");
            std::thread::yield_now();
        }
    };
    wait_for(true, "sysmon of an idle runtime parks");
    // A task that keeps its P busy wakes sysmon (an M acquired a P) and
    // keeps it awake while it runs.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    rt.spawn(async move {
        started_tx.send(()).unwrap();
        let _ = rx.recv();
    });
    started_rx.recv().unwrap();
    wait_for(false, "sysmon wakes when an M takes a P");
    drop(tx);
    wait_for(true, "sysmon parks again once the runtime is idle");
}
