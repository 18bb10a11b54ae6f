//! The state every M of a runtime shares, and where a scheduled task goes.
//!
//! `schedule` is the one entry point for a `Notified` (spawn, wake, abort,
//! yield), and picks the queue by where it is called from:
//!
//! | caller | queue | then |
//! |---|---|---|
//! | a task on an M of this runtime, woken or spawned | that P's `runnext` (Go's `ready` / `newproc`), or the tail after `MAX_INHERITED_RUNS` | `wakep` if the ring holds stealable work |
//! | the task itself, during its own poll (yield, budget) | not `schedule`: the poll returns it (`Notified::run_yielding`) and the M puts it at the tail of its P's runq (Go's `goyield`) | `wakep` if other work is queued |
//! | any other thread (outside, `block_on`, another runtime) | global queue | `wakep` |
//!
//! Waking an M only when there is work besides what the current M runs next
//! is tokio's refinement of Go's unconditional `wakep` in `ready`: a woken M
//! that finds only the `runnext` task would spin, steal nothing useful after
//! the grace period, and park again.

use std::future::Future;
use std::panic::Location;
use std::ptr;
use std::time::Instant;

use gort_netpoll::loom::sync::{Arc, Condvar, Mutex};

use crate::blocking::BlockingPool;
use crate::builder::Config;
use crate::context;
use crate::idle::Idle;
use crate::inject::Inject;
use crate::m::MInfo;
use crate::metrics::{self, Diag};
use crate::netpoller::Netpoller;
use crate::p::P;
use crate::queue::{QueueItem, Steal};
use crate::runtime::Handle;
use crate::sysmon::SysmonShared;
use crate::task::list::OwnedTasks;
use crate::task::raw::Header;
use crate::task::{Hint, Id, JoinHandle, Notified, Schedule};
use crate::time::Timers;

/// Everything the Ms of one runtime share.
pub(crate) struct Shared {
    /// The global run queue.
    pub(crate) inject: Inject<Notified>,
    /// Steal handles of every P's runq, by P id.
    pub(crate) stealers: Box<[Steal<Notified>]>,
    /// Strides for the random steal order (coprime with the P count).
    pub(crate) coprimes: Box<[usize]>,
    /// Idle Ps and Ms, spinning count.
    pub(crate) idle: Idle<Box<P>>,
    /// Timer heaps: one per P (index = P id; Go keeps them in the P), then
    /// one for `block_on` threads, which hold no P. A P's heap belongs to
    /// it (the M holding P `i` runs `timers[i]` first in findrunnable); the
    /// heaps live here so that idle Ms read every next deadline, thieves run
    /// a victim's expired timers, and every M checks the block_on heap.
    pub(crate) timers: Box<[Arc<Timers>]>,
    /// The network poller and the M blocked in it.
    pub(crate) netpoller: Netpoller,
    /// Every live task, for shutdown.
    pub(crate) owned: OwnedTasks,
    /// Every M ever started, by M id (Go's `allm`): to unpark them at
    /// shutdown, for sysmon (status slots, budgets) and for scheddetail.
    pub(crate) ms: Mutex<Vec<Arc<MInfo>>>,
    /// What the Ms share with the sysmon thread.
    pub(crate) sysmon: SysmonShared,
    /// The `spawn_blocking` threads.
    pub(crate) blocking: BlockingPool,
    /// The validated configuration.
    pub(crate) config: Config,
    /// Per-P counters and histograms (metrics/).
    pub(crate) diag: Diag,
    /// Ms still running, with the condvar shutdown waits on.
    pub(crate) live_ms: Mutex<usize>,
    pub(crate) ms_exited: Condvar,
}

impl Shared {
    /// Whether any queue holds work or any timer is due: the re-check of
    /// Go's "delicate dance".
    pub(crate) fn has_work(&self) -> bool {
        !self.inject.is_empty()
            || self.stealers.iter().any(|s| !s.is_empty())
            || self.has_expired_timers()
    }

