//! The collector's view of the arena: allocate GC objects, find the span and
//! slot of any pointer, mark, enumerate GC spans, and sweep them.
//!
//! GC objects live in spans of their own (span class `class << 1 | 1`), never
//! shared with `SpanAlloc` objects, so `for_each_gc_span` enumerates exactly
//! the collector's heap and `SpanAlloc::dealloc` refuses GC pointers.
//!
//! # Phases and allocate-black (Go's rules, `sweepgen` included)
//! The collector drives a phase word:
//! - `gc_begin_mark()`: phase MARK. Every `gc_alloc` returns an object whose
//!   mark bit is already set ("allocated black"), so a mark cycle never
//!   frees an object born during it.
//! - `gc_begin_sweep()`: phase SWEEP and the heap's `sweepgen` advances by 2;
//!   every existing GC span is now unswept (`span.sweepgen == h - 2`).
//!   `gc_alloc` allocates black only in unswept spans (their sweep will use
//!   this cycle's marks); in swept spans and spans created from now on it
//!   allocates white, because their mark bits were cleared for the next cycle.
//! - `gc_end_cycle()`: phase OFF, after every span was swept; allocation is
//!   white everywhere.
//!
//! # What may run concurrently
//! - `mark`, `is_marked`, `is_allocated`, `span_of`, `index_of`, `base_of`:
//!   any thread, any time, concurrently with allocation (bitmaps are atomic;
//!   a span's identity fields are stable while it is in use).
//! - `gc_alloc` on mutators during every phase.
//! - `gc_sweep_span`: one collector thread at a time (sweeps of different
//!   spans must not run in parallel, and only the sweep returns small GC
//!   spans to the mheap, which is why a `for_each_gc_span` snapshot stays
//!   valid while its caller sweeps; `gc_free` returns a large object's span,
//!   but only while no collector pass runs). It may run while mutators allocate in the same span:
//!   both take the span's `gc_lock`; the `dead` callback runs with no lock
//!   held, so it may allocate (GC or `SpanAlloc`) and free `SpanAlloc` memory.
//! - Checked by `tests/loom_gc_sweep.rs`: `gc_alloc` racing `gc_sweep_span`
//!   on one span never loses the new object.
//! - `gc_free`, `gc_reuse_dead`, `gc_keep_dead`, `gc_alloc_dead_batch`: a
//!   mutator freeing or reusing objects at count zero, only inside a barrier
//!   operation that saw the collector's phase OFF (gc/barrier.rs, "Last
//!   drop", "Dead slots"): no snapshot, mark or sweep runs meanwhile. Other
//!   mutators may allocate or free in the same span (`gc_lock`). Dead slots
//!   stay allocated here; the collector releases the ones a thread never
//!   reuses.
//! - A mutator's allocation that began before `gc_begin_mark` returned may
//!   still allocate white: the collector's handshake with mutators (its
//!   safepoint) must order phase changes against allocation, as Go's STW
//!   phase changes do.

use crate::global::{alloc_large, free_large};
use crate::loom::sync::atomic::Ordering;
use crate::mcache::with_mcache;
use crate::mcentral::MCentral;
use crate::mheap::HEAP;
#[cfg(not(loom))]
use crate::sizeclass::NUM_CLASSES;
use crate::sizeclass::{CLASS_NPAGES, class_for, span_class};
use crate::span::{BITMAP_WORDS, FreeCursor, Span, word_of};
use crate::stats::{CENTRAL, bump};
use std::alloc::Layout;
use std::ptr::{self, NonNull};

pub(crate) use crate::span::SpanRef;

/// Phase word: no collection in progress.
pub(crate) const GC_OFF: u8 = 0;
/// Phase word: marking; allocation is black.
pub(crate) const GC_MARK: u8 = 1;
/// Phase word: sweeping; allocation is black in unswept spans only.
pub(crate) const GC_SWEEP: u8 = 2;

/// Starts a mark phase: from now on `gc_alloc` allocates black.
pub(crate) fn gc_begin_mark() {
    HEAP.gc_phase.store(GC_MARK, Ordering::SeqCst);
}

