//! UDP and Unix-domain sockets through the netpoller.

mod common;

use std::io;

use common::{Runtime, spawn_local, within};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort_netpoll::net::{UdpSocket, UnixListener, UnixStream};

#[test]
fn udp_send_to_recv_from_round_trip() {
    within(30, "UDP round trip", || {
        let rt = Runtime::new();
        rt.run_pool(|spawner| async move {
            let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let server_addr = server.local_addr().unwrap();
            spawn_local(&spawner, async move {
                let mut buf = [0u8; 1500];
                for _ in 0..50 {
                    let (n, from) = server.recv_from(&mut buf).await.unwrap();
                    server.send_to(&buf[..n], from).await.unwrap();
                }
            });
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut buf = [0u8; 1500];
            for i in 0..50u32 {
                let msg = i.to_be_bytes();
                client.send_to(&msg, server_addr).await.unwrap();
                // Parks in recv_from until the echo arrives (no busy loop:
                // the server's reply is what wakes us).
                let (n, from) = client.recv_from(&mut buf).await.unwrap();
                assert_eq!(from, server_addr);
                assert_eq!(&buf[..n], &msg, "datagram {i}");
            }
        });
    });
}

#[test]
fn udp_connected_send_recv_and_peer_addr() {
    within(30, "connected UDP", || {
        let rt = Runtime::new();
        rt.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            assert_eq!(
                a.peer_addr().unwrap_err().kind(),
                io::ErrorKind::NotConnected
            );
            a.connect(ba).await.unwrap();
            b.connect(aa).await.unwrap();
            assert_eq!(a.peer_addr().unwrap(), ba);
            assert_eq!(a.send(b"to b").await.unwrap(), 4);
            let mut buf = [0u8; 16];
            assert_eq!(b.recv(&mut buf).await.unwrap(), 4);
            assert_eq!(&buf[..4], b"to b");
            b.send(b"back").await.unwrap();
            let n = a.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"back");
        });
    });
}

#[test]
fn unix_listener_round_trip() {
    within(30, "Unix round trip", || {
        let dir = std::env::temp_dir().join(format!("gort-netpoll-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("echo.sock");
        let _ = std::fs::remove_file(&path);
        let rt = Runtime::new();
        let p2 = path.clone();
        rt.run_pool(move |spawner| async move {
            let listener = UnixListener::bind(&p2).unwrap();
            assert_eq!(
                listener.local_addr().unwrap().as_pathname(),
                Some(p2.as_path())
            );
            spawn_local(&spawner, async move {
                for _ in 0..3 {
                    let (mut s, _) = listener.accept().await.unwrap();
                    let mut buf = Vec::new();
                    s.read_to_end(&mut buf).await.unwrap();
                    buf.reverse();
                    s.write_all(&buf).await.unwrap();
                }
            });
            for i in 0..3 {
                let mut c = UnixStream::connect(&p2).await.unwrap();
                assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(p2.as_path()));
                let msg = format!("message {i}");
                c.write_all(msg.as_bytes()).await.unwrap();
                c.close().await.unwrap(); // shutdown(Write)
                let mut back = String::new();
                c.read_to_string(&mut back).await.unwrap();
                assert_eq!(back, msg.chars().rev().collect::<String>());
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn unix_pair_both_directions_and_vectored_write() {
    within(30, "Unix pair", || {
        let rt = Runtime::new();
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            let parts = [io::IoSlice::new(b"abc"), io::IoSlice::new(b"def")];
            let n = a.write_vectored(&parts).await.unwrap();
            assert_eq!(n, 6, "one writev carries both slices on an empty socket");
            let mut got = [0u8; 6];
            b.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"abcdef");
            b.write_all(b"xyz").await.unwrap();
            a.readable().await.unwrap();
            let mut small = [0u8; 3];
            assert_eq!(a.try_read(&mut small).unwrap(), 3);
            assert_eq!(&small, b"xyz");
        });
    });
}

#[test]
fn unix_constructors_outside_a_runtime_fail_clearly() {
    let err = UnixStream::pair().expect_err("no runtime entered");
    assert_eq!(err.to_string(), "must be called from within a gort runtime");
    let err = futures::executor::block_on(UdpSocket::bind("127.0.0.1:0")).expect_err("no runtime");
    assert_eq!(err.kind(), io::ErrorKind::Other);
}
