//! `Runtime` and `Handle`: starting, entering and shutting down a runtime.
//!
//! # Shutdown (dropping the `Runtime`, or `shutdown_timeout`)
//! 1. Close the owned-tasks list: a spawn from now on is cancelled at once.
//! 2. `Idle::shutdown`: Ms stop at the top of their next `find_runnable`;
//!    parked Ms are unparked and exit. Sysmon is woken, sees it and exits
//!    (joined here, so it starts no M after this step); the blocking pool
//!    stops taking work and its idle threads exit.
//! 3. Close the global queue: wakes from now on drop their `Notified`.
//! 4. Wait for the Ms (up to the timeout); each drops the `Notified`s left in
//!    its P's runq as it exits.
//! 5. Drain the global queue.
//! 6. Cancel every task still in the owned-tasks list: each pending future is
//!    dropped here exactly once, or, for a task an M is still polling (a
//!    timed-out shutdown), by that M after the poll.
//!
//! Both queues need their closed state: the list so no task is born after
//! step 6 scanned it, the global queue so no `Notified` lands where nobody
//! will ever pop it.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use gort_netpoll::budget;
use gort_netpoll::loom::sync::{Arc, Condvar, Mutex};
use gort_netpoll::loom::thread;

use crate::blocking::BlockingPool;
use crate::builder::{Builder, Config};
use crate::context;
use crate::idle::{Idle, MNote};
use crate::inject::Inject;
use crate::m::{self, MInfo};
use crate::metrics::Diag;
use crate::netpoller::Netpoller;
use crate::p::{self, P};
use crate::park::{Parker, Unparker};
use crate::scheduler::Shared;
use crate::sysmon::{self, SysmonShared};
use crate::task::JoinHandle;
use crate::task::list::OwnedTasks;
use crate::time::{self, Timers};

/// A gort runtime: Ps, the Ms running them, and the queues between.
///
/// Dropping it shuts it down (see [`Runtime::shutdown_timeout`]), waiting
/// for the Ms to finish the polls they are in; dropped from one of its own
/// tasks it does not wait (as `shutdown_timeout(Duration::ZERO)`).
pub struct Runtime {
    handle: Handle,
    threads: Vec<thread::JoinHandle<()>>,
    sysmon: Option<thread::JoinHandle<()>>,
    /// Set by the first shutdown; `Drop` after `shutdown_timeout` does nothing.
    shut_down: bool,
    /// DIAG: this runtime started the `GORT_TRACE` trace; its shutdown stops it.
    env_trace: bool,
}

/// A cloneable reference to a runtime, to spawn onto it or block on it from
/// any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

/// The error of [`Handle::try_current`]: this thread is not in a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this thread is not inside a gort runtime (not an M, not inside block_on)")
    }
}

impl std::error::Error for TryCurrentError {}

