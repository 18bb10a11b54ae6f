//! A P's timers: Go 1.14+'s per-P timer heap with lazily deleted entries.
//!
//! # Purpose
//! Each P owns one [`Timers`]: a 4-ary min-heap of pending deadlines under a
//! per-P lock. The scheduler runs expired timers in findrunnable (any P may
//! run another P's timers on its last steal pass) and bounds how long an idle
//! M sleeps by the nearest deadline, which [`Timers::next_deadline`] reads
//! without the lock. A timer is one [`Entry`], shared by the heap and the
//! [`TimerHandle`] inside a `Sleep`.
//!
//! # States
//! `Entry::state`, one byte, moves once out of `PENDING` and never back:
//! - `PENDING`: in the heap, waiting for its deadline.
//! - `FIRED`: `run_expired` took it; its waker was (or is being) woken.
//! - `CANCELLED`: its handle was dropped first; the heap entry is a "zombie"
//!   (Go's `timerZombie`) removed lazily.
//!
//! # Transitions
//! - `PENDING → FIRED`: [`Timers::run_expired`] (any thread holding the heap
//!   lock), `compare_exchange`; the winner then takes the waker.
//! - `PENDING → CANCELLED`: `TimerHandle::drop` (the task that owns the
//!   `Sleep`), `compare_exchange`; the winner drops the waker and counts a
//!   zombie. Exactly one of fire and cancel wins, so `live` is decremented
//!   once per timer.
//!
//! # Ownership
//! - `heap`, `seq`: only under `Timers::heap`'s mutex.
//! - `next`: stored only under the heap mutex (after every heap change),
//!   loaded anywhere without it.
//! - `live`, `zombies`: counters changed with `fetch_add`/`fetch_sub` by
//!   whoever wins a transition (`add`, fire, cancel, compaction); read racily.
//! - `Entry::waker`: under its own small mutex; written by the handle's owner
//!   (`poll`), taken by the winner of the transition.
//!
//! # Orderings
//! - No lost wakeup between `TimerHandle::poll` and fire: poll stores its
//!   waker under `Entry::waker`, releases it, then loads `state` (`Acquire`);
//!   fire does its `AcqRel` CAS to `FIRED`, then takes the waker under the
//!   same mutex. If fire locks first, its CAS happens-before poll's lock, so
//!   poll's load sees `FIRED`; if poll locks first, fire takes poll's waker.
//! - `state`'s `AcqRel` CAS to `FIRED` pairs with the `Acquire` load in
//!   `TimerHandle::is_fired`, so the task that sees its timer fired also
//!   sees everything the firing thread did before.
//! - `next`: `Release` store under the lock pairs with the `Acquire` load in
//!   `next_deadline`. It is a hint: a reader may see a slightly old value
//!   and sleep a little too long only if it then misses the `wake` hook,
//!   which `add` calls after publishing an earlier deadline (see below).
//! - Earlier deadline: `add` stores the new `next` under the lock, then
//!   (after unlocking) calls the `wake` hook. The scheduler's hook must
//!   wake an M whose sleep ends later (Go's `wakeNetPoller`); an M that
//!   computed its sleep before the store is the one the hook wakes.
//!
//! # Rejected alternatives
//! - A hierarchical timing wheel (tokio): O(1) but its 1 ms slots round every
//!   deadline up, and tokio's p99 lateness on a 1 ms sleep loop is 1.24 ms on
//!   this machine; the target is 0.3 ms. The heap keeps exact nanoseconds.
//! - Removing a cancelled entry from the heap at once: needs its index, kept
//!   up to date on every swap (a write to each moved entry), plus the heap
//!   lock on every drop. Zombies cost a flag and are swept in bulk when they
//!   exceed a quarter of the heap (Go's threshold), keeping drops O(1).
//! - One global heap: every sleep from every P would contend on one lock.
//!
//! # Checked by
//! `tests/loom_timers.rs`: fire racing poll and cancel: the task is woken or
//! sees `FIRED` (no lost wakeup), `live` ends at zero, the waker is dropped.

use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use gort_netpoll::loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use gort_netpoll::loom::sync::atomic::{AtomicIsize, AtomicU8, AtomicU64, AtomicUsize};
use gort_netpoll::loom::sync::{Arc, Mutex, MutexGuard};

use super::heap::QuadHeap;

const PENDING: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;

/// `Timers::next` when the heap is empty.
const NO_DEADLINE: u64 = u64::MAX;

/// Zombies below this count are never swept: a sweep is O(n) and a few dead
/// entries cost nothing but a pop.
const MIN_ZOMBIES_TO_SWEEP: isize = 64;

/// Wakers woken per lock round trip in `run_expired`: bounds the stack
/// buffer and how long other Ps wait for the lock (tokio's `WakeList` uses
/// the same figure).
const WAKE_BATCH: usize = 32;

/// Called with the new earliest deadline when [`Timers::add`] made it
/// earlier. The scheduler wakes an idle M that sleeps past it.
pub(crate) type WakeHook = Box<dyn Fn(Instant) + Send + Sync>;

