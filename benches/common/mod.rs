//! One interface over gort and tokio so each benchmark workload is written
//! once and run on both runtimes, side by side, in the same process.
//!
//! Both runtimes are multi-threaded with the same number of workers (Ps for
//! gort). Channels come from `futures` on both sides so the figures compare
//! schedulers, not channel implementations.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The workers both runtimes get: this machine's cores, as the issue asks.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A spawned task's handle whose output is the task's value (a join error
/// panics: a benchmark task never fails).
pub struct Join<J>(J);

impl<J, T, E> Future for Join<J>
where
    J: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.expect("benchmark task failed"))
    }
}

/// What a workload needs from a runtime.
pub trait BenchRt: Sized + Send + Sync + 'static {
    /// Name used as the benchmark id.
    const NAME: &'static str;
    /// The type of a spawned task's handle.
    type Join<T: Send + 'static>: Future<Output = T> + Send + Unpin + 'static;
    /// A multi-threaded runtime with `workers` worker threads.
    fn build(workers: usize) -> Self;
    /// Runs `fut` to completion on the calling thread.
    fn block_on<F: Future>(&self, fut: F) -> F::Output;
    /// Spawns onto this runtime from outside it (a "remote" spawn).
    fn spawn_on<F>(&self, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Spawns from inside a task of the current runtime.
    fn spawn<F>(fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Yields to the scheduler once.
    fn yield_now() -> impl Future<Output = ()> + Send;
    /// Sleeps for `dur` on the runtime's timers.
    fn sleep(dur: std::time::Duration) -> impl Future<Output = ()> + Send;
}

/// gort's multi-threaded scheduler.
pub struct Gort(pub gort::Runtime);

impl BenchRt for Gort {
    const NAME: &'static str = "gort";
    type Join<T: Send + 'static> = Join<gort::JoinHandle<T>>;

    fn build(workers: usize) -> Self {
        Gort(
            gort::Runtime::builder()
                .worker_threads(workers)
                .build()
                .expect("build gort runtime"),
        )
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.0.block_on(fut)
    }

    fn spawn_on<F>(&self, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Join(self.0.spawn(fut))
    }

    fn spawn<F>(fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Join(gort::spawn(fut))
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        gort::task::yield_now()
    }

    fn sleep(dur: std::time::Duration) -> impl Future<Output = ()> + Send {
        gort::time::sleep(dur)
    }
}

/// tokio's multi-threaded scheduler, configured as tokio's own benchmarks do.
pub struct Tokio(pub tokio::runtime::Runtime);

impl BenchRt for Tokio {
    const NAME: &'static str = "tokio";
    type Join<T: Send + 'static> = Join<tokio::task::JoinHandle<T>>;

    fn build(workers: usize) -> Self {
        Tokio(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .expect("build tokio runtime"),
        )
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.0.block_on(fut)
    }

    fn spawn_on<F>(&self, fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Join(self.0.spawn(fut))
    }

    fn spawn<F>(fut: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Join(tokio::spawn(fut))
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }

    fn sleep(dur: std::time::Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(dur)
    }
}