/// Ends marking and starts sweeping: advances `sweepgen` by 2, making every
/// GC span unswept.
pub(crate) fn gc_begin_sweep() {
    HEAP.sweepgen.fetch_add(2, Ordering::SeqCst);
    HEAP.gc_phase.store(GC_SWEEP, Ordering::SeqCst);
}

/// Ends the cycle (every span swept): allocation is white again.
pub(crate) fn gc_end_cycle() {
    HEAP.gc_phase.store(GC_OFF, Ordering::SeqCst);
}

/// Whether an object allocated in `span` now must be born marked.
#[inline]
fn alloc_black(span: &Span) -> bool {
    match HEAP.gc_phase.load(Ordering::Relaxed) {
        GC_MARK => true,
        GC_SWEEP => span.sweepgen.load(Ordering::Relaxed) != HEAP.sweepgen.load(Ordering::Relaxed),
        _ => false,
    }
}

/// Allocates a GC object: from a GC span of its class cached by this thread,
/// or a large GC span of its own. Not zeroed. `None` when the size is
/// impossible or the OS refuses memory. Black or white as the phase says.
pub(crate) fn gc_alloc(layout: Layout) -> Option<NonNull<u8>> {
    gc_alloc_with(layout, false)
}

/// As `gc_alloc`, but the object is always born marked (for a collector
/// that allocates its own structures during marking, or wants an object to
/// survive the current cycle regardless of phase).
pub(crate) fn gc_alloc_marked(layout: Layout) -> Option<NonNull<u8>> {
    gc_alloc_with(layout, true)
}

fn gc_alloc_with(layout: Layout, force_black: bool) -> Option<NonNull<u8>> {
    let Some(class) = class_for(layout.size(), layout.align()) else {
        let p = NonNull::new(alloc_large(layout.size(), layout.align(), true))?;
        // SAFETY: `p` was just returned by alloc_large, so its span is in use.
        let span = span_of(p.as_ptr()).expect("gort-alloc: fresh large GC object has no span");
        if force_black || alloc_black(span.span()) {
            span.mark(0);
        }
        return Some(p);
    };
    if let Some(p) = with_mcache(|c| gc_alloc_cached(c, class, force_black)) {
        return NonNull::new(p);
    }
    NonNull::new(gc_alloc_uncached(class, force_black))
}

/// Takes a slot from a GC span under its gc_lock; `None` if it is full.
/// (`pub(crate)` for the loom model of allocation racing a sweep.)
pub(crate) fn take_slot(span: SpanRef, force_black: bool) -> Option<*mut u8> {
    let mut slot = [ptr::null_mut()];
    (take_slots(span, force_black, &mut slot) == 1).then_some(slot[0])
}

/// Takes up to `out.len()` slots from a GC span under one acquisition of its
/// gc_lock, writing them to `out`; returns how many (0: the span is full).
fn take_slots(span: SpanRef, force_black: bool, out: &mut [*mut u8]) -> usize {
    let s = span.span();
    let nelems = s.nelems.load(Ordering::Relaxed);
    span.lock_gc();
    let mut taken = 0;
    // Alloc bits of one bitmap word not stored yet: one store per word
    // instead of one per slot (the cursor hands out slots in order).
    let mut pending: Option<(usize, u64)> = None;
    while taken < out.len() {
        // SAFETY: a GC span's `local` is under its gc_lock, held here.
        let idx = s.local.with_mut(|l| unsafe {
            let l = &mut *l;
            let idx = l.cursor.next(&s.alloc_bits, nelems)?;
            l.nalloc += 1;
            Some(idx)
        });
        let Some(idx) = idx else { break };
        if force_black || alloc_black(s) {
            // Mark before the alloc bit: a sweep reads both under gc_lock,
            // and the collector's `is_allocated` must never see an allocated
            // unmarked object born during marking.
            span.mark(idx);
        }
        let bit = 1u64 << (idx % 64);
        pending = match pending {
            Some((w, bits)) if w == idx / 64 => Some((w, bits | bit)),
            Some((w, bits)) => {
                // SAFETY: we hold gc_lock, which owns a GC span's alloc_bits.
                unsafe { span.set_alloc_bits(w, bits) };
                Some((idx / 64, bit))
            }
            None => Some((idx / 64, bit)),
        };
        out[taken] = span.base_of(idx);
        taken += 1;
    }
    if let Some((w, bits)) = pending {
        // SAFETY: as above.
        unsafe { span.set_alloc_bits(w, bits) };
    }
    span.unlock_gc();
    taken
}

