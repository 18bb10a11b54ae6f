//! Reactor cost, single thread, gort-netpoll vs tokio.
//!
//! Not the project's echo benchmark (that one needs the executor and a
//! client in another process). This isolates what netpoll owns: N echo
//! connections, client and server tasks all on one thread, 64-byte
//! request/response round trips for a fixed time. gort side: a
//! `futures::executor::LocalPool` that calls `Driver::poll` when it stalls;
//! tokio side: a current-thread runtime. Prints round trips per second.
//!
//! `cargo bench -p gort-netpoll --bench echo_local [-- SECONDS] [gort|tokio] [conns=N]`

// Under `--cfg loom` the bench is compiled out: netpoll's atomics are then
// loom's, which panic outside `loom::model`, and tokio is not a dependency
// (netpoll/Cargo.toml). A `main` remains so that the target still builds.
#[cfg(loom)]
fn main() {
    eprintln!("echo_local: not built under --cfg loom; run it from a normal build");
}

#[cfg(not(loom))]
fn main() -> std::io::Result<()> {
    bench::main()
}

#[cfg(not(loom))]
mod bench {
    use std::cell::Cell;
    use std::future::Future;
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use futures::executor::LocalPool;
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use futures::task::LocalSpawnExt;
    use gort_netpoll::net::{TcpListener, TcpStream};
    use gort_netpoll::{Driver, budget, enter};

    const MSG: usize = 64;

    /// Gives each poll of the wrapped task a fresh budget, as the executor does.
    struct Budgeted<F>(Pin<Box<F>>);

    impl<F: Future> Future for Budgeted<F> {
        type Output = F::Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            budget::budget(|| self.0.as_mut().poll(cx))
        }
    }

    fn spawn(spawner: &futures::executor::LocalSpawner, f: impl Future<Output = ()> + 'static) {
        spawner.spawn_local(Budgeted(Box::pin(f))).unwrap();
    }

    fn gort_run(conns: usize, secs: f64) -> io::Result<u64> {
        let driver = Driver::new()?;
        let _g = enter(driver.handle());
        let mut pool = LocalPool::new();
        let spawner = pool.spawner();
        let count = Rc::new(Cell::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let done = Rc::new(Cell::new(0usize));
        let addr: Rc<Cell<Option<SocketAddr>>> = Rc::new(Cell::new(None));
        {
            let (spawner2, addr) = (spawner.clone(), addr.clone());
            spawn(&spawner, async move {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr.set(Some(l.local_addr().unwrap()));
                loop {
                    let (mut s, _) = l.accept().await.unwrap();
                    s.set_nodelay(true).unwrap();
                    spawn(&spawner2, async move {
                        let mut buf = [0u8; MSG];
                        while s.read_exact(&mut buf).await.is_ok() {
                            if s.write_all(&buf).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
        }
        let mut wakers = Vec::new();
        while addr.get().is_none() {
            pool.run_until_stalled();
        }
        let addr = addr.get().unwrap();
        for _ in 0..conns {
            let (count, stop, done) = (count.clone(), stop.clone(), done.clone());
            spawn(&spawner, async move {
                let mut c = TcpStream::connect(addr).await.unwrap();
                c.set_nodelay(true).unwrap();
                let mut buf = [7u8; MSG];
                while !stop.load(Ordering::Relaxed) {
                    c.write_all(&buf).await.unwrap();
                    c.read_exact(&mut buf).await.unwrap();
                    count.set(count.get() + 1);
                }
                done.set(done.get() + 1);
            });
        }
        let timer = stop_after(secs, stop.clone(), Some(driver.handle()));
        while done.get() < conns {
            pool.run_until_stalled();
            if done.get() == conns {
                break;
            }
            driver.poll(None, &mut wakers)?;
            for w in wakers.drain(..) {
                w.wake();
            }
        }
        timer.join().unwrap();
        Ok(count.get())
    }

    /// Sets `stop` after `secs` from another thread (and interrupts the gort
    /// poller so its loop notices).
    fn stop_after(
        secs: f64,
        stop: Arc<AtomicBool>,
        handle: Option<gort_netpoll::Handle>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
            if let Some(h) = handle {
                h.unpark();
            }
        })
    }

    fn tokio_run(conns: usize, secs: f64) -> io::Result<u64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            tokio::task::spawn_local(async move {
                loop {
                    let (mut s, _) = l.accept().await.unwrap();
                    s.set_nodelay(true).unwrap();
                    tokio::task::spawn_local(async move {
                        let mut buf = [0u8; MSG];
                        while s.read_exact(&mut buf).await.is_ok() {
                            if s.write_all(&buf).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
            let count = Rc::new(Cell::new(0u64));
            let stop = Arc::new(AtomicBool::new(false));
            let mut handles = Vec::new();
            for _ in 0..conns {
                let (count, stop) = (count.clone(), stop.clone());
                handles.push(tokio::task::spawn_local(async move {
                    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                    c.set_nodelay(true).unwrap();
                    let mut buf = [7u8; MSG];
                    while !stop.load(Ordering::Relaxed) {
                        c.write_all(&buf).await.unwrap();
                        c.read_exact(&mut buf).await.unwrap();
                        count.set(count.get() + 1);
                    }
                }));
            }
            let timer = stop_after(secs, stop, None);
            for h in handles {
                h.await.unwrap();
            }
            timer.join().unwrap();
            Ok(count.get())
        })
    }

    pub(super) fn main() -> io::Result<()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let secs: f64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1.0);
        // `gort` or `tokio` runs one side only (for strace/perf).
        let only = args.iter().find(|a| *a == "gort" || *a == "tokio");
        let conns_list: Vec<usize> = args
            .iter()
            .find_map(|a| a.strip_prefix("conns=").and_then(|c| c.parse().ok()))
            .map_or(vec![1, 50, 500], |c| vec![c]);
        println!("single-thread echo, {MSG}-byte round trips, {secs} s per run");
        println!(
            "{:>6} {:>14} {:>14} {:>7}",
            "conns", "gort rt/s", "tokio rt/s", "ratio"
        );
        for conns in conns_list {
            let g = match only.map(String::as_str) {
                Some("tokio") => f64::NAN,
                _ => gort_run(conns, secs)? as f64 / secs,
            };
            let t = match only.map(String::as_str) {
                Some("gort") => f64::NAN,
                _ => tokio_run(conns, secs)? as f64 / secs,
            };
            println!("{conns:>6} {g:>14.0} {t:>14.0} {:>7.2}", g / t);
        }
        Ok(())
    }
}
