//! No descriptor leaked: 10,000 connections opened and closed through the
//! example echo server on a gort runtime leave the process with the
//! descriptors it had. Alone in its test binary so nothing else opens
//! descriptors while it counts.

mod common;
#[allow(dead_code)] // `main` and `serve_with_stall` are the example's
#[path = "../examples/echo-server.rs"]
mod echo_server;

use std::time::{Duration, Instant};

use common::{open_fds, round_trip, watchdog};
use futures::io::AsyncReadExt;
use gort::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 10_000;
const CLIENTS: usize = 50;

#[test]
#[cfg(target_os = "linux")]
fn ten_thousand_connections_leak_no_descriptor() {
    let _dog = watchdog(240, "10,000 connections");
    let before = open_fds();
    let rt = gort::Runtime::builder().worker_threads(2).build().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        gort::spawn(async move { echo_server::serve(listener).await.unwrap() });
        let serving = open_fds();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                gort::spawn(async move {
                    for i in 0..CONNECTIONS / CLIENTS {
                        let mut s = TcpStream::connect(addr).await.unwrap();
                        round_trip(&mut s, &[c as u8, i as u8])
                            .await
                            .unwrap_or_else(|e| panic!("client {c}, connection {i}: {e}"));
                        // Close and wait for the server's close, so that the
                        // server side is gone too when the count is taken.
                        futures::io::AsyncWriteExt::close(&mut s).await.unwrap();
                        let mut rest = Vec::new();
                        s.read_to_end(&mut rest).await.unwrap();
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        // The server drops its side just after sending its FIN; its tasks
        // get a bounded time to finish.
        let start = Instant::now();
        while open_fds() != serving {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} descriptors more than before the connections, 10 s after the \
                 clients left: the server leaks connections",
                open_fds() as isize - serving as isize
            );
            gort::time::sleep(Duration::from_millis(5)).await;
        }
    });
    drop(rt);
    let after = open_fds();
    assert_eq!(
        after,
        before,
        "{CONNECTIONS} connections through a gort server leaked {} descriptors",
        after as isize - before as isize
    );
}