impl Runtime {
    /// A runtime with the default configuration (see [`Builder::new`]).
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A builder to configure a runtime.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn start(config: Config) -> io::Result<Runtime> {
        let n = config.nprocs;
        let netpoller = Netpoller::new()?;
        // One heap per P, then the block_on heap.
        let timers = (0..=n)
            .map(|_| Arc::new(Timers::with_wake_hook(Box::new(timer_wake_hook))))
            .collect::<Vec<_>>();
        let (ps, stealers): (Vec<Box<P>>, Vec<_>) =
            (0..n).map(|i| P::new(i, timers[i].clone())).unzip();
        let netpoll = netpoller.handle().clone();
        let mut parkers = Vec::with_capacity(n);
        let mut notes = Vec::with_capacity(n);
        for _ in 0..n {
            let (parker, unparker): (Parker, Unparker) = Parker::new();
            parkers.push(parker);
            notes.push(MNote::new(unparker));
        }
        let infos: Vec<_> = notes
            .iter()
            .enumerate()
            .map(|(i, note)| MInfo::new(i, note.clone()))
            .collect();
        let (sysmon_parker, sysmon_unparker) = Parker::new();
        let shared = Arc::new(Shared {
            inject: Inject::new(),
            stealers: stealers.into_boxed_slice(),
            coprimes: p::coprimes(n).into_boxed_slice(),
            idle: Idle::new(n, ps, notes.clone())
                .with_netpoll_break(Box::new(move || netpoll.unpark())),
            timers: timers.into_boxed_slice(),
            netpoller,
            owned: OwnedTasks::new(n),
            ms: Mutex::new(infos.clone()),
            sysmon: SysmonShared::new(sysmon_unparker),
            blocking: BlockingPool::new(&config),
            config,
            diag: Diag::new(n),
            live_ms: Mutex::new(n),
            ms_exited: Condvar::new(),
        });
        let handle = Handle { shared };
        let mut rt = Runtime {
            handle: handle.clone(),
            threads: Vec::with_capacity(n),
            sysmon: None,
            shut_down: false,
            // DIAG: the clock's origin, GORT_TRACE and GORT_DEBUG=sigquit=1.
            env_trace: crate::metrics::start_clock() && crate::trace::start_from_env(),
        };
        crate::dump::on_runtime_start(&handle);
        for (parker, info) in parkers.into_iter().zip(infos) {
            match handle.spawn_m_thread(info, parker) {
                Ok(t) => rt.threads.push(t),
                Err(e) => {
                    // Ms never started count as exited, then shut down the rest.
                    let missing = n - rt.threads.len();
                    *rt.handle.shared.live_ms.lock().unwrap() -= missing;
                    return Err(e);
                }
            }
        }
        let h = handle.clone();
        let spawned = thread::Builder::new()
            .name(format!("{}-sysmon", handle.shared.config.thread_name))
            .spawn(move || sysmon::run(h, sysmon_parker));
        rt.sysmon = Some(spawned?);
        Ok(rt)
    }

    /// Runs `future` to completion on the calling thread, which parks between
    /// polls; spawned tasks run on the runtime's Ms meanwhile. A panic in
    /// `future` unwinds to the caller.
    ///
    /// # Panics
    /// When called from inside a runtime (a task, or another `block_on`).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Spawns a task on this runtime.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// A handle to this runtime.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Shuts down, waiting at most `timeout` for the Ms to finish their
    /// current polls. Pending tasks are cancelled (their futures dropped)
    /// either way; Ms still stuck in a poll after the timeout are detached
    /// and cancel their task when the poll returns.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(timeout));
    }

    fn shutdown(&mut self, mut timeout: Option<Duration>) {
        if std::mem::replace(&mut self.shut_down, true) {
            return;
        }
        let shared = &self.handle.shared;
        let on_own_m = context::with_current_m(|m| {
            m.is_some_and(|m| std::ptr::eq(Arc::as_ptr(&m.handle.shared), Arc::as_ptr(shared)))
        });
        // From one of its own tasks, waiting for every M (this one included)
        // would never return: signal and detach instead, as a zero timeout.
        // This M exits after the current poll.
        if on_own_m {
            timeout = Some(Duration::ZERO);
        }
        shared.owned.close();
        shared.idle.shutdown();
        shared.sysmon.wake_for_shutdown();
        if let Some(t) = self.sysmon.take() {
            // A sysmon panic was already reported on its thread.
            let _ = t.join();
        }
        shared.blocking.shutdown();
        shared.inject.close();
        let notes: Vec<_> = shared
            .ms
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.note.clone())
            .collect();
        shared.idle.unpark_all(&notes);
        let all_exited = {
            let deadline = timeout.map(|t| Instant::now() + t);
            let mut live = shared.live_ms.lock().unwrap();
            while *live > 0 {
                live = match deadline {
                    None => shared.ms_exited.wait(live).unwrap(),
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        shared.ms_exited.wait_timeout(live, left).unwrap().0
                    }
                };
            }
            *live == 0
        };
        let threads = std::mem::take(&mut self.threads);
        if all_exited {
            for t in threads {
                // An M's own panic was already reported on its thread.
                let _ = t.join();
            }
        }
        while let Some(task) = shared.inject.pop() {
            drop(task);
        }
        shared.owned.close_and_shutdown_all();
        if std::mem::take(&mut self.env_trace)
            && let Err(e) = crate::trace::stop()
        {
            eprintln!("gort: GORT_TRACE: {e}");
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("handle", &self.handle)
            .finish()
    }
}

