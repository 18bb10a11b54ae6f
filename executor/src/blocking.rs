//! `spawn_blocking`: a pool of threads for blocking closures, apart from the
//! Ms.
//!
//! # Purpose
//! Blocking work (file I/O, a C library, a long computation) must not hold a
//! P. `spawn_blocking` runs a closure on a separate pool, capped at
//! `Builder::max_blocking_threads` (512), and returns a normal
//! [`JoinHandle`]; a panic in the closure reaches the handle as
//! `JoinError::panic`.
//!
//! # How
//! The closure becomes a one-poll task (`BlockingTask`) bound to the
//! runtime's owned-tasks list, so the task layer supplies the `JoinHandle`,
//! the panic capture and the shutdown cancellation; its scheduler
//! (`BlockingSchedule`) queues it here instead of on a P.
//!
//! # States (`PoolState`, under `lock`)
//! - `queue`: tasks not yet started.
//! - `threads`: live pool threads; `idle`: of those, waiting on `cond`;
//!   `notified`: idle threads already woken for a queued task (so one
//!   push never wakes two threads and a wake is never counted twice).
//! - `shutdown`: false -> true once; threads then drain nothing more and exit
//!   when idle. Queued tasks are cancelled by the runtime's shutdown (the
//!   owned-tasks list), their `Notified` dropped here. A running task is
//!   not waited for: its thread finishes it (the result reaches its
//!   `JoinHandle`) and exits; the thread's `Handle` keeps the runtime's
//!   shared state alive until then.
//!
//! # Transitions
//! - `push`: queue the task; wake an idle thread if one is not yet
//!   notified, else start a thread if under the cap, else leave it queued
//!   (a busy thread takes it when done).
//! - a thread: pop and run until the queue is empty; wait up to
//!   `keep_alive`; woken by nothing and still nothing queued: retire.
//!
//! Everything is under one mutex: a blocking task costs a thread wake and a
//! closure far longer than the lock, so lock-free queues would buy nothing.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use gort_netpoll::budget;
use gort_netpoll::loom::sync::{Condvar, Mutex, MutexGuard};
use gort_netpoll::loom::thread;

use crate::builder::Config;
use crate::context;
use crate::runtime::Handle;
use crate::task::raw::Header;
use crate::task::{Hint, Id, JoinHandle, Notified, Schedule};

/// Runs `f` on the current runtime's blocking pool and returns its handle.
///
/// A panic in `f` is caught and returned by the handle as a `JoinError`.
/// Aborting the handle only cancels `f` if it has not started.
///
/// # Runtime shutdown
/// Dropping the runtime (or `shutdown_timeout`) does not wait for a closure
/// that is already running: it runs to its end on its pool thread, which
/// then exits, and the handle, awaited from any executor, still returns its
/// value. A closure still queued then never runs: its handle returns a
/// cancelled `JoinError` and what it captured is dropped during the
/// shutdown. (`tests/sysmon.rs`,
/// `runtime_drop_leaves_a_running_blocking_closure_to_finish_and_cancels_queued_ones`.)
///
/// # Panics
/// Outside a runtime, with a message naming the call site.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match context::try_current_handle() {
        Some(h) => h.spawn_blocking(f),
        None => panic!(
            "gort::spawn_blocking called outside a gort runtime at {}: call it from a task, \
             from inside Runtime::block_on, or use Handle::spawn_blocking",
            std::panic::Location::caller()
        ),
    }
}

impl Handle {
    /// Runs `f` on this runtime's blocking pool; see [`spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let sched = BlockingSchedule {
            handle: self.clone(),
        };
        let at = std::panic::Location::caller();
        let (join, notified) = self
            .shared
            .owned
            .bind(BlockingTask(Some(f)), sched, Id::next(), at);
        if let Some(task) = notified {
            self.shared.blocking.push(task, self);
        }
        join
    }

    /// Live `spawn_blocking` threads (a statistic).
    pub fn num_blocking_threads(&self) -> usize {
        self.shared.blocking.lock().threads
    }
}

