//! Allocation counters and `stats()` (Go's `runtime.MemStats`, snake_case).
//!
//! Counting must not slow the fast path, so each thread's mcache owns a
//! `CacheStats` block of per-span-class counters that only it writes (a
//! Relaxed load and store, no read-modify-write) and that `stats()` sums.
//! Blocks live in a registry and are never freed: a thread that exits leaves
//! its block (counts intact) for the next thread to continue. Slow paths
//! (frees from another thread, large objects, sweeps) count in `CENTRAL`
//! with `fetch_add`.
//!
//! Reading is not a snapshot: a `stats()` racing allocations may see a free
//! before its malloc and so, briefly, `frees > mallocs` for a class; the
//! derived fields saturate at zero rather than wrap.

use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sizeclass::{CLASS_SIZE, NUM_CLASSES, NUM_SPAN_CLASSES, PAGE_SIZE};
use std::ptr;

/// Per-span-class malloc and free counts. Index 0 and 1 (size class 0)
/// count large objects, normal and GC.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) mallocs: [AtomicU64; NUM_SPAN_CLASSES],
    pub(crate) frees: [AtomicU64; NUM_SPAN_CLASSES],
    /// Bytes of large objects allocated and freed, normal and GC.
    pub(crate) large_bytes_alloc: [AtomicU64; 2],
    pub(crate) large_bytes_freed: [AtomicU64; 2],
}

impl Counters {
    #[cfg(not(loom))]
    const fn new() -> Counters {
        Counters {
            mallocs: [const { AtomicU64::new(0) }; NUM_SPAN_CLASSES],
            frees: [const { AtomicU64::new(0) }; NUM_SPAN_CLASSES],
            large_bytes_alloc: [const { AtomicU64::new(0) }; 2],
            large_bytes_freed: [const { AtomicU64::new(0) }; 2],
        }
    }

    #[cfg(loom)]
    fn new() -> Counters {
        Counters {
            mallocs: std::array::from_fn(|_| AtomicU64::new(0)),
            frees: std::array::from_fn(|_| AtomicU64::new(0)),
            large_bytes_alloc: std::array::from_fn(|_| AtomicU64::new(0)),
            large_bytes_freed: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Adds one to a counter only the calling thread writes.
#[inline(always)]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A thread's counters, linked into the registry.
pub(crate) struct CacheStats {
    pub(crate) counters: Counters,
    next: *mut CacheStats,
    in_use: AtomicBool,
}

struct Registry {
    head: *mut CacheStats,
    #[cfg(not(loom))]
    blocks: crate::os::FixAlloc,
}

// SAFETY: blocks live forever; the list is changed only under the lock.
unsafe impl Send for Registry {}

crate::loom::global! {
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        head: ptr::null_mut(),
        #[cfg(not(loom))]
        blocks: crate::os::FixAlloc::new(size_of::<CacheStats>()),
    });
}

crate::loom::global! {
    /// Counts from paths that run without an mcache or off the fast path.
    pub(crate) static CENTRAL: Counters = Counters::new();
}

/// Claims a counter block for the calling thread's mcache (reusing one a
/// finished thread left), or `None` when the OS refuses memory for one.
pub(crate) fn register() -> Option<*const CacheStats> {
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = r.head;
    while !p.is_null() {
        // SAFETY: registry blocks live forever.
        let b = unsafe { &*p };
        if !b.in_use.load(Ordering::Relaxed) {
            b.in_use.store(true, Ordering::Relaxed);
            return Some(p);
        }
        p = b.next;
    }
    let block = new_block(&mut r)?;
    // SAFETY: `block` is fresh and unshared; we hold the registry lock.
    unsafe {
        (*block).next = r.head;
        (*block).in_use.store(true, Ordering::Relaxed);
    }
    r.head = block;
    Some(block)
}

#[cfg(not(loom))]
fn new_block(r: &mut Registry) -> Option<*mut CacheStats> {
    // All-zero bytes are a valid CacheStats (atomics zero, null link).
    Some(r.blocks.alloc()?.cast())
}

#[cfg(loom)]
fn new_block(_r: &mut Registry) -> Option<*mut CacheStats> {
    Some(Box::into_raw(Box::new(CacheStats {
        counters: Counters::new(),
        next: ptr::null_mut(),
        in_use: AtomicBool::new(false),
    })))
}

/// Gives a thread's block back at thread exit (its counts stay).
pub(crate) fn unregister(block: *const CacheStats) {
    let _r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: registry blocks live forever.
    unsafe { &*block }.in_use.store(false, Ordering::Relaxed);
}

/// Calls `f` with every counter set: each thread's and the central one.
fn for_each_counters(mut f: impl FnMut(&Counters)) {
    f(&CENTRAL);
    let r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = r.head;
    while !p.is_null() {
        // SAFETY: registry blocks live forever.
        let b = unsafe { &*p };
        f(&b.counters);
        p = b.next;
    }
}

/// Counts for one size class (Go's `MemStats.BySize`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeClassStats {
    /// The class's object size in bytes.
    pub size: u32,
    /// Objects of this class ever allocated.
    pub mallocs: u64,
    /// Objects of this class ever freed.
    pub frees: u64,
}

