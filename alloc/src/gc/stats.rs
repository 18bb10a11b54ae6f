//! The collector's statistics: cycles, pauses, heap goal.
//!
//! A "pause" here is the time a mutator operation waited for the collector:
//! in this design the only such wait is `GcCell::borrow_mut`/`GcMutex::lock`
//! spinning while the collector reads that one cell's handles (cell.rs).
//! Cycles themselves stop no thread. `MemStats::gc` (the arena's `stats()`)
//! embeds [`GcStats`]; [`gc_stats`](crate::gc_stats) returns it alone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::gc::pacer;
use crate::loom::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (exclusive, in nanoseconds) of the pause histogram buckets;
/// the last bucket holds everything longer.
pub const PAUSE_BUCKETS_NS: [u64; 6] = [1_000, 10_000, 100_000, 1_000_000, 10_000_000, u64::MAX];

static NUM_GC: AtomicU64 = AtomicU64::new(0);
static LAST_GC: AtomicU64 = AtomicU64::new(0);
static PAUSE_TOTAL_NS: AtomicU64 = AtomicU64::new(0);
static PAUSE_MAX_NS: AtomicU64 = AtomicU64::new(0);
static PAUSE_HIST: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
static FREED_OBJECTS: AtomicU64 = AtomicU64::new(0);
static LEAKED_OBJECTS: AtomicU64 = AtomicU64::new(0);
static DESTRUCTOR_PANICS: AtomicU64 = AtomicU64::new(0);
static LAST_MARK_NS: AtomicU64 = AtomicU64::new(0);
static LAST_SWEEP_NS: AtomicU64 = AtomicU64::new(0);
static LIVE_OBJECTS: AtomicU64 = AtomicU64::new(0);
static UNEXPECTED_DEAD: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the collector's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Completed cycles.
    pub num_gc: u64,
    /// Sum of all mutator waits on the collector, in nanoseconds.
    pub pause_total_ns: u64,
    /// The longest mutator wait on the collector, in nanoseconds.
    pub pause_max_ns: u64,
    /// Mutator waits per bucket of [`PAUSE_BUCKETS_NS`].
    pub pause_hist: [u64; 6],
    /// The heap size (bytes of `Gc` objects) at which the next cycle starts.
    pub next_gc: u64,
    /// When the last cycle ended, in nanoseconds since the Unix epoch (0 if
    /// none has).
    pub last_gc: u64,
    /// Bytes of `Gc` objects not yet freed.
    pub heap_alloc: u64,
    /// Bytes the last cycle found live.
    pub heap_live: u64,
    /// Objects the last cycle found live.
    pub live_objects: u64,
    /// Objects freed by all cycles.
    pub freed_objects: u64,
    /// Unreachable objects whose memory (not value) was kept for a handle a
    /// destructor stored or for `Weak`s, until those are dropped (DESIGN.md,
    /// "Destructors").
    pub leaked_objects: u64,
    /// Destructors of unreachable objects that panicked.
    pub destructor_panics: u64,
    /// Objects the arena's sweep freed that the collector had not condemned:
    /// a broken invariant, always 0 (the tests check it).
    pub unexpected_dead: u64,
    /// Duration of the last cycle's counting and marking, in nanoseconds.
    pub last_mark_ns: u64,
    /// Duration of the last cycle's sweep, in nanoseconds.
    pub last_sweep_ns: u64,
    /// GOGC (negative when off).
    pub gc_percent: i64,
    /// The memory limit in bytes (`usize::MAX` when none).
    pub memory_limit: usize,
}

/// The collector's statistics now.
pub fn gc_stats() -> GcStats {
    let mut pause_hist = [0; 6];
    for (slot, bucket) in pause_hist.iter_mut().zip(PAUSE_HIST.iter()) {
        *slot = bucket.load(Ordering::Relaxed);
    }
    GcStats {
        num_gc: NUM_GC.load(Ordering::Relaxed),
        pause_total_ns: PAUSE_TOTAL_NS.load(Ordering::Relaxed),
        pause_max_ns: PAUSE_MAX_NS.load(Ordering::Relaxed),
        pause_hist,
        next_gc: pacer::next_gc() as u64,
        last_gc: LAST_GC.load(Ordering::Relaxed),
        heap_alloc: pacer::heap_alloc() as u64,
        heap_live: pacer::heap_live() as u64,
        live_objects: LIVE_OBJECTS.load(Ordering::Relaxed),
        freed_objects: FREED_OBJECTS.load(Ordering::Relaxed),
        leaked_objects: LEAKED_OBJECTS.load(Ordering::Relaxed),
        destructor_panics: DESTRUCTOR_PANICS.load(Ordering::Relaxed),
        unexpected_dead: UNEXPECTED_DEAD.load(Ordering::Relaxed),
        last_mark_ns: LAST_MARK_NS.load(Ordering::Relaxed),
        last_sweep_ns: LAST_SWEEP_NS.load(Ordering::Relaxed),
        gc_percent: pacer::gc_percent(),
        memory_limit: pacer::memory_limit(),
    }
}

fn nanos(duration: Duration) -> u64 {
    duration.as_nanos().min(u128::from(u64::MAX)) as u64
}

/// Records one mutator wait on the collector.
pub(crate) fn record_pause(wait: Duration) {
    let ns = nanos(wait);
    PAUSE_TOTAL_NS.fetch_add(ns, Ordering::Relaxed);
    PAUSE_MAX_NS.fetch_max(ns, Ordering::Relaxed);
    let bucket = PAUSE_BUCKETS_NS
        .iter()
        .position(|&bound| ns < bound)
        .unwrap_or(PAUSE_BUCKETS_NS.len() - 1);
    PAUSE_HIST[bucket].fetch_add(1, Ordering::Relaxed);
}

/// What one cycle reports.
pub(crate) struct CycleReport {
    pub(crate) mark: Duration,
    pub(crate) sweep: Duration,
    pub(crate) live_objects: usize,
    pub(crate) freed_objects: usize,
    pub(crate) leaked_objects: usize,
    pub(crate) destructor_panics: usize,
    pub(crate) unexpected_dead: usize,
}

/// Records a finished cycle.
pub(crate) fn record_cycle(report: &CycleReport) {
    LAST_MARK_NS.store(nanos(report.mark), Ordering::Relaxed);
    LAST_SWEEP_NS.store(nanos(report.sweep), Ordering::Relaxed);
    LIVE_OBJECTS.store(report.live_objects as u64, Ordering::Relaxed);
    FREED_OBJECTS.fetch_add(report.freed_objects as u64, Ordering::Relaxed);
    LEAKED_OBJECTS.fetch_add(report.leaked_objects as u64, Ordering::Relaxed);
    DESTRUCTOR_PANICS.fetch_add(report.destructor_panics as u64, Ordering::Relaxed);
    UNEXPECTED_DEAD.fetch_add(report.unexpected_dead as u64, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(nanos)
        .unwrap_or(0);
    LAST_GC.store(now, Ordering::Relaxed);
    NUM_GC.fetch_add(1, Ordering::Release);
}