fn gc_alloc_cached(c: &mut crate::mcache::MCache, class: usize, force_black: bool) -> *mut u8 {
    let mut slot = [ptr::null_mut()];
    gc_alloc_cached_n(c, class, force_black, &mut slot);
    slot[0]
}

/// Fills `out` (at least one slot, up to all of it) from the thread's cached
/// GC span of `class`, refilling the cache from the mcentral or the mheap
/// when the span is full; 0 when memory runs out.
fn gc_alloc_cached_n(
    c: &mut crate::mcache::MCache,
    class: usize,
    force_black: bool,
    out: &mut [*mut u8],
) -> usize {
    let sc = span_class(class, true);
    loop {
        if let Some(sp) = NonNull::new(c.gc[class]) {
            // SAFETY: cached span structs live forever.
            let span = unsafe { SpanRef::from_ptr(sp) };
            let taken = take_slots(span, force_black, out);
            if taken != 0 {
                let mallocs = &c.counters().mallocs[sc];
                // The owner is the counter's only writer (stats::bump).
                mallocs.store(
                    mallocs.load(Ordering::Relaxed) + taken as u64,
                    Ordering::Relaxed,
                );
                return taken;
            }
            c.gc[class] = ptr::null_mut();
            HEAP.central[sc].uncache_gc_span(span);
        }
        let id = c.id();
        if id == 0 {
            return 0;
        }
        let span = match HEAP.central[sc].cache_span(id) {
            Some((span, _)) => span,
            None => match HEAP.alloc_span(CLASS_NPAGES[class] as usize, sc, 0, 0, id) {
                Some(span) => span,
                None => return 0,
            },
        };
        c.gc[class] = span.as_ptr();
    }
}

/// GC allocation for a thread without an mcache (during its exit).
#[cold]
fn gc_alloc_uncached(class: usize, force_black: bool) -> *mut u8 {
    let sc = span_class(class, true);
    let central = &HEAP.central[sc];
    let mut l = central.lock();
    loop {
        if let Some(span) = MCentral::first_partial(&l) {
            if let Some(p) = take_slot(span, force_black) {
                CENTRAL.mallocs[sc].fetch_add(1, Ordering::Relaxed);
                return p;
            }
            // Full: file it as such and look again.
            MCentral::refile(&mut l, span, span.nelems());
            continue;
        }
        match HEAP.alloc_span(CLASS_NPAGES[class] as usize, sc, 0, 0, 0) {
            Some(span) => MCentral::push_partial(&mut l, span),
            None => return ptr::null_mut(),
        }
    }
}

