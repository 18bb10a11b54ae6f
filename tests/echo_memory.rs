//! Memory per connection stays bounded when clients send and never read:
//! the echo server stops reading a connection while its write back is
//! blocked (one 8 KiB buffer each), so its RSS does not grow with what the
//! clients push. Alone in its test binary so RSS is this test's alone.

mod common;
#[allow(dead_code)] // `main` and `serve_with_stall` are the example's
#[path = "../examples/echo-server.rs"]
mod echo_server;

use std::io::Write;

use common::{fill_until_blocked, rss_bytes, watchdog};
use gort::net::TcpListener;

const CLIENTS: usize = 50;
/// What each client tries to push: far more than kernel buffers hold.
const PUSH: usize = 64 << 20;
/// Allowed RSS growth per connection: the 8 KiB buffer, the task and its
/// socket, with a wide margin; an unbounded server grows by megabytes.
const PER_CONNECTION: usize = 256 << 10;

#[test]
#[cfg(target_os = "linux")]
fn clients_that_never_read_do_not_grow_the_server() {
    let _dog = watchdog(120, "clients that never read");
    let rt = gort::Runtime::builder().worker_threads(2).build().unwrap();
    let addr = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        gort::spawn(async move { echo_server::serve(listener).await.unwrap() });
        addr
    });
    // Warm up (thread stacks, allocator arenas) with one normal connection.
    {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"warm").unwrap();
        let mut b = [0u8; 4];
        std::io::Read::read_exact(&mut s, &mut b).unwrap();
    }
    let before = rss_bytes();
    let mut clients = Vec::new();
    let mut pushed = Vec::new();
    for _ in 0..CLIENTS {
        let (s, total) = fill_until_blocked(addr, PUSH);
        pushed.push(total);
        clients.push(s);
    }
    let grown = rss_bytes().saturating_sub(before);
    let most = *pushed.iter().max().unwrap();
    assert!(
        most < PUSH,
        "a client pushed all {PUSH} bytes without reading: the server buffers them"
    );
    assert!(
        grown < CLIENTS * PER_CONNECTION,
        "server RSS grew by {} KiB for {CLIENTS} clients that never read (at most {} KiB \
         each pushed): over {} KiB per connection",
        grown >> 10,
        most >> 10,
        PER_CONNECTION >> 10
    );
    drop(clients);
}
