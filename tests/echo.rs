//! The echo server example (`examples/echo-server.rs`) on a real runtime:
//! hundreds of concurrent clients, and peers that reset, half-close or stop
//! reading: each such connection ends with a logged error, never a panic,
//! and the server goes on serving the others.

mod common;
#[allow(dead_code)] // `main` is the example's
#[path = "../examples/echo-server.rs"]
mod echo_server;

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{log_capture, logged, round_trip, watchdog};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort::net::{TcpListener, TcpStream};

const CLIENTS: usize = 400;
const GENEROUS: Duration = Duration::from_secs(30);

/// Binds a listener and serves it on a task; returns its address.
async fn start_server(write_stall: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    gort::spawn(async move {
        if let Err(e) = echo_server::serve_with_stall(listener, write_stall).await {
            panic!("echo server stopped: {e}");
        }
    });
    addr
}

/// Waits (polling the captured log) until a line mentions both `peer` and
/// `needle`; fails with the log so far after `GENEROUS`.
async fn wait_for_log(peer: SocketAddr, needle: &str) {
    let start = Instant::now();
    let peer = peer.to_string();
    loop {
        let log = logged();
        if log.lines().any(|l| l.contains(&peer) && l.contains(needle)) {
            return;
        }
        assert!(
            start.elapsed() < GENEROUS,
            "no log line with {peer} and {needle:?} after {GENEROUS:?}; log:\n{log}"
        );
        gort::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client that never reads, with the server blocked writing back to it.
fn fill_until_blocked(addr: SocketAddr) -> std::net::TcpStream {
    let (s, total) = common::fill_until_blocked(addr, 1 << 30);
    assert!(
        total < 1 << 30,
        "wrote 1 GiB without blocking: the server buffers without bound"
    );
    s
}

#[gort::test(worker_threads = 2)]
async fn echo_round_trips_with_hundreds_of_concurrent_clients() {
    let _dog = watchdog(120, "400 concurrent echo clients");
    let addr = start_server(Duration::from_secs(10)).await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            gort::spawn(async move {
                let mut s = TcpStream::connect(addr).await?;
                for round in 0..5u8 {
                    let mut msg = [0u8; 64];
                    msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    msg[8] = round;
                    round_trip(&mut s, &msg).await?;
                }
                // Half-close: the server finishes and closes its side.
                s.close().await?;
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await?;
                assert!(rest.is_empty(), "client {i}: bytes after the echo");
                std::io::Result::Ok(())
            })
        })
        .collect();
    let mut failed = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        if let Err(e) = c.await.expect("client task panicked") {
            failed.push(format!("client {i}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} clients failed: {failed:?}",
        failed.len()
    );
}

#[gort::test(worker_threads = 2)]
async fn half_close_gets_every_byte_back_then_eof() {
    let _dog = watchdog(60, "half-close");
    let addr = start_server(Duration::from_secs(10)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let msg: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    s.write_all(&msg).await.unwrap();
    s.close().await.unwrap(); // shutdown(Write)
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), msg.len(), "echo after half-close is incomplete");
    assert!(back == msg, "echo after half-close differs");
}

#[gort::test(worker_threads = 2)]
async fn peer_reset_mid_write_is_logged_and_the_server_goes_on() {
    let _dog = watchdog(60, "peer reset mid-write");
    log_capture();
    let addr = start_server(Duration::from_secs(10)).await;
    let victim = fill_until_blocked(addr);
    let peer = victim.local_addr().unwrap();
    // SO_LINGER with a zero timeout: close sends RST instead of FIN.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd owned by `victim`, and a pointer to a live
    // `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            victim.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    drop(victim);
    wait_for_log(peer, "connection closed on error").await;
    // The server still serves.
    let mut s = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut s, b"still here").await.unwrap();
}

#[gort::test(worker_threads = 2)]
async fn peer_that_stops_reading_is_cut_off_and_others_are_served() {
    let _dog = watchdog(60, "peer stops reading");
    log_capture();
    let addr = start_server(Duration::from_millis(300)).await;
    let staller = fill_until_blocked(addr);
    let peer = staller.local_addr().unwrap();
    // Served while the staller blocks its connection's task.
    let mut s = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut s, b"not blocked by the staller")
        .await
        .unwrap();
    wait_for_log(peer, "peer stopped reading").await;
    // The server closed the stalled connection: draining it ends in EOF or
    // a reset, not in more blocking.
    staller.set_nonblocking(false).unwrap();
    staller.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut sink = [0u8; 64 * 1024];
    let end = loop {
        match (&staller).read(&mut sink) {
            Ok(0) => break "eof",
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("stalled connection was not closed by the server: {e}"),
        }
    };
    assert!(end == "eof" || end == "reset");
    round_trip(&mut s, b"and after").await.unwrap();
}