/// Frees one GC object at once, outside any sweep: its slot's alloc and mark
/// bits are cleared under the span's `gc_lock`, and the span's free cursor
/// moves back to the slot when it is behind, so the next allocation in this
/// span reuses it while it is still in cache. A span that was full stays on
/// its mcentral's full list until the next sweep refiles it (no mcentral lock
/// here); a large object's span goes back to the mheap.
///
/// # Safety
/// `ptr` is the base of an allocated GC object that no one will read again,
/// and no collector pass can be reading the arena's GC spans now: the caller
/// runs inside a barrier operation that saw the collector's phase OFF
/// (gc/barrier.rs, "Last drop"), so no snapshot, mark or sweep is in progress
/// and the next one waits for the caller.
pub(crate) unsafe fn gc_free(ptr: NonNull<u8>) {
    let span = span_of(ptr.as_ptr()).expect("gort-alloc: gc_free of a pointer outside the arena");
    debug_assert!(span.is_gc(), "gort-alloc: gc_free on a non-GC span");
    if span.is_large() {
        // The mark of a large object allocated black in the window between
        // `gc_begin_mark` and the barrier's MARK goes with its span.
        free_large(span);
        return;
    }
    let s = span.span();
    let idx = span.index_of(ptr.as_ptr());
    let sc = s.spanclass.load(Ordering::Relaxed);
    span.lock_gc();
    // SAFETY: we hold gc_lock, which owns a GC span's alloc_bits.
    let was_allocated = unsafe { span.clear_alloc_bit(idx) };
    debug_assert!(was_allocated, "gort-alloc: gc_free of a free slot");
    // An object allocated black (arena MARK, barrier still OFF) has its mark
    // set; left there, the next bitmap swap would make the slot allocated
    // again with no object in it.
    // Nothing else marks the slot now (no handle exists, no collector pass
    // runs), so a load spares the locked RMW in the common, unmarked case.
    if span.is_marked(idx) {
        let bit = 1u64 << (idx % 64);
        s.gcmark_bits[idx / 64].fetch_and(!bit, Ordering::Relaxed);
    }
    // SAFETY: a GC span's `local` is under its gc_lock, held here.
    s.local.with_mut(|l| unsafe {
        let l = &mut *l;
        l.nalloc -= 1;
        // Keep "every slot below `freeindex` is allocated": a cached
        // allocator that fails to find a slot must mean the span is full.
        if idx < l.cursor.freeindex {
            l.cursor = FreeCursor::at(&s.alloc_bits, idx);
        } else if word_of(idx) == word_of(l.cursor.freeindex) {
            l.cursor.alloc_cache |= 1 << (idx - l.cursor.freeindex);
        }
    });
    span.unlock_gc();
    // The thread's own counter when it has one (no shared cache line).
    let counted = with_mcache(|c| {
        let registered = c.id() != 0;
        if registered {
            bump(&c.counters().frees[sc]);
        }
        registered
    });
    if counted != Some(true) {
        CENTRAL.frees[sc].fetch_add(1, Ordering::Relaxed);
    }
}

/// How many dead slots of one size class a thread keeps for reuse.
#[cfg(not(loom))]
const DEAD_SLOTS: usize = 32;

/// A thread's dead GC slots, per small size class: objects freed at count
/// zero whose slots stay allocated in the arena, to be handed to the next
/// `Gc::new` of the same class without touching the span (no `gc_lock`, no
/// bitmap). `tag` names the collector state they were cached under; the
/// collector's side of the rule is in gc/barrier.rs, "Dead slots".
#[cfg(not(loom))]
struct DeadSlots {
    tag: std::cell::Cell<usize>,
    len: [std::cell::Cell<u8>; NUM_CLASSES],
    slots: [[std::cell::Cell<*mut u8>; DEAD_SLOTS]; NUM_CLASSES],
}

#[cfg(not(loom))]
std::thread_local! {
    static DEAD: DeadSlots = const {
        DeadSlots {
            tag: std::cell::Cell::new(usize::MAX),
            len: [const { std::cell::Cell::new(0) }; NUM_CLASSES],
            slots: [const { [const { std::cell::Cell::new(ptr::null_mut()) }; DEAD_SLOTS] };
                NUM_CLASSES],
        }
    };
}

/// The class whose dead slots fit `layout`, if the cache serves it.
#[cfg(not(loom))]
#[inline]
fn dead_class(layout: Layout) -> Option<usize> {
    if layout.size() <= 1024 && layout.align() <= 8 {
        class_for(layout.size(), layout.align())
    } else {
        None
    }
}

/// Takes a dead slot for an object of `layout` cached under `tag`, if this
/// thread has one. The slot is still allocated in the arena, with whatever
/// mark it had; the caller overwrites the object.
#[inline]
pub(crate) fn gc_reuse_dead(layout: Layout, tag: usize) -> Option<NonNull<u8>> {
    #[cfg(not(loom))]
    {
        let class = dead_class(layout)?;
        DEAD.try_with(|dead| {
            let n = dead.len[class].get();
            if n == 0 || dead.tag.get() != tag {
                return None;
            }
            dead.len[class].set(n - 1);
            NonNull::new(dead.slots[class][usize::from(n - 1)].get())
        })
        .ok()
        .flatten()
    }
    #[cfg(loom)]
    {
        let _ = (layout, tag);
        None
    }
}

/// Slots taken from the span per span-lock acquisition when a thread's dead
/// slots of a class run out.
#[cfg(not(loom))]
const DEAD_BATCH: usize = DEAD_SLOTS / 2;

