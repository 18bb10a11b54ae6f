//! TCP through the netpoller: round trips, concurrency, half-close, reset,
//! split halves, the readiness API and constructor errors.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

use common::{Runtime, serve_one, spawn_local, within};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort_netpoll::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 128;
const ROUNDS: usize = 20;

/// Echoes until the peer closes its write side.
async fn echo(mut s: TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        s.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

#[test]
fn round_trip_with_many_concurrent_connections() {
    within(60, "128 concurrent echo connections", || {
        let rt = Runtime::new();
        let done = Rc::new(Cell::new(0usize));
        let done2 = done.clone();
        rt.run_pool(move |spawner| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server_spawner = spawner.clone();
            spawn_local(&spawner, async move {
                loop {
                    let (s, _) = listener.accept().await.unwrap();
                    spawn_local(&server_spawner, async move {
                        echo(s).await.unwrap();
                    });
                }
            });
            let (tx, mut rx) = futures::channel::mpsc::unbounded();
            for c in 0..CONNECTIONS {
                let tx = tx.clone();
                let done = done2.clone();
                spawn_local(&spawner, async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    s.set_nodelay(true).unwrap();
                    for r in 0..ROUNDS {
                        let msg = format!("conn {c} round {r} {}", "x".repeat(c));
                        s.write_all(msg.as_bytes()).await.unwrap();
                        let mut back = vec![0u8; msg.len()];
                        s.read_exact(&mut back).await.unwrap();
                        assert_eq!(back, msg.as_bytes(), "echo mismatch on connection {c}");
                    }
                    done.set(done.get() + 1);
                    tx.unbounded_send(()).unwrap();
                });
            }
            for _ in 0..CONNECTIONS {
                futures::StreamExt::next(&mut rx).await.unwrap();
            }
        });
        assert_eq!(done.get(), CONNECTIONS, "every client finishes its rounds");
    });
}

#[test]
fn half_close_delivers_eof_and_still_allows_the_reply() {
    within(30, "half-close", || {
        let rt = Runtime::new();
        rt.run_pool(|spawner| async move {
            let addr = serve_one(&spawner, |mut s| async move {
                let mut all = Vec::new();
                s.read_to_end(&mut all).await.unwrap(); // ends at the client's FIN
                s.write_all(format!("got {} bytes", all.len()).as_bytes())
                    .await
                    .unwrap();
                s.close().await.unwrap();
            })
            .await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&[7u8; 10_000]).await.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).await.unwrap();
            assert_eq!(reply, "got 10000 bytes");
        });
    });
}

#[test]
fn peer_reset_wakes_the_reader_with_an_error() {
    within(30, "peer reset", || {
        let rt = Runtime::new();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let resetter = std::thread::spawn(move || {
            let (s, _) = std_listener.accept().unwrap();
            let mut one = [0u8; 1];
            (&s).read_exact(&mut one).unwrap(); // the client is now parked on read
            set_linger_zero(&s);
            drop(s); // RST instead of FIN
        });
        rt.block_on(async {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"!").await.unwrap();
            let mut buf = [0u8; 16];
            let err = c
                .read(&mut buf)
                .await
                .expect_err("read after RST must fail");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        });
        resetter.join().unwrap();
    });
}

#[test]
fn peer_reset_wakes_a_writer_parked_on_a_full_buffer() {
    within(30, "reset while writer parked", || {
        let rt = Runtime::new();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (parked_tx, parked_rx) = std::sync::mpsc::channel::<()>();
        let resetter = std::thread::spawn(move || {
            let (s, _) = std_listener.accept().unwrap();
            parked_rx.recv().unwrap(); // the writer has filled both buffers
            set_linger_zero(&s);
            drop(s);
        });
        rt.block_on(async {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let chunk = vec![1u8; 256 << 10];
            let mut parked = Some(parked_tx);
            // Write until a write parks, then let the peer reset.
            let err = loop {
                let write = c.write(&chunk);
                let r = futures::future::poll_fn({
                    let mut write = Box::pin(write);
                    let parked = &mut parked;
                    move |cx| {
                        let r = write.as_mut().poll(cx);
                        if r.is_pending() {
                            if let Some(tx) = parked.take() {
                                tx.send(()).unwrap();
                            }
                        }
                        r
                    }
                })
                .await;
                if let Err(e) = r {
                    break e;
                }
            };
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ),
                "{err}"
            );
        });
        resetter.join().unwrap();
    });
}

fn set_linger_zero(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `s` is an open socket for the duration of the call and
    // `linger` is a valid `struct linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_LINGER): {}",
        io::Error::last_os_error()
    );
}

