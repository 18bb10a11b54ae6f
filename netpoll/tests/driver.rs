//! The driver itself: shutdown, several drivers, deadlines, unpark, and the
//! one-poller rule.

mod common;

use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use common::{CountWakes, Runtime, connected_pair, within};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort_netpoll::net::{TcpListener, TcpStream};
use gort_netpoll::{Driver, enter};

const SHUTDOWN_MSG: &str = "the runtime that owned this socket has shut down";

/// Polls `inner`, sending on `parked` the first time it returns Pending, so
/// the test knows the task is parked without sleeping.
struct SignalPending<F> {
    inner: Pin<Box<F>>,
    parked: Option<mpsc::Sender<()>>,
}

impl<F: Future> Future for SignalPending<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let r = self.inner.as_mut().poll(cx);
        if r.is_pending() {
            if let Some(tx) = self.parked.take() {
                tx.send(()).unwrap();
            }
        }
        r
    }
}

#[test]
fn dropping_the_driver_fails_waiting_and_later_operations_clearly() {
    within(30, "driver drop with a parked reader", || {
        let rt = Runtime::new();
        let handle = rt.handle();
        let (mut c, s) = connected_pair(&rt);
        let (tx, rx) = mpsc::channel();
        let h2 = handle.clone();
        let reader = thread::spawn(move || {
            let _g = enter(h2);
            let mut s = s;
            let mut buf = [0u8; 8];
            let res = futures::executor::block_on(SignalPending {
                inner: Box::pin(async { s.read(&mut buf).await }),
                parked: Some(tx),
            });
            (res, s)
        });
        rx.recv().expect("reader parks on an empty socket");
        rt.shutdown(); // drops the Driver while the reader waits
        let (res, s) = reader.join().unwrap();
        let err = res.expect_err("a parked read must fail when its driver goes");
        assert_eq!(err.to_string(), SHUTDOWN_MSG);

        // Later operations fail the same way, at once.
        let _g = enter(handle.clone());
        let err = futures::executor::block_on(c.write_all(b"x")).expect_err("write after shutdown");
        assert_eq!(err.to_string(), SHUTDOWN_MSG);
        assert!(handle.is_shut_down());
        assert_eq!(handle.registration_count(), 0);
        let err = futures::executor::block_on(TcpListener::bind("127.0.0.1:0")).expect_err("bind");
        assert_eq!(err.to_string(), SHUTDOWN_MSG);
        drop(s); // deregistering after shutdown is quiet, not a panic
    });
}

#[test]
fn two_drivers_are_independent() {
    within(30, "two drivers", || {
        let a = Runtime::new();
        let b = Runtime::new();
        let (a_c, _a_s) = connected_pair(&a);
        let (mut b_c, mut b_s) = connected_pair(&b);
        assert_eq!(a.handle().registration_count(), 2);
        assert_eq!(b.handle().registration_count(), 2);
        assert!(a.handle().has_registrations());
        let a_handle = a.handle();
        a.shutdown();
        b.block_on(async {
            b_c.write_all(b"still here").await.unwrap();
            let mut got = [0u8; 10];
            b_s.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"still here");
        });
        assert!(
            !a_handle.has_registrations(),
            "a dropped driver tracks nothing"
        );
        let _g = enter(a_handle);
        let err = a_c.try_write(b"x").expect_err("driver A is gone");
        assert_eq!(err.to_string(), SHUTDOWN_MSG);
    });
}

#[test]
fn poll_collects_wakers_without_waking_them() {
    within(30, "poll returns wakers", || {
        let driver = Driver::new().unwrap();
        let _g = enter(driver.handle());
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut std_c = std::net::TcpStream::connect(std_l.local_addr().unwrap()).unwrap();
        let (std_s, _) = std_l.accept().unwrap();
        let mut s = TcpStream::from_std(std_s).unwrap();

        let (waker, counter) = CountWakes::waker();
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 4];
        let mut read = s.read(&mut buf);
        assert!(Pin::new(&mut read).poll(&mut cx).is_pending());

        std_c.write_all(b"ping").unwrap();
        let mut ready = Vec::new();
        let mut pushed = 0;
        while pushed == 0 {
            pushed = driver.poll(None, &mut ready).unwrap();
        }
        assert_eq!(pushed, 1, "exactly the parked reader");
        assert_eq!(ready.len(), 1);
        assert_eq!(counter.count(), 0, "poll must not wake");
        assert!(ready[0].will_wake(&waker));
        match Pin::new(&mut read).poll(&mut cx) {
            Poll::Ready(Ok(4)) => assert_eq!(&buf, b"ping"),
            other => panic!("read after the event: {other:?}"),
        }
        assert!(driver.last_poll().is_some());
    });
}