/// Takes `DEAD_BATCH` fresh slots of `layout`'s class from the thread's
/// cached span under one span lock, makes each a dead slot with `init`
/// (which writes its dead header), caches them under `tag` and returns one
/// of them. `None` when the class is not cached (the caller allocates
/// normally) or memory runs out.
#[inline(never)]
pub(crate) fn gc_alloc_dead_batch(
    layout: Layout,
    tag: usize,
    init: impl Fn(NonNull<u8>),
) -> Option<NonNull<u8>> {
    #[cfg(not(loom))]
    {
        let class = dead_class(layout)?;
        let mut batch = [ptr::null_mut(); DEAD_BATCH];
        let taken = with_mcache(|c| gc_alloc_cached_n(c, class, false, &mut batch))?;
        let (first, rest) = batch[..taken].split_first()?;
        for &slot in rest {
            let slot = NonNull::new(slot)?;
            init(slot);
            // Always kept (the caller found the cache empty); a slot that
            // were not would still not leak: its dead header lets the next
            // snapshot release it.
            let kept = gc_keep_dead(slot, layout, tag);
            debug_assert!(kept, "dead-slot cache full after a miss");
        }
        NonNull::new(*first)
    }
    #[cfg(loom)]
    {
        let _ = (layout, tag, init);
        None
    }
}

/// Keeps the slot of a dead object of `layout` for this thread's next
/// allocation of its class, under `tag`; false (nothing kept) when the
/// class is not cached or its cache is full. Entries cached under another
/// tag are dropped first: they stay allocated in the arena, and the
/// collector frees them (gc/barrier.rs, "Dead slots").
#[inline]
pub(crate) fn gc_keep_dead(ptr: NonNull<u8>, layout: Layout, tag: usize) -> bool {
    #[cfg(not(loom))]
    {
        let Some(class) = dead_class(layout) else {
            return false;
        };
        DEAD.try_with(|dead| {
            if dead.tag.get() != tag {
                for len in &dead.len {
                    len.set(0);
                }
                dead.tag.set(tag);
            }
            let n = dead.len[class].get();
            if usize::from(n) == DEAD_SLOTS {
                return false;
            }
            dead.slots[class][usize::from(n)].set(ptr.as_ptr());
            dead.len[class].set(n + 1);
            true
        })
        .unwrap_or(false)
    }
    #[cfg(loom)]
    {
        let _ = (ptr, layout, tag);
        false
    }
}

/// The span holding `ptr` (any byte of any in-use span, normal or GC), in
/// O(1) through the page map; `None` for memory the arena does not hold.
pub(crate) fn span_of(ptr: *const u8) -> Option<SpanRef> {
    let sp = NonNull::new(HEAP.pagemap.lookup(ptr as usize))?;
    // SAFETY: page-map entries point at span structs that live forever.
    Some(unsafe { SpanRef::from_ptr(sp) })
}

/// Calls `f` for every in-use GC span: a snapshot taken under the GC-span
/// lock, iterated with no lock held (so `f` may allocate and sweep). Spans
/// created after the snapshot are not visited.
pub(crate) fn for_each_gc_span(mut f: impl FnMut(SpanRef)) {
    let mut stack_buf = [ptr::null_mut::<Span>(); 256];
    let n = HEAP.gc_list_snapshot(&mut stack_buf);
    if n <= stack_buf.len() {
        for &p in &stack_buf[..n] {
            // SAFETY: snapshot entries are span structs, which live forever.
            f(unsafe { SpanRef::from_ptr(NonNull::new_unchecked(p)) });
        }
        return;
    }
    // More spans than fit on the stack: a buffer straight from the OS
    // (never the global allocator), with room for growth since the count.
    loop {
        let cap = HEAP.gc_list_snapshot(&mut []) + 64;
        let bytes = cap * size_of::<*mut Span>();
        let Some(mem) = crate::os::map(bytes) else {
            // No memory for a snapshot: visit what fits on the stack.
            for &p in &stack_buf {
                // SAFETY: as above.
                f(unsafe { SpanRef::from_ptr(NonNull::new_unchecked(p)) });
            }
            return;
        };
        // SAFETY: `mem` is a fresh mapping of `cap` pointers, zeroed (null).
        let buf = unsafe { std::slice::from_raw_parts_mut(mem.cast::<*mut Span>(), cap) };
        let n = HEAP.gc_list_snapshot(buf);
        if n <= cap {
            for &p in &buf[..n] {
                // SAFETY: as above.
                f(unsafe { SpanRef::from_ptr(NonNull::new_unchecked(p)) });
            }
        }
        // SAFETY: the mapping is ours and `buf` is not used past here.
        unsafe { crate::os::unmap(mem, bytes) };
        if n <= cap {
            return;
        }
    }
}

