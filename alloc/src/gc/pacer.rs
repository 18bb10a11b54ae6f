//! The pacer: when the next cycle starts (Go's GOGC and GOMEMLIMIT).
//!
//! - `heap_alloc` counts the bytes of every `Gc` object not yet freed (live
//!   and unswept garbage alike): `Gc::new` adds, the sweep and a last drop
//!   that frees at once (handle.rs) subtract. A slot a last drop keeps as a
//!   dead slot (heap_api.rs, `gc_keep_dead`) stays counted, with its bytes
//!   in its header (`Header::dead_bytes`): the `Gc::new` that reuses it adds
//!   only the difference (`note_reuse`), and a snapshot that releases it
//!   unused subtracts them at the cycle's end. A pair of `Gc::new` and last
//!   drop that reuses one slot thus changes no counter at all.
//! - After a cycle found `live` bytes reachable, the goal is
//!   `max(live * (1 + GOGC/100), 4 MiB * GOGC/100)`: Go's heap goal and its
//!   minimum heap. An allocation that brings `heap_alloc` to the goal starts a
//!   background cycle (once: `triggered` stays set until the cycle ends).
//! - GOGC comes from `set_gc_percent` or, at first use, the `GORT_GC`
//!   environment variable (a non-negative integer, or `off`; default 100). A
//!   negative percent or `off` disables pacing by growth.
//! - The arena's memory limit (`set_memory_limit`, env `GORT_MEMLIMIT`,
//!   default none; scavenger.rs owns it) caps the goal at 15/16 of the limit,
//!   so cycles start before the limit is reached; it applies even with GOGC
//!   off, as in Go. Setting it calls `limit_changed`.
//! - Allocation is counted per thread and added to `heap_alloc` in batches of
//!   `BATCH` bytes, so `Gc::new` touches no shared cache line on most calls;
//!   the trigger is at most `BATCH` bytes per thread late.
//!
//! All fields are atomics read Relaxed on the allocation path: a trigger one
//! allocation late is harmless, and the collector recomputes the goal after
//! each cycle.

use crate::loom::sync::Once;
use crate::loom::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

/// Go's minimum heap goal at GOGC=100.
const MIN_HEAP: usize = 4 << 20;
/// GOGC when neither `GORT_GC` nor `set_gc_percent` says otherwise.
const DEFAULT_PERCENT: i64 = 100;
/// The percent value that means "off".
const OFF: i64 = -1;

static PERCENT: AtomicI64 = AtomicI64::new(DEFAULT_PERCENT);
static ENV_READ: Once = Once::new();
static HEAP_ALLOC: AtomicUsize = AtomicUsize::new(0);
static HEAP_LIVE: AtomicUsize = AtomicUsize::new(0);
static NEXT_GC: AtomicUsize = AtomicUsize::new(MIN_HEAP);
static TRIGGERED: AtomicBool = AtomicBool::new(false);

/// Parses a `GORT_GC` value: `off`, or a non-negative integer percent.
pub(crate) fn parse_gc_percent(value: &str) -> Result<i64, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(OFF);
    }
    match value.parse::<i64>() {
        Ok(percent) if percent >= 0 => Ok(percent),
        _ => Err(format!(
            "GORT_GC={value:?} is neither `off` nor a non-negative integer; using {DEFAULT_PERCENT}"
        )),
    }
}

fn read_env() {
    ENV_READ.call_once(|| {
        if let Ok(value) = std::env::var("GORT_GC") {
            match parse_gc_percent(&value) {
                Ok(percent) => PERCENT.store(percent, Ordering::Relaxed),
                Err(message) => eprintln!("gort_alloc: {message}"),
            }
            recompute();
        }
    });
}