/// Heap statistics, with the meanings of Go's `runtime.MemStats`.
#[derive(Debug, Clone, Copy)]
pub struct MemStats {
    /// Bytes of allocated heap objects.
    pub heap_alloc: u64,
    /// Bytes of heap address space obtained from the OS (arenas), whether
    /// resident or released.
    pub heap_sys: u64,
    /// Bytes in pages on no span (including released ones).
    pub heap_idle: u64,
    /// Bytes in pages of in-use spans.
    pub heap_inuse: u64,
    /// Bytes of idle pages returned to the OS.
    pub heap_released: u64,
    /// Number of allocated heap objects.
    pub heap_objects: u64,
    /// Objects ever allocated.
    pub mallocs: u64,
    /// Objects ever freed.
    pub frees: u64,
    /// Bytes of allocated objects in GC spans (a part of `heap_alloc`).
    pub gc_heap_alloc: u64,
    /// Per size class counts; index 0 counts large objects (size 0).
    pub by_size: [SizeClassStats; NUM_CLASSES],
    /// The collector's statistics: `num_gc`, `pause_total_ns`, the pause
    /// histogram, `next_gc`, `last_gc` and more (gc/stats.rs).
    #[cfg(not(loom))]
    pub gc: crate::GcStats,
}

/// Bytes of live objects, over all classes or only GC ones.
pub(crate) fn live_bytes(gc_only: bool) -> u64 {
    let mut bytes = 0u64;
    for_each_counters(|c| {
        for sc in 0..NUM_SPAN_CLASSES {
            if gc_only && sc & 1 == 0 {
                continue;
            }
            let n = c.mallocs[sc]
                .load(Ordering::Relaxed)
                .wrapping_sub(c.frees[sc].load(Ordering::Relaxed));
            bytes = bytes.wrapping_add(n.wrapping_mul(CLASS_SIZE[sc >> 1] as u64));
        }
        for k in 0..2 {
            if gc_only && k == 0 {
                continue;
            }
            let n = c.large_bytes_alloc[k]
                .load(Ordering::Relaxed)
                .wrapping_sub(c.large_bytes_freed[k].load(Ordering::Relaxed));
            bytes = bytes.wrapping_add(n);
        }
    });
    // Wrapping sums across threads come out right once every count is in;
    // a racing read can be transiently "negative".
    if bytes > i64::MAX as u64 { 0 } else { bytes }
}

/// Current heap statistics. Takes the registry and mheap locks briefly;
/// allocates nothing.
pub fn stats() -> MemStats {
    let mut by_size = [SizeClassStats::default(); NUM_CLASSES];
    for (c, s) in by_size.iter_mut().enumerate() {
        s.size = CLASS_SIZE[c];
    }
    for_each_counters(|c| {
        for sc in 0..NUM_SPAN_CLASSES {
            let s = &mut by_size[sc >> 1];
            s.mallocs = s
                .mallocs
                .wrapping_add(c.mallocs[sc].load(Ordering::Relaxed));
            s.frees = s.frees.wrapping_add(c.frees[sc].load(Ordering::Relaxed));
        }
    });
    let mallocs: u64 = by_size.iter().map(|s| s.mallocs).sum();
    let frees: u64 = by_size.iter().map(|s| s.frees).sum();
    let (sys, free, released) = crate::mheap::HEAP.page_counts();
    let page = PAGE_SIZE as u64;
    MemStats {
        heap_alloc: live_bytes(false),
        heap_sys: sys as u64 * page,
        heap_idle: free as u64 * page,
        heap_inuse: (sys - free) as u64 * page,
        heap_released: released as u64 * page,
        heap_objects: mallocs.saturating_sub(frees),
        mallocs,
        frees,
        gc_heap_alloc: live_bytes(true),
        by_size,
        #[cfg(not(loom))]
        gc: crate::gc_stats(),
    }
}