/// One P's timer heap. See the module docs.
pub(crate) struct Timers {
    heap: Mutex<Heap>,
    /// Nanoseconds since `epoch` of the heap's top entry, or `NO_DEADLINE`.
    next: AtomicU64,
    /// Pending (not fired, not cancelled) timers.
    live: AtomicUsize,
    /// Cancelled entries still in the heap. Signed: a cancel counts its
    /// zombie just after its CAS, so a concurrent pop may uncount it first.
    zombies: AtomicIsize,
    epoch: Instant,
    wake: Option<WakeHook>,
}

struct Heap {
    heap: QuadHeap<Slot>,
    /// Tie-breaker: equal deadlines fire in the order they were added.
    seq: u64,
}

/// A heap entry: ordered by `(when, seq)`.
struct Slot {
    when: u64,
    seq: u64,
    entry: Arc<Entry>,
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        (self.when, self.seq) == (other.when, other.seq)
    }
}
impl Eq for Slot {}
impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Slot {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.when, self.seq).cmp(&(other.when, other.seq))
    }
}

/// The state one timer shares between the heap and its handle.
struct Entry {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

/// What [`Timers::run_expired`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired {
    /// Timers fired (their tasks were woken) by this call.
    pub(crate) fired: usize,
    /// The earliest deadline still pending, if any.
    pub(crate) next_deadline: Option<Instant>,
}

impl Timers {
    /// An empty heap with no wake hook.
    pub(crate) fn new() -> Timers {
        Timers::build(None)
    }

    /// An empty heap whose [`add`](Self::add) calls `wake` (after releasing
    /// the lock) whenever it makes the earliest deadline earlier.
    pub(crate) fn with_wake_hook(wake: WakeHook) -> Timers {
        Timers::build(Some(wake))
    }

    fn build(wake: Option<WakeHook>) -> Timers {
        Timers {
            heap: Mutex::new(Heap {
                heap: QuadHeap::new(),
                seq: 0,
            }),
            next: AtomicU64::new(NO_DEADLINE),
            live: AtomicUsize::new(0),
            zombies: AtomicIsize::new(0),
            epoch: Instant::now(),
            wake,
        }
    }

    /// Adds a timer that wakes `waker` at `deadline` (past deadlines fire on
    /// the next [`run_expired`](Self::run_expired)). Dropping the returned
    /// handle cancels the timer. O(log n).
    ///
    /// An associated function (`Timers::add(&timers, ..)`) because the handle
    /// keeps the `Arc` and the loom shim's `Arc` cannot be a method receiver.
    pub(crate) fn add(this: &Arc<Timers>, deadline: Instant, waker: Waker) -> TimerHandle {
        let when = this.nanos(deadline);
        let entry = Arc::new(Entry {
            state: AtomicU8::new(PENDING),
            waker: Mutex::new(Some(waker)),
        });
        this.live.fetch_add(1, Relaxed);
        let earlier = {
            let mut heap = this.lock();
            let seq = heap.seq;
            heap.seq += 1;
            heap.heap.push(Slot {
                when,
                seq,
                entry: entry.clone(),
            });
            this.sweep_zombies(&mut heap);
            this.publish_next(&heap)
        };
        if earlier == Some(when) {
            if let Some(wake) = &this.wake {
                wake(deadline);
            }
        }
        TimerHandle {
            entry,
            timers: this.clone(),
        }
    }

    /// Fires every timer whose deadline is at or before `now`, waking their
    /// tasks after the lock is released, earliest first. Returns how many
    /// fired and the next pending deadline.
    ///
    /// Cheap when nothing is due: one atomic load, no lock.
    pub(crate) fn run_expired(&self, now: Instant) -> Expired {
        let now = self.nanos(now);
        let mut fired = 0;
        if self.next.load(Acquire) > now {
            return Expired {
                fired,
                next_deadline: self.next_deadline(),
            };
        }
        loop {
            let mut wakers: [Option<Waker>; WAKE_BATCH] = Default::default();
            let mut n = 0;
            {
                let mut heap = self.lock();
                while n < WAKE_BATCH {
                    match heap.heap.peek() {
                        Some(top) if top.when <= now => {}
                        _ => break,
                    }
                    let Some(slot) = heap.heap.pop() else { break };
                    match slot.entry.fire() {
                        Fire::Fired(waker) => {
                            self.live.fetch_sub(1, Relaxed);
                            wakers[n] = waker;
                            n += 1;
                        }
                        Fire::WasCancelled => {
                            self.zombies.fetch_sub(1, Relaxed);
                        }
                    }
                }
                self.sweep_zombies(&mut heap);
                self.publish_next(&heap);
            }
            fired += n;
            for waker in wakers.iter_mut().take(n).filter_map(Option::take) {
                waker.wake();
            }
            if n < WAKE_BATCH {
                break;
            }
        }
        Expired {
            fired,
            next_deadline: self.next_deadline(),
        }
    }