    /// The earliest pending deadline over every P's heap (lock-free reads;
    /// a cancelled entry not yet swept only makes an M wake early).
    pub(crate) fn earliest_timer(&self) -> Option<Instant> {
        self.timers.iter().filter_map(|t| t.next_deadline()).min()
    }

    /// The earliest deadline after `now` over every heap, ignoring heaps
    /// whose next timer is already due.
    pub(crate) fn earliest_timer_after(&self, now: Instant) -> Option<Instant> {
        self.timers
            .iter()
            .filter_map(|t| t.next_deadline())
            .filter(|&d| d > now)
            .min()
    }

    /// Whether a timer of some heap is due.
    pub(crate) fn has_expired_timers(&self) -> bool {
        self.earliest_timer().is_some_and(|d| d <= Instant::now())
    }

    /// The heap `block_on` threads register their timers in.
    pub(crate) fn block_on_timers(&self) -> &Arc<Timers> {
        self.timers.last().expect("the block_on heap exists")
    }

    /// Called by each M as it exits.
    pub(crate) fn m_exited(&self) {
        let mut live = self.live_ms.lock().unwrap();
        *live -= 1;
        self.ms_exited.notify_all();
    }
}

impl QueueItem for Notified {
    fn into_raw(self) -> std::ptr::NonNull<()> {
        self.into_header_ptr()
    }

    unsafe fn from_raw(p: std::ptr::NonNull<()>) -> Self {
        // SAFETY: forwarded contract: p came from into_raw, used once.
        unsafe { Notified::from_header_ptr(p) }
    }
}

impl Handle {
    /// Spawns onto this runtime (the body of every public spawn);
    /// `spawned_at` is the user's call site, for diagnostics.
    pub(crate) fn spawn_inner<F>(
        &self,
        future: F,
        spawned_at: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with_id(future, Id::next(), spawned_at)
    }

    /// As `spawn_inner`, for a task named `name` (`task::Builder`): names
    /// live in a side table (metrics/mod.rs), so unnamed spawns skip it.
    pub(crate) fn spawn_named<F>(
        &self,
        future: F,
        name: &str,
        spawned_at: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = Id::next();
        metrics::set_name(id, name);
        self.spawn_with_id(future, id, spawned_at)
    }

    fn spawn_with_id<F>(
        &self,
        future: F,
        id: Id,
        spawned_at: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, notified) = self.shared.owned.bind(future, self.clone(), id, spawned_at);
        // DIAG: the `tracing` event (before the task can run); spawns are
        // counted by `bind`. After `bind`, so that the future moves
        // straight into the cell (checked first, the check kept it on the
        // stack and copied it twice: 6 more instructions a spawn).
        if tracing::level_enabled!(tracing::Level::TRACE) {
            metrics::trace_spawn(id, spawned_at);
        }
        if let Some(task) = notified {
            self.schedule(task, Hint::Wake);
        }
        join
    }

    /// Global queue + `wakep`. At shutdown the queue is closed and the task
    /// reference is dropped (the task itself is cancelled by shutdown).
    fn schedule_remote(&self, task: Notified) {
        if self.shared.inject.push(task).is_ok() {
            self.shared.idle.wakep();
        }
    }
}

impl Schedule for Handle {
    fn schedule(&self, task: Notified, hint: Hint) {
        let rest = context::with_current_m(|m| match m {
            Some(m) if ptr::eq(Arc::as_ptr(&m.handle.shared), Arc::as_ptr(&self.shared)) => {
                m.schedule_local(task, hint)
            }
            _ => Some(task),
        });
        if let Some(task) = rest {
            self.schedule_remote(task);
        }
    }

    fn release(&self, task: &Header) -> bool {
        metrics::forget_name(task.id); // DIAG
        self.shared.owned.remove(task)
    }
}
