//! How socket readiness reaches the Ms (executor `netpoller.rs`, "Two ways
//! to wait", and `m.rs`, "Helpers for a netpoll batch"): while an M is busy
//! the idle one waits for timers only, so these check that readiness is
//! still seen when that busy M is stuck, and that a batch of long tasks is
//! still spread over the Ps.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::watchdog;
use futures::io::AsyncReadExt;
use gort::net::{TcpListener, TcpStream};

/// Waits (bounded) until `cond` holds, polling the runtime's metrics.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::yield_now();
    }
}

/// One M is inside a poll that blocks its thread; the other has nothing to
/// do. A connection arriving then must still be accepted, by sysmon's
/// netpoll or the idle M, long before the blocked poll ends (it would end
/// only when this test releases it, after the accept, or after 30 s).
#[test]
fn readiness_is_seen_while_the_only_busy_m_is_stuck_in_a_poll() {
    let _dog = watchdog(90, "readiness behind a stuck M");
    let rt = gort::Runtime::builder().worker_threads(2).build().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (inside_tx, inside_rx) = mpsc::channel::<()>();
    let hog = rt.spawn(async move {
        inside_tx.send(()).unwrap();
        release_rx.recv_timeout(Duration::from_secs(30)).is_ok()
    });
    inside_rx.recv().unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().unwrap();
    let accepted = rt.spawn(async move { listener.accept().await.map(|_| Instant::now()) });
    let start = Instant::now();
    let _client = std::net::TcpStream::connect(addr).expect("connect");
    let at = rt.block_on(accepted).expect("accept task").expect("accept");
    let waited = at.saturating_duration_since(start);
    let _ = release_tx.send(()); // the hog may have given up already
    assert!(
        rt.block_on(hog).unwrap(),
        "the blocked poll ended by itself before the accept: nobody polled the sockets for 30 s"
    );
    assert!(
        waited < Duration::from_secs(10),
        "the accept waited {waited:?} behind a stuck M (sysmon polls every 1-2 ms in this state)"
    );
}

/// Four connections become readable at once while every M is idle, and
/// each readied task then computes for 5 ms. The M that polls them takes
/// the whole batch without waking a helper; the batch is still queued
/// `HELPER_DELAY` (250 us) later, so a helper must come and take a share:
/// the tasks run on both Ms, not one after another on one.
#[test]
fn a_netpoll_batch_of_long_tasks_is_shared_with_a_helper_m() {
    let _dog = watchdog(90, "netpoll batch and helper");
    const N: usize = 4;
    let rt = gort::Runtime::builder().worker_threads(2).build().unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..N {
        clients.push(std::net::TcpStream::connect(addr).unwrap());
        servers.push(std_listener.accept().unwrap().0);
    }
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let tasks: Vec<_> = servers
        .into_iter()
        .map(|s| {
            let threads = threads.clone();
            rt.spawn(async move {
                s.set_nonblocking(true).unwrap();
                let mut s = TcpStream::from_std(s).unwrap();
                let mut byte = [0u8; 1];
                assert_eq!(s.read(&mut byte).await.unwrap(), 1);
                let until = Instant::now() + Duration::from_millis(5);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                threads.lock().unwrap().insert(std::thread::current().id());
            })
        })
        .collect();
    let handle = rt.handle();
    wait_until("the readers to wait and the Ms to go idle", || {
        let m = handle.metrics();
        m.tasks_waiting >= N && m.threads_idle >= 2
    });
    for c in &mut clients {
        c.write_all(b"x").unwrap();
    }
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    let used = threads.lock().unwrap().len();
    assert!(
        used >= 2,
        "the {N} readied tasks (5 ms each) all ran on one M: no helper took a share of the batch"
    );
}