impl Handle {
    /// The runtime this thread is in.
    ///
    /// # Panics
    /// Outside a runtime, with a message naming the call site; see
    /// [`Handle::try_current`].
    #[track_caller]
    pub fn current() -> Handle {
        match context::try_current_handle() {
            Some(h) => h,
            None => panic!(
                "gort::Handle::current() called outside a gort runtime at {}: call it from a task \
                 or inside Runtime::block_on",
                std::panic::Location::caller()
            ),
        }
    }

    /// The runtime this thread is in, or an error outside one.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::try_current_handle().ok_or(TryCurrentError(()))
    }

    /// Spawns a task on this runtime; from outside it the task goes to the
    /// global queue.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_inner(future, std::panic::Location::caller())
    }

    /// Starts the thread of M `info` (counted in `live_ms` by the caller).
    fn spawn_m_thread(
        &self,
        info: Arc<MInfo>,
        parker: Parker,
    ) -> io::Result<thread::JoinHandle<()>> {
        let h = self.clone();
        thread::Builder::new()
            .name(format!("{}-{}", self.shared.config.thread_name, info.id))
            .spawn(move || m::run(h, info, parker))
    }

    /// Starts a new M to run `p` (sysmon's `handoffp` when no M is idle).
    /// Gives `p` back when `max_threads` Ms are alive or the OS refuses.
    pub(crate) fn start_m(&self, p: Box<P>) -> Result<(), Box<P>> {
        let shared = &self.shared;
        {
            let mut live = shared.live_ms.lock().unwrap();
            if *live >= shared.config.max_threads || shared.idle.is_closed() {
                return Err(p);
            }
            *live += 1;
        }
        let (parker, unparker) = Parker::new();
        let note = MNote::with_nextp(unparker, p);
        let info = {
            let mut ms = shared.ms.lock().unwrap();
            let info = MInfo::new(ms.len(), note.clone());
            ms.push(info.clone());
            info
        };
        match self.spawn_m_thread(info, parker) {
            // Detached: shutdown waits for it through `live_ms`.
            Ok(_) => Ok(()),
            Err(_) => {
                shared.m_exited();
                Err(note
                    .take_nextp()
                    .expect("gort: the unstarted M's P is still in its note"))
            }
        }
    }

    /// As [`Runtime::block_on`].
    ///
    /// # Panics
    /// When called from inside a runtime (a task, or another `block_on`).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _enter = context::enter(self.clone());
        // Sockets created here register with this runtime's poller. Sleeps
        // go on the block_on heap (this thread holds no P): every M checks
        // it at the top of findrunnable, the M in netpoll sleeps until its
        // earliest deadline, and its wake hook breaks that poll when a
        // sleep is due sooner.
        let _netpoll = gort_netpoll::enter(self.shared.netpoller.handle().clone());
        let _timers = time::enter(self.shared.block_on_timers().clone());
        let (mut parker, unparker) = Parker::new();
        // std's Arc: `Wake` is implemented for it only. Not a protocol object.
        let waker = Waker::from(std::sync::Arc::new(BlockOnWaker(unparker)));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(out) = budget::budget(|| future.as_mut().poll(&mut cx)) {
                return out;
            }
            parker.park();
        }
    }

    /// Tasks of this runtime not yet completed (a statistic).
    pub fn num_alive_tasks(&self) -> usize {
        self.shared.owned.len()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idle = &self.shared.idle;
        f.debug_struct("Handle")
            .field("gomaxprocs", &idle.nprocs())
            .field("max_threads", &self.shared.config.max_threads)
            .field("idleprocs", &idle.npidle())
            .field("spinningthreads", &idle.nmspinning())
            .field("runqueue", &self.shared.inject.len())
            .finish()
    }
}

/// The wake hook of every P's timer heap: a P's earliest deadline became
/// earlier, so the M sleeping in netpoll may have to wake sooner. Called on
/// the thread that added the timer, which is inside the heap's runtime (an M,
/// or a `block_on` caller: `time::context` is only entered with this
/// runtime's heaps alongside `context::enter`).
fn timer_wake_hook(deadline: Instant) {
    if let Some(h) = context::try_current_handle() {
        h.shared
            .netpoller
            .timer_added(deadline, || h.shared.idle.wakep());
    }
}

/// Wakes a `block_on` caller.
struct BlockOnWaker(Unparker);

impl Wake for BlockOnWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}
