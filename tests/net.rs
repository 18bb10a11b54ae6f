//! UDP and Unix-socket round trips through `gort::net` on a real runtime.

mod common;

use common::watchdog;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort::net::{UdpSocket, UnixListener, UnixStream};

#[gort::test(worker_threads = 2)]
async fn udp_round_trips_between_tasks() {
    let _dog = watchdog(60, "udp round trips");
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let echo = gort::spawn(async move {
        let mut buf = [0u8; 1500];
        for _ in 0..100 {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(&buf[..n], from).await.unwrap();
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(addr).await.unwrap();
    let mut buf = [0u8; 1500];
    for i in 0..100u32 {
        let msg = i.to_le_bytes();
        client.send(&msg).await.unwrap();
        let n = client.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &msg, "datagram {i} came back different");
    }
    echo.await.unwrap();
}

#[gort::test(worker_threads = 2)]
async fn unix_stream_round_trips_through_a_listener() {
    let _dog = watchdog(60, "unix round trips");
    let dir = std::env::temp_dir().join(format!("gort-net-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = gort::spawn(async move {
        for _ in 0..20 {
            let (mut s, _) = listener.accept().await.unwrap();
            gort::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n]).await.unwrap();
                }
            });
        }
    });
    let clients: Vec<_> = (0..20u8)
        .map(|i| {
            let path = path.clone();
            gort::spawn(async move {
                let mut s = UnixStream::connect(&path).await.unwrap();
                for round in 0..10u8 {
                    let msg = [i, round, 0xAB, 0xCD];
                    s.write_all(&msg).await.unwrap();
                    let mut back = [0u8; 4];
                    s.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, msg);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    server.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[gort::test(worker_threads = 2)]
async fn unix_pair_round_trip() {
    let _dog = watchdog(60, "unix pair");
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let peer = gort::spawn(async move {
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).await.unwrap();
        b.write_all(&buf).await.unwrap();
    });
    a.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    a.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    peer.await.unwrap();
}