    /// The earliest pending deadline (possibly of a cancelled entry not yet
    /// swept, which only makes an M wake early). Lock-free: another M reads
    /// it to decide how long to sleep.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.next.load(Acquire) {
            NO_DEADLINE => None,
            nanos => Some(self.epoch + Duration::from_nanos(nanos)),
        }
    }

    /// Pending timers (added, not fired, not cancelled): a racy snapshot.
    pub(crate) fn len(&self) -> usize {
        self.live.load(Relaxed)
    }

    /// Whether no timer is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries in the heap, zombies included (for tests and schedtrace's
    /// `timerslen`).
    pub(crate) fn heap_len(&self) -> usize {
        self.lock().heap.len()
    }

    /// `deadline` as nanoseconds since `epoch`, saturating at 0 and below
    /// `NO_DEADLINE`. No rounding: precision is the clock's.
    fn nanos(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since)
            .unwrap_or(NO_DEADLINE - 1)
            .min(NO_DEADLINE - 1)
    }

    /// Stores the top's deadline in `next`; returns it. Caller holds the lock.
    fn publish_next(&self, heap: &Heap) -> Option<u64> {
        let top = heap.heap.peek().map(|slot| slot.when);
        // Release: pairs with the Acquire loads in `next_deadline` and the
        // fast path of `run_expired`.
        self.next.store(top.unwrap_or(NO_DEADLINE), Release);
        top
    }

    /// Go's threshold: drop zombies once they are a quarter of the heap.
    /// Caller holds the lock.
    fn sweep_zombies(&self, heap: &mut Heap) {
        let zombies = self.zombies.load(Relaxed);
        if zombies < MIN_ZOMBIES_TO_SWEEP || (zombies as usize) < heap.heap.len() / 4 {
            return;
        }
        let removed = heap
            .heap
            .retain(|slot| slot.entry.state.load(Acquire) != CANCELLED);
        self.zombies.fetch_sub(removed as isize, Relaxed);
    }

    /// Called by a cancel: sweeps if zombies dominate and the lock is free
    /// (never waits for it, so a drop stays O(1)).
    fn maybe_sweep(&self) {
        let zombies = self.zombies.load(Relaxed);
        if zombies < MIN_ZOMBIES_TO_SWEEP {
            return;
        }
        if let Ok(mut heap) = self.heap.try_lock() {
            if zombies as usize >= heap.heap.len() / 2 {
                self.sweep_zombies(&mut heap);
                self.publish_next(&heap);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Heap> {
        // The heap is consistent between statements (a panic can only come
        // from allocation in `push`), so a poisoned lock is still usable.
        self.heap.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers")
            .field("len", &self.len())
            .field("next_deadline", &self.next_deadline())
            .finish()
    }
}

/// Outcome of `Entry::fire`.
enum Fire {
    Fired(Option<Waker>),
    WasCancelled,
}

impl Entry {
    /// `PENDING → FIRED`, then takes the waker. Called under the heap lock.
    fn fire(&self) -> Fire {
        // AcqRel: Release pairs with the Acquire load in `is_fired`.
        match self.state.compare_exchange(PENDING, FIRED, AcqRel, Acquire) {
            Ok(_) => Fire::Fired(lock_waker(&self.waker).take()),
            Err(_) => Fire::WasCancelled,
        }
    }
}

fn lock_waker(waker: &Mutex<Option<Waker>>) -> MutexGuard<'_, Option<Waker>> {
    waker.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered timer, owned by one `Sleep`. Dropping it cancels the timer.
pub(crate) struct TimerHandle {
    entry: Arc<Entry>,
    timers: Arc<Timers>,
}

impl TimerHandle {
    /// Whether the timer has fired.
    pub(crate) fn is_fired(&self) -> bool {
        self.entry.state.load(Acquire) == FIRED
    }

    /// `Ready` once fired; otherwise records `cx`'s waker (replacing an
    /// older one) and returns `Pending`.
    pub(crate) fn poll_fired(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_fired() {
            return Poll::Ready(());
        }
        {
            let mut slot = lock_waker(&self.entry.waker);
            match &*slot {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        // See Orderings: a fire that took the lock before us is seen here.
        if self.is_fired() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for TimerHandle {
    fn drop(&mut self) {
        if self
            .entry
            .state
            .compare_exchange(PENDING, CANCELLED, AcqRel, Relaxed)
            .is_err()
        {
            return; // fired: the heap no longer holds it
        }
        self.timers.live.fetch_sub(1, Relaxed);
        self.timers.zombies.fetch_add(1, Relaxed);
        // Drop the waker now, not when the zombie is swept: it may hold the
        // last reference to a task that would otherwise stay allocated.
        let waker = lock_waker(&self.entry.waker).take();
        drop(waker);
        self.timers.maybe_sweep();
    }
}

impl std::fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerHandle")
            .field("fired", &self.is_fired())
            .finish()
    }
}