#[test]
fn connect_refused_is_an_error_not_a_hang() {
    within(30, "connect to a closed port", || {
        let rt = Runtime::new();
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        }; // closed again: nothing listens there now
        let err = rt
            .block_on(TcpStream::connect(addr))
            .expect_err("connect must fail");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn borrowed_and_owned_split_halves() {
    within(30, "split halves", || {
        let rt = Runtime::new();
        rt.run_pool(|spawner| async move {
            let addr = serve_one(&spawner, |mut s| async move {
                // Path syntax: `s.split()` would pick futures' `AsyncReadExt::split(self)`,
                // which method resolution tries before our `&mut self` one.
                let (mut r, mut w) = TcpStream::split(&mut s);
                // Copy from the read half to the write half concurrently.
                futures::io::copy(&mut r, &mut w).await.unwrap();
                w.close().await.unwrap();
            })
            .await;
            let c = TcpStream::connect(addr).await.unwrap();
            let (mut r, mut w) = c.into_split();
            let writer = async move {
                for i in 0..100u32 {
                    w.write_all(&i.to_le_bytes()).await.unwrap();
                }
                w // dropping it would shut down writing; keep it for reunite
            };
            let reader = async move {
                let mut got = vec![0u8; 400];
                r.read_exact(&mut got).await.unwrap();
                (r, got)
            };
            let (w, (r, got)) = futures::future::join(writer, reader).await;
            let want: Vec<u8> = (0..100u32).flat_map(|i| i.to_le_bytes()).collect();
            assert_eq!(got, want);
            let mut whole = r.reunite(w).expect("halves of one stream reunite");
            whole.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            whole.read_to_end(&mut rest).await.unwrap();
            assert!(
                rest.is_empty(),
                "echo server sends nothing more after our FIN"
            );
        });
    });
}

#[test]
fn reunite_rejects_halves_of_different_streams() {
    let rt = Runtime::new();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let a = TcpStream::connect(addr).await.unwrap();
        let b = TcpStream::connect(addr).await.unwrap();
        let (ra, _wa) = a.into_split();
        let (_rb, wb) = b.into_split();
        let err = ra.reunite(wb).expect_err("different streams");
        assert!(err.to_string().contains("not from the same socket"));
    });
}

#[test]
fn readiness_api_readable_writable_try_read_try_write() {
    within(30, "readiness API", || {
        let rt = Runtime::new();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, c.local_addr().unwrap());
            assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());

            // Nothing sent yet: try_read must say WouldBlock (the optimistic
            // first try hits the kernel and clears readiness).
            let mut buf = [0u8; 8];
            let e = s.try_read(&mut buf).expect_err("no data yet");
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            // And again without a syscall.
            let e = s.try_read(&mut buf).expect_err("still no data");
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

            c.writable().await.unwrap();
            assert_eq!(c.try_write(b"hello").unwrap(), 5);
            loop {
                s.readable().await.unwrap();
                match s.try_read(&mut buf) {
                    Ok(n) => {
                        assert_eq!(&buf[..n], b"hello");
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("try_read: {e}"),
                }
            }
        });
    });
}

#[test]
fn nodelay_local_addr_and_std_conversions() {
    let rt = Runtime::new();
    rt.block_on(async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listener = TcpListener::from_std(std_listener).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let c = TcpStream::connect(addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_nodelay(false).unwrap();
        assert!(!c.nodelay().unwrap());
        let (s, _) = listener.accept().await.unwrap();
        assert_eq!(rt.handle().registration_count(), 3);

        // into_std deregisters; the std stream still works.
        let mut std_c = c.into_std().unwrap();
        assert_eq!(rt.handle().registration_count(), 2);
        std_c.set_nonblocking(false).unwrap();
        std_c.write_all(b"ping").unwrap();
        let mut s = s;
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");

        // ... and from_std registers it again.
        let mut c = TcpStream::from_std(std_c).unwrap();
        s.write_all(b"pong").await.unwrap();
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        let l = listener.into_std().unwrap();
        assert_eq!(l.local_addr().unwrap(), addr);
    });
}

#[test]
fn outside_a_runtime_constructors_fail_clearly() {
    let err = futures::executor::block_on(TcpListener::bind("127.0.0.1:0"))
        .expect_err("no runtime entered");
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert_eq!(err.to_string(), "must be called from within a gort runtime");
    let err = futures::executor::block_on(TcpStream::connect("127.0.0.1:1"))
        .expect_err("no runtime entered");
    assert_eq!(err.to_string(), "must be called from within a gort runtime");
    let std_stream = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap()
    };
    assert!(TcpStream::from_std(std_stream).is_err());
}

