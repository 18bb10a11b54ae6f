//! The P: a logical processor. An M must hold one to run tasks.
//!
//! A P owns its local run queue (`runq`, with `runnext`) and the counters of
//! the time slice. Exactly one M holds a P at a time (it is moved, boxed,
//! between Ms through the idle list and `MNote::nextp`, idle.rs), so every
//! field except the stealable side of `runq` is plain data of its holder.
//! Other Ms reach a P's queue only through its `Steal` handle in
//! `Shared::stealers`.

use std::time::Instant;

use gort_netpoll::loom::sync::Arc;

use crate::inject::Inject;
use crate::queue::{self, Local, Steal};
use crate::task::Notified;
use crate::time::Timers;

/// How many times in a row a task woken by the running task may take
/// `runnext` and inherit the time slice. Past it the woken task goes to the
/// tail, so a ping-ponging pair gives way to the runq every 16 polls. Go
/// bounds this by time (sysmon preempts after 10 ms); without sysmon yet a
/// count is the bound, and 16 keeps the queue head's delay to 16 short polls
/// while the pair still avoids the ring most of the time.
pub(crate) const MAX_INHERITED_RUNS: u32 = 16;

/// Go's fairness period: every 61st poll the M looks at the global queue
/// first, so a P busy with local work cannot starve remote spawns. 61 is a
/// prime, avoiding lockstep with any periodic pattern of the program.
///
/// Unlike Go, gort counts every poll here (`P::polls`), inherited ones too:
/// Go relies on sysmon's 10 ms preemption to end a chain of `runnext`
/// hand-offs, and without sysmon a chain of spawns each inheriting the slice
/// would delay the global queue by 61 * 17 polls (measured: 9 ms per
/// iteration of spawn_many_remote_busy2 counting schedtick only).
pub(crate) const GLOBAL_QUEUE_INTERVAL: u32 = 61;

/// A logical processor.
pub(crate) struct P {
    /// Index in `Shared::stealers`.
    pub(crate) id: usize,
    /// The local run queue and `runnext`; only the holder pushes and pops.
    pub(crate) runq: Local<Notified>,
    /// This P's timer heap (`Shared::timers[id]`, Go's `pp.timers`): the
    /// M's loop reads its next deadline through the P it already holds.
    pub(crate) timers: Arc<Timers>,
    /// Polls not inheriting a time slice (Go's `schedtick`).
    pub(crate) schedtick: u32,
    /// Inherited runs since the last `schedtick` bump.
    pub(crate) inherited: u32,
    /// Every poll, inherited or not: paces the global-queue check.
    pub(crate) polls: u32,
    /// xorshift state for the steal order.
    rng: u32,
    /// When a netpoll batch was placed on the runq without waking a
    /// helper M (m.rs, `place_readied`); `None` once the runq drained or a
    /// helper was woken.
    pub(crate) backlog: Option<Instant>,
}

impl P {
    /// A P with timer heap `timers`, and the steal handle of its runq.
    pub(crate) fn new(id: usize, timers: Arc<Timers>) -> (Box<P>, Steal<Notified>) {
        let (runq, steal) = queue::local();
        let rng = 0x9E37_79B9u32.wrapping_mul(id as u32 + 1) | 1;
        (
            Box::new(P {
                id,
                runq,
                timers,
                schedtick: 0,
                inherited: 0,
                polls: 0,
                rng,
                backlog: None,
            }),
            steal,
        )
    }

    /// The next pseudo-random number (xorshift32).
    pub(crate) fn fastrand(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    /// Queues a task woken or spawned by the task running on this P.
    /// Returns whether there is now work another M could take.
    pub(crate) fn push_woken(&mut self, task: Notified, overflow: &Inject<Notified>) -> bool {
        if self.inherited >= MAX_INHERITED_RUNS {
            self.runq.push_back(task, overflow);
        } else {
            self.runq.push_next(task, overflow);
        }
        self.ring_len() > 0
    }

    /// Queues a task that yielded: tail of the runq (Go's `goyield`).
    /// Returns whether there is work besides the yielded task.
    pub(crate) fn push_yielded(&mut self, task: Notified, overflow: &Inject<Notified>) -> bool {
        self.runq.push_back(task, overflow);
        self.runq.len() > 1
    }

    /// Tasks in the ring, `runnext` excluded.
    fn ring_len(&self) -> usize {
        self.runq.len() - usize::from(self.runq.has_runnext())
    }

    /// Records that `inherit`ing task is about to run (Go's `execute`).
    pub(crate) fn on_execute(&mut self, inherit: bool) {
        self.polls = self.polls.wrapping_add(1);
        if inherit {
            self.inherited += 1;
        } else {
            self.schedtick = self.schedtick.wrapping_add(1);
            self.inherited = 0;
        }
    }

    /// Drops every queued task (shutdown).
    pub(crate) fn drain(&mut self) {
        while let Some((task, _)) = self.runq.pop() {
            drop(task);
        }
    }
}

/// Numbers below `n` coprime with it: strides of the steal order, so a walk
/// `start, start + s, start + 2s, ..` (mod n) visits every P once (Go's
/// `randomOrder`).
pub(crate) fn coprimes(n: usize) -> Vec<usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    (1..=n.max(1)).filter(|&i| gcd(i, n) == 1).collect()
}