#[test]
fn deadlines_are_sub_millisecond() {
    let driver = Driver::new().unwrap();
    assert!(driver.last_poll().is_none());
    let mut ready = Vec::new();
    let mut late = Vec::new();
    for _ in 0..200 {
        // 1.2 ms: a poll rounded up to whole milliseconds would end at 2 ms,
        // 0.8 ms late.
        let deadline = Instant::now() + Duration::from_micros(1200);
        driver.poll(Some(deadline), &mut ready).unwrap();
        let now = Instant::now();
        assert!(now >= deadline, "poll returned {:?} early", deadline - now);
        late.push(now - deadline);
    }
    late.sort();
    let (p50, p99) = (late[late.len() / 2], late[late.len() * 99 / 100]);
    eprintln!("poll deadline lateness: p50 {p50:?} p99 {p99:?}");
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert!(
            p50 < Duration::from_micros(500),
            "median lateness {p50:?}: the timerfd deadline is not working"
        );
    }
    assert!(driver.last_poll().unwrap() <= Instant::now());
}

#[test]
fn past_deadline_does_not_block() {
    within(10, "non-blocking poll", || {
        let driver = Driver::new().unwrap();
        let mut ready = Vec::new();
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(driver.poll(Some(Instant::now()), &mut ready).unwrap(), 0);
        }
        assert!(!driver.is_polling());
        assert!(start.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn unpark_interrupts_a_blocked_poll() {
    within(30, "unpark a blocked poll", || {
        let driver = Arc::new(Driver::new().unwrap());
        let handle = driver.handle();
        let d2 = driver.clone();
        let poller = thread::spawn(move || d2.poll(None, &mut Vec::new()).unwrap());
        while !handle.is_polling() {
            thread::yield_now();
        }
        // A second caller must not block while the first polls.
        assert_eq!(driver.poll(None, &mut Vec::new()).unwrap(), 0);
        handle.unpark();
        assert_eq!(poller.join().unwrap(), 0);
        assert!(!handle.is_polling());
    });
}

#[test]
fn unpark_before_poll_is_not_lost_and_is_consumed() {
    within(30, "unpark before poll", || {
        let driver = Driver::new().unwrap();
        let handle = driver.handle();
        handle.unpark();
        handle.unpark(); // coalesces
        // Would block forever if the unpark had been dropped.
        driver.poll(None, &mut Vec::new()).unwrap();
        // Consumed: the next poll waits for its deadline.
        let deadline = Instant::now() + Duration::from_millis(30);
        driver.poll(Some(deadline), &mut Vec::new()).unwrap();
        assert!(
            Instant::now() >= deadline,
            "a consumed unpark must not end later polls early"
        );
    });
}

#[test]
fn try_current_reports_no_runtime() {
    let err = gort_netpoll::Handle::try_current().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Other);
    let r = std::panic::catch_unwind(gort_netpoll::Handle::current);
    let msg = r.unwrap_err();
    let msg = msg
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| msg.downcast_ref::<&str>().copied())
        .unwrap();
    assert_eq!(msg, "must be called from within a gort runtime");
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Driver>();
    send_sync::<gort_netpoll::Handle>();
    send_sync::<TcpStream>();
    send_sync::<TcpListener>();
    send_sync::<gort_netpoll::net::UdpSocket>();
    send_sync::<gort_netpoll::net::UnixStream>();
    send_sync::<gort_netpoll::net::OwnedReadHalf>();
    send_sync::<gort_netpoll::net::OwnedWriteHalf>();
}

#[test]
fn repeating_a_deadline_after_an_early_wake_still_ends_on_time() {
    within(30, "same deadline twice", || {
        let driver = Arc::new(Driver::new().unwrap());
        let handle = driver.handle();
        let deadline = Instant::now() + Duration::from_millis(200);
        let waker_thread = thread::spawn(move || {
            while !handle.is_polling() {
                thread::yield_now();
            }
            handle.unpark();
        });
        // Ends early (the unpark), leaving the timer armed for `deadline`.
        driver.poll(Some(deadline), &mut Vec::new()).unwrap();
        waker_thread.join().unwrap();
        assert!(
            Instant::now() < deadline,
            "the unpark should end the first poll early"
        );
        // Same deadline: the armed timer is reused, not lost.
        driver.poll(Some(deadline), &mut Vec::new()).unwrap();
        let now = Instant::now();
        assert!(now >= deadline, "returned {:?} early", deadline - now);
        assert!(
            now < deadline + Duration::from_millis(100),
            "returned {:?} late",
            now - deadline
        );
    });
}