/// The closure as a future that completes on its first poll.
struct BlockingTask<F>(Option<F>);

// The closure is never pinned: it is moved out and called.
impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self.0.take().expect("gort: a blocking task is polled once");
        // The closure is not a cooperative task: no budget applies.
        Poll::Ready(budget::with_unconstrained(f))
    }
}

/// The scheduler of blocking tasks: the pool's queue.
struct BlockingSchedule {
    handle: Handle,
}

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified, _hint: Hint) {
        // Only the first schedule happens (the task completes on its first
        // poll), but an abort may schedule it to be cancelled: same queue.
        self.handle.shared.blocking.push(task, &self.handle);
    }

    fn release(&self, task: &Header) -> bool {
        self.handle.shared.owned.remove(task)
    }
}

struct PoolState {
    queue: VecDeque<Notified>,
    threads: usize,
    idle: usize,
    notified: usize,
    shutdown: bool,
    /// Names the next thread.
    next_id: usize,
}

/// The blocking pool of one runtime.
pub(crate) struct BlockingPool {
    state: Mutex<PoolState>,
    cond: Condvar,
    cap: usize,
    keep_alive: Duration,
    thread_name: String,
}

impl BlockingPool {
    pub(crate) fn new(config: &Config) -> BlockingPool {
        BlockingPool {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                notified: 0,
                shutdown: false,
                next_id: 0,
            }),
            cond: Condvar::new(),
            cap: config.max_blocking_threads,
            keep_alive: config.blocking_keep_alive,
            thread_name: format!("{}-blocking", config.thread_name),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().expect("gort: blocking pool poisoned")
    }

    /// Queues `task` and makes sure a thread will run it.
    fn push(&self, task: Notified, handle: &Handle) {
        let mut st = self.lock();
        if st.shutdown {
            // The runtime's shutdown cancels the task through its list.
            drop(st);
            drop(task);
            return;
        }
        st.queue.push_back(task);
        if st.idle > st.notified {
            st.notified += 1;
            drop(st);
            self.cond.notify_one();
        } else if st.threads < self.cap {
            st.threads += 1;
            let id = st.next_id;
            st.next_id += 1;
            drop(st);
            if let Err(e) = self.spawn_thread(handle, id) {
                let mut st = self.lock();
                st.threads -= 1;
                let stranded = st.threads == 0;
                drop(st);
                tracing::error!(
                    target: "gort",
                    error = %e,
                    stranded,
                    "spawn_blocking: cannot start a blocking thread; the task stays queued \
                     until a pool thread is free"
                );
            }
        }
    }

    fn spawn_thread(&self, handle: &Handle, id: usize) -> io::Result<()> {
        let h = handle.clone();
        thread::Builder::new()
            .name(format!("{}-{id}", self.thread_name))
            .spawn(move || {
                let _enter = context::enter(h.clone());
                h.shared.blocking.thread_main();
            })
            .map(drop)
    }

    /// A pool thread: run queued tasks; retire after `keep_alive` idle.
    fn thread_main(&self) {
        let mut st = self.lock();
        loop {
            if let Some(task) = st.queue.pop_front() {
                drop(st);
                task.run();
                st = self.lock();
                continue;
            }
            if st.shutdown {
                break;
            }
            st.idle += 1;
            let (guard, timeout) = self
                .cond
                .wait_timeout(st, self.keep_alive)
                .expect("gort: blocking pool poisoned");
            st = guard;
            st.idle -= 1;
            if st.notified > 0 {
                st.notified -= 1;
            } else if timeout.timed_out() && st.queue.is_empty() {
                break;
            }
        }
        st.threads -= 1;
    }

    /// Runtime shutdown: no new tasks; idle threads exit; tasks still
    /// queued are dropped (their futures are cancelled by the owned list).
    pub(crate) fn shutdown(&self) {
        let queued = {
            let mut st = self.lock();
            st.shutdown = true;
            std::mem::take(&mut st.queue)
        };
        self.cond.notify_all();
        drop(queued);
    }
}
