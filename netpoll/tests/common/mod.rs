//! A tiny stand-in for the executor, for netpoll's integration tests.
//!
//! One thread owns the [`Driver`] and loops on `poll(None)`, waking the
//! returned wakers (the real executor injects them into its run queues
//! instead). Test tasks run on the test thread under `futures::executor`,
//! with `gort_netpoll::enter` set so sockets find the driver.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Wake, Waker};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use gort_netpoll::net::{TcpListener, TcpStream};
use gort_netpoll::{Driver, Handle, enter};

/// A poller thread plus a handle to its driver.
pub struct Runtime {
    handle: Handle,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Starts a driver on its own poller thread.
    pub fn new() -> Runtime {
        let driver = Driver::new().expect("creating a driver");
        let handle = driver.handle();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name("test-netpoll".into())
            .spawn(move || {
                let mut wakers = Vec::new();
                while !stop2.load(Ordering::Acquire) {
                    driver.poll(None, &mut wakers).expect("driver.poll failed");
                    for w in wakers.drain(..) {
                        w.wake();
                    }
                }
                drop(driver);
            })
            .expect("spawning the poller thread");
        Runtime {
            handle,
            stop,
            thread: Some(thread),
        }
    }

    /// The driver's handle.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs `f` to completion on this thread, inside the runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        let _guard = enter(self.handle.clone());
        futures::executor::block_on(f)
    }

    /// Runs `main` on a single-threaded pool; `main` gets a spawner for more
    /// tasks, all inside the runtime.
    pub fn run_pool<F, Fut>(&self, main: F) -> Fut::Output
    where
        F: FnOnce(futures::executor::LocalSpawner) -> Fut,
        Fut: Future,
    {
        let _guard = enter(self.handle.clone());
        let mut pool = LocalPool::new();
        let fut = main(pool.spawner());
        pool.run_until(fut)
    }

    /// Stops the poller thread and drops the driver, waiting for both.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.handle.unpark();
        if let Some(t) = self.thread.take() {
            t.join().expect("poller thread panicked");
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Spawns `f` on a LocalSpawner, panicking if spawning fails.
pub fn spawn_local(
    spawner: &futures::executor::LocalSpawner,
    f: impl Future<Output = ()> + 'static,
) {
    spawner.spawn_local(f).expect("spawn_local");
}

/// Runs `f` on a fresh thread and fails the test with `what` if it has not
/// finished within `secs` seconds (instead of hanging the test run).
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: not done after {secs} s (hang?)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The closure panicked; re-raise its panic.
            match t.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!("sender dropped without sending"),
            }
        }
    }
}

/// A connected TCP pair `(client, server)` registered with `rt`.
pub fn connected_pair(rt: &Runtime) -> (TcpStream, TcpStream) {
    rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    })
}

/// Binds a listener and spawns a task that accepts one connection and hands
/// it to `serve`; returns the address to connect to.
pub async fn serve_one<Fut>(
    spawner: &futures::executor::LocalSpawner,
    serve: impl FnOnce(TcpStream) -> Fut + 'static,
) -> std::net::SocketAddr
where
    Fut: Future<Output = ()> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    spawn_local(spawner, async move {
        let (s, _) = listener.accept().await.unwrap();
        serve(s).await;
    });
    addr
}

/// A waker that counts its wakes.
pub struct CountWakes(pub AtomicUsize);

impl CountWakes {
    /// A fresh counter and a waker that bumps it.
    pub fn waker() -> (Waker, Arc<CountWakes>) {
        let c = Arc::new(CountWakes(AtomicUsize::new(0)));
        (Waker::from(c.clone()), c)
    }

    /// Wakes so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
