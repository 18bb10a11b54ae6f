//! No descriptor leaks: 10,000 connections opened and closed through one
//! driver leave the process with exactly the descriptors it had before.
//!
//! Alone in its own test binary (its own process), so no other test opens
//! descriptors while it counts.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{Runtime, spawn_local, within};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort_netpoll::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 10_000;
const CLIENTS: usize = 50;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("reading /proc/self/fd (Linux only)")
        .count()
}

#[test]
#[cfg(target_os = "linux")]
fn ten_thousand_connections_leak_no_descriptors() {
    within(120, "10,000 connections", || {
        let before = open_fds();
        let rt = Runtime::new();
        let handle = rt.handle();
        assert!(!handle.has_registrations());
        let served = Rc::new(Cell::new(0usize));
        let served2 = served.clone();
        rt.run_pool(move |spawner| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let sp = spawner.clone();
            spawn_local(&spawner, async move {
                loop {
                    let (mut s, _) = listener.accept().await.unwrap();
                    let served = served2.clone();
                    spawn_local(&sp, async move {
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await.unwrap();
                        s.write_all(&b).await.unwrap();
                        served.set(served.get() + 1);
                    });
                }
            });
            let (tx, mut rx) = futures::channel::mpsc::unbounded();
            for _ in 0..CLIENTS {
                let tx = tx.clone();
                spawn_local(&spawner, async move {
                    for _ in 0..CONNECTIONS / CLIENTS {
                        let mut c = TcpStream::connect(addr).await.unwrap();
                        c.write_all(b"?").await.unwrap();
                        let mut b = [0u8; 1];
                        c.read_exact(&mut b).await.unwrap();
                    }
                    tx.unbounded_send(()).unwrap();
                });
            }
            for _ in 0..CLIENTS {
                futures::StreamExt::next(&mut rx).await.unwrap();
            }
        });
        assert_eq!(served.get(), CONNECTIONS);
        assert_eq!(
            handle.registration_count(),
            0,
            "every socket deregistered once dropped"
        );
        assert!(!handle.has_registrations());
        drop(handle);
        rt.shutdown();
        let after = open_fds();
        assert_eq!(
            after,
            before,
            "descriptors before {before}, after {after}: leaked {}",
            after as isize - before as isize
        );
    });
}