/// Sets GOGC: the next cycle starts when the heap has grown by `percent` over
/// what the last cycle found live. A negative value turns growth pacing off
/// (the memory limit still applies). Returns the previous setting (negative
/// when it was off).
pub fn set_gc_percent(percent: i32) -> i32 {
    read_env();
    let new = if percent < 0 { OFF } else { i64::from(percent) };
    let old = PERCENT.swap(new, Ordering::Relaxed);
    recompute();
    old.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Called by `set_memory_limit` (scavenger.rs) after the limit changed:
/// recomputes the goal and starts a cycle if the heap is already past it.
pub(crate) fn limit_changed() {
    recompute();
    if HEAP_ALLOC.load(Ordering::Relaxed) >= NEXT_GC.load(Ordering::Relaxed) {
        trigger();
    }
}

/// The current GOGC (negative when off).
pub(crate) fn gc_percent() -> i64 {
    read_env();
    PERCENT.load(Ordering::Relaxed)
}

/// The current memory limit (`usize::MAX`: none), shared with the
/// scavenger.
pub(crate) fn memory_limit() -> usize {
    crate::scavenger::memory_limit()
}

/// The heap goal for `live` reachable bytes.
pub(crate) fn goal(live: usize, percent: i64, limit: usize) -> usize {
    let by_growth = if percent < 0 {
        usize::MAX
    } else {
        let percent = percent as u128;
        let grown = live as u128 + live as u128 * percent / 100;
        let minimum = MIN_HEAP as u128 * percent / 100;
        grown.max(minimum).min(usize::MAX as u128) as usize
    };
    if limit == usize::MAX {
        return by_growth;
    }
    by_growth.min(limit - limit / 16)
}

fn recompute() {
    let live = HEAP_LIVE.load(Ordering::Relaxed);
    NEXT_GC.store(
        goal(live, PERCENT.load(Ordering::Relaxed), memory_limit()),
        Ordering::Relaxed,
    );
}

fn trigger() {
    if !TRIGGERED.swap(true, Ordering::AcqRel) {
        crate::gc::collector::request_background();
    }
}

/// Bytes a thread allocates before it adds them to `HEAP_ALLOC` (64 KiB: 1.6%
/// of the 4 MiB minimum goal, so pacing stays within a few percent).
const BATCH: usize = 64 << 10;

thread_local! {
    /// Bytes allocated minus bytes freed at count zero by this thread, not
    /// yet added to `HEAP_ALLOC`.
    static UNCOUNTED: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

/// Adds `delta` bytes to this thread's batch; returns the batch when it
/// reached `BATCH` bytes either way (then it is published), else 0.
#[inline]
fn batch(delta: isize) -> isize {
    UNCOUNTED
        .try_with(|uncounted| {
            let total = uncounted.get() + delta;
            if total.unsigned_abs() < BATCH {
                uncounted.set(total);
                0
            } else {
                uncounted.set(0);
                total
            }
        })
        .unwrap_or(delta)
}

/// Accounts a new object of `size` bytes in a slot that already counts
/// `counted` bytes (a dead slot's, or 0 for a fresh slot); may start a
/// background cycle.
#[inline]
pub(crate) fn note_reuse(size: usize, counted: usize) {
    if size == counted {
        return;
    }
    let batch = batch(size as isize - counted as isize);
    if batch != 0 {
        publish(batch);
    }
}

/// Accounts an object of `size` bytes freed at once by its last drop
/// (handle.rs): it no longer counts toward the next trigger.
#[inline]
pub(crate) fn note_free(size: usize) {
    let batch = batch(-(size as isize));
    if batch != 0 {
        publish(batch);
    }
}

#[cold]
fn publish(delta: isize) {
    if delta < 0 {
        // Frees of objects still in another thread's batch may briefly
        // exceed the published total.
        let _ = HEAP_ALLOC.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |heap| {
            Some(heap.saturating_sub(delta.unsigned_abs()))
        });
        return;
    }
    let size = delta as usize;
    let heap = HEAP_ALLOC.fetch_add(size, Ordering::Relaxed) + size;
    if heap >= NEXT_GC.load(Ordering::Relaxed) && !TRIGGERED.load(Ordering::Relaxed) {
        read_env();
        recompute();
        if heap >= NEXT_GC.load(Ordering::Relaxed) {
            trigger();
        }
    }
}

/// Records the end of a cycle that found `live` bytes reachable and freed
/// `freed` bytes.
pub(crate) fn cycle_done(live: usize, freed: usize) {
    // Frees of objects whose allocation is still in a thread's batch may
    // briefly exceed the counted total.
    let _ = HEAP_ALLOC.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |heap| {
        Some(heap.saturating_sub(freed))
    });
    HEAP_LIVE.store(live, Ordering::Relaxed);
    recompute();
    TRIGGERED.store(false, Ordering::Release);
    // Allocation during the cycle may already have passed the new goal.
    if HEAP_ALLOC.load(Ordering::Relaxed) >= NEXT_GC.load(Ordering::Relaxed) {
        trigger();
    }
}

/// Bytes held by `Gc` objects (live and unswept).
pub(crate) fn heap_alloc() -> usize {
    HEAP_ALLOC.load(Ordering::Relaxed)
}

/// Bytes the last cycle found live.
pub(crate) fn heap_live() -> usize {
    HEAP_LIVE.load(Ordering::Relaxed)
}

/// The heap size at which the next cycle starts.
pub(crate) fn next_gc() -> usize {
    NEXT_GC.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_follows_gogc_with_a_4_mib_minimum() {
        assert_eq!(goal(0, 100, usize::MAX), MIN_HEAP);
        assert_eq!(goal(10 << 20, 100, usize::MAX), 20 << 20);
        assert_eq!(goal(10 << 20, 50, usize::MAX), 15 << 20);
        assert_eq!(goal(0, 200, usize::MAX), 2 * MIN_HEAP);
        assert_eq!(goal(10 << 20, OFF, usize::MAX), usize::MAX);
    }

    #[test]
    fn memory_limit_pulls_the_goal_below_the_limit() {
        assert_eq!(goal(10 << 20, 100, 16 << 20), 15 << 20);
        assert_eq!(goal(10 << 20, OFF, 16 << 20), 15 << 20);
        assert_eq!(goal(1 << 20, 100, 64 << 20), MIN_HEAP);
    }

    #[test]
    fn gort_gc_values_parse_or_explain() {
        assert_eq!(parse_gc_percent("off"), Ok(OFF));
        assert_eq!(parse_gc_percent(" OFF "), Ok(OFF));
        assert_eq!(parse_gc_percent("100"), Ok(100));
        assert_eq!(parse_gc_percent("0"), Ok(0));
        let error = parse_gc_percent("-5").unwrap_err();
        assert!(error.contains("GORT_GC"), "{error}");
        assert!(parse_gc_percent("lots").is_err());
    }
}