/// Sweeps a GC span (Go's `mspan.sweep`): calls `dead` for every object that
/// is allocated but unmarked (the collector runs destructors there), then
/// makes `allocBits = gcmarkBits` and clears the mark bits, so the dead slots
/// are free again. A span left empty goes back to the mheap unless a
/// mutator caches it. A span already swept this cycle is left alone.
///
/// Only the collector calls this, one span at a time (module doc).
pub(crate) fn gc_sweep_span(span: SpanRef, mut dead: impl FnMut(*mut u8)) {
    debug_assert!(span.is_gc(), "gort-alloc: gc_sweep_span on a non-GC span");
    let s = span.span();
    let h = HEAP.sweepgen.load(Ordering::Relaxed);
    if span.is_large() {
        if s.sweepgen.load(Ordering::Relaxed) == h {
            return;
        }
        if span.is_marked(0) {
            s.gcmark_bits[0].store(0, Ordering::Relaxed);
            s.sweepgen.store(h, Ordering::Relaxed);
        } else {
            dead(span.base_of(0));
            crate::global::free_large(span);
        }
        return;
    }
    // 1. The dead set, under gc_lock. It cannot change afterwards: marking
    //    is over, only this sweep frees, and new objects are born black.
    let mut dead_bits = [0u64; BITMAP_WORDS];
    span.lock_gc();
    let swept = s.sweepgen.load(Ordering::Relaxed) == h;
    if !swept {
        for (w, d) in dead_bits.iter_mut().enumerate() {
            *d =
                s.alloc_bits[w].load(Ordering::Relaxed) & !s.gcmark_bits[w].load(Ordering::Relaxed);
        }
    }
    span.unlock_gc();
    if swept {
        return;
    }
    // 2. Destructors, with no lock held.
    let mut ndead = 0u64;
    for (w, &bits) in dead_bits.iter().enumerate() {
        let mut b = bits;
        while b != 0 {
            let idx = w * 64 + b.trailing_zeros() as usize;
            dead(span.base_of(idx));
            ndead += 1;
            b &= b - 1;
        }
    }
    // 3. The bitmap swap, under the mcentral lock (list moves) and gc_lock.
    let sc = s.spanclass.load(Ordering::Relaxed);
    let central = &HEAP.central[sc];
    let mut l = central.lock();
    span.lock_gc();
    let mut nalloc = 0;
    for w in 0..BITMAP_WORDS {
        let m = s.gcmark_bits[w].swap(0, Ordering::Relaxed);
        s.alloc_bits[w].store(m, Ordering::Relaxed);
        nalloc += m.count_ones() as usize;
    }
    // SAFETY: a GC span's `local` is under its gc_lock, held here.
    s.local.with_mut(|p| unsafe {
        (*p).nalloc = nalloc;
        (*p).cursor = FreeCursor::rewind(&s.alloc_bits);
    });
    s.sweepgen.store(h, Ordering::Relaxed);
    let cached = s.owner.load(Ordering::Relaxed) != 0;
    span.unlock_gc();
    CENTRAL.frees[sc].fetch_add(ndead, Ordering::Relaxed);
    if cached {
        return;
    }
    if nalloc == 0 && MCentral::remove_if_listed(&mut l, span) {
        drop(l);
        // SAFETY: the span is empty, off every list and uncached (owner 0
        // under the mcentral lock, which we held until it was unlisted).
        unsafe { HEAP.free_span(span) };
        return;
    }
    MCentral::refile(&mut l, span, nalloc);
}

/// Bytes of live GC objects (allocated minus swept), for the pacer.
pub(crate) fn gc_heap_live_bytes() -> usize {
    crate::stats::live_bytes(true) as usize
}
