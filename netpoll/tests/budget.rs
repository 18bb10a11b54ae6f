//! Sockets spend the poll budget: an always-ready socket makes its task
//! yield after `budget::INITIAL` operations.

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};

use common::{CountWakes, Runtime, connected_pair};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use gort_netpoll::budget::{self, INITIAL};

#[test]
fn always_writable_socket_yields_after_the_budget() {
    let rt = Runtime::new();
    let (mut c, _s) = connected_pair(&rt);
    let (waker, counter) = CountWakes::waker();
    let mut cx = Context::from_waker(&waker);
    budget::budget(|| {
        for i in 0..INITIAL {
            match Pin::new(&mut c).poll_write(&mut cx, b"x") {
                Poll::Ready(Ok(1)) => {}
                other => panic!("write {i} should be Ready(Ok(1)), got {other:?}"),
            }
        }
        assert!(
            Pin::new(&mut c).poll_write(&mut cx, b"x").is_pending(),
            "write {} must yield: the budget is spent",
            INITIAL as usize + 1
        );
    });
    assert_eq!(
        counter.count(),
        1,
        "the yielding socket wakes its task so it is polled again"
    );
    // A fresh budget (the next task poll) lets it proceed.
    budget::budget(|| {
        assert!(Pin::new(&mut c).poll_write(&mut cx, b"x").is_ready());
    });
}

#[test]
fn always_readable_socket_yields_after_the_budget() {
    let rt = Runtime::new();
    let (c, mut s) = connected_pair(&rt);
    let total = 2 * INITIAL as usize;
    let mut std_c = c.into_std().unwrap();
    std_c.set_nonblocking(false).unwrap();
    std::io::Write::write_all(&mut std_c, &vec![5u8; total]).unwrap();
    // Wait (parked, not spinning) until the first byte is in.
    let mut one = [0u8; 1];
    rt.block_on(s.read_exact(&mut one)).unwrap();
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut ready = 0;
    budget::budget(|| {
        loop {
            match Pin::new(&mut s).poll_read(&mut cx, &mut one) {
                Poll::Ready(Ok(1)) => ready += 1,
                Poll::Ready(other) => panic!("unexpected read result {other:?}"),
                Poll::Pending => break,
            }
        }
    });
    assert_eq!(
        ready, INITIAL as usize,
        "data remained, so only the budget can have stopped the reads"
    );
}

#[test]
fn a_pending_operation_is_not_charged() {
    let rt = Runtime::new();
    let (_c, mut s) = connected_pair(&rt);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 8];
    budget::budget(|| {
        for _ in 0..1000 {
            assert!(Pin::new(&mut s).poll_read(&mut cx, &mut buf).is_pending());
        }
        assert_eq!(budget::current().remaining(), Some(INITIAL));
    });
}