#[test]
fn bad_address_is_an_error() {
    let rt = Runtime::new();
    let err = rt
        .block_on(TcpListener::bind("not an address"))
        .expect_err("unparsable address");
    assert_ne!(err.kind(), io::ErrorKind::Other, "{err}");
}

#[test]
fn short_read_with_fin_already_queued_still_sees_eof() {
    within(30, "short read then EOF", || {
        // No poller thread: this test decides when events are dispatched.
        let driver = gort_netpoll::Driver::new().unwrap();
        let _g = gort_netpoll::enter(driver.handle());
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut std_c = std::net::TcpStream::connect(std_l.local_addr().unwrap()).unwrap();
        let (std_s, _) = std_l.accept().unwrap();
        std_c.write_all(b"tail").unwrap();
        std_c.shutdown(Shutdown::Write).unwrap();
        let mut s = TcpStream::from_std(std_s).unwrap();
        // Data and FIN are queued: the registration edge reports both
        // (READABLE | READ_CLOSED) once dispatched.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        driver.poll(Some(deadline), &mut Vec::new()).unwrap();

        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut buf = [0u8; 64];
        let mut read = |s: &mut TcpStream| {
            futures::io::AsyncRead::poll_read(std::pin::Pin::new(s), &mut cx, &mut buf)
        };
        // The short read clears READABLE; only the kept READ_CLOSED bit
        // lets the next read find the EOF instead of parking for ever.
        assert!(matches!(read(&mut s), std::task::Poll::Ready(Ok(4))));
        match read(&mut s) {
            std::task::Poll::Ready(Ok(0)) => {}
            other => panic!("expected EOF after the short read, got {other:?}"),
        }
    });
}

#[test]
fn full_send_buffer_parks_the_writer_until_the_peer_reads() {
    const TOTAL: usize = 8 << 20;
    within(60, "8 MiB through a slow reader", || {
        let rt = Runtime::new();
        rt.run_pool(|spawner| async move {
            let addr = serve_one(&spawner, |mut s| async move {
                let chunk = vec![0xabu8; 1 << 20];
                for _ in 0..TOTAL / chunk.len() {
                    // Each write_all outruns the reader: short writes, then
                    // parking on a full send buffer.
                    s.write_all(&chunk).await.unwrap();
                }
            })
            .await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut total = 0;
            loop {
                let n = c.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                assert!(buf[..n].iter().all(|&b| b == 0xab));
                total += n;
            }
            assert_eq!(total, TOTAL);
        });
    });
}

#[test]
fn several_task_threads_share_one_driver() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 16;
    within(60, "4 threads x 16 connections", || {
        let rt = Runtime::new();
        let handle = rt.handle();
        let server = rt.block_on(async { TcpListener::bind("127.0.0.1:0").await.unwrap() });
        let addr = server.local_addr().unwrap();
        // The server runs on its own thread, the clients on THREADS more:
        // every wakeup crosses from the poller thread to a task thread.
        let server_handle = handle.clone();
        let server_thread = std::thread::spawn(move || {
            let _g = gort_netpoll::enter(server_handle);
            let mut pool = futures::executor::LocalPool::new();
            let sp = pool.spawner();
            pool.run_until(async move {
                for _ in 0..THREADS * PER_THREAD {
                    let (s, _) = server.accept().await.unwrap();
                    spawn_local(&sp, async move {
                        echo(s).await.unwrap();
                    });
                }
            });
            pool.run(); // until every echo task has seen its client's FIN
        });
        let clients: Vec<_> = (0..THREADS)
            .map(|t| {
                let h = handle.clone();
                std::thread::spawn(move || {
                    let _g = gort_netpoll::enter(h);
                    let mut pool = futures::executor::LocalPool::new();
                    let sp = pool.spawner();
                    for c in 0..PER_THREAD {
                        spawn_local(&sp, async move {
                            let mut s = TcpStream::connect(addr).await.unwrap();
                            for r in 0..50u32 {
                                let msg = [t as u8, c as u8, r as u8, 0xee];
                                s.write_all(&msg).await.unwrap();
                                let mut back = [0u8; 4];
                                s.read_exact(&mut back).await.unwrap();
                                assert_eq!(back, msg);
                            }
                        });
                    }
                    pool.run();
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        server_thread.join().expect("server thread");
        assert_eq!(handle.registration_count(), 0, "all sockets deregistered");
    });
}
