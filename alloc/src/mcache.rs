//! The per-thread span cache (Go's `mcache`): one span per size class for
//! `SpanAlloc` objects and one per class for GC objects, so that almost every
//! allocation and free touches only thread-local state and the span's bitmap.
//!
//! Fast path of `malloc`: find the class; pop the class's local free list
//! (slots this thread freed, LIFO) if it has one; else take the next free
//! slot from the cached span's `FreeCursor` (count-trailing-zeros on
//! `alloc_cache`) and set its bit in `alloc_bits` with a load and a store.
//! Bump a thread-owned counter. No lock, no atomic read-modify-write.
//!
//! Fast path of `free`: `dealloc`'s layout names the size class; if the
//! pointer lies in this thread's cached span of that class (a range check,
//! no page map), or else the page map finds a span that is this thread's
//! cached span of its class, check the slot's bit (and the list key,
//! below), push the slot on the local free list and count. Otherwise the free
//! is remote and goes through the class's mcentral lock.
//!
//! Slow path (`refill`, local list empty and cursor at the span's end): fold
//! in remote frees (`harvest`) and rescan if the span has free bits, else
//! hand it to the mcentral (`uncache_span`) and take a partial (or spare
//! empty) span from it, or a new one from the mheap.
//!
//! Rejected: clearing the alloc bit on every local free and setting it again
//! on reuse (exact bits while cached, but two more read-modify-store
//! sequences and an index computation per pair; the list costs two pointer
//! moves, and the bits are made exact when the span is uncached).
//!
//! Ownership: an `MCache` lives in a thread-local and only its thread touches
//! it. A thread's allocator calls never nest (nothing in gort-alloc allocates
//! through the global allocator), so the `&mut MCache` taken for one call is
//! unique. When the thread exits, the thread-local's destructor flushes every
//! cached span to its mcentral; calls made after that (other thread-locals'
//! destructors freeing memory) find no mcache and take the central paths.

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::Ordering;
use crate::mcentral::{FreeError, Release};
use crate::mheap::HEAP;
use crate::sizeclass::{
    CLASS_DIV_MAGIC, CLASS_NELEMS, CLASS_NPAGES, CLASS_SIZE, NUM_CLASSES, span_class,
};
use crate::span::{FreeCursor, LARGE, SMALL, Span, SpanRef, free_list_contains, word_of};
use crate::stats::{self, CENTRAL, CacheStats, bump};
use std::ptr::{self, NonNull};

/// A cached normal span and the owner-only allocation state that Go keeps
/// in the span itself (kept here so the fast path reads one cache line).
///
/// `local_free` is a LIFO list, threaded through the objects' first word, of
/// slots this thread freed: their alloc bits stay set ("allocated to the
/// mcache") until the span is uncached, when `drain_local_free` clears them.
/// It makes a free-then-alloc pair two pointer moves and hands out the slot
/// that was just used, while its cache line is hot. `nalloc` counts objects
/// held by the program, so `nalloc + len(local_free)` bits are set.
#[derive(Clone, Copy)]
struct Entry {
    span: *mut Span,
    base: usize,
    elem_size: usize,
    nelems: usize,
    cursor: FreeCursor,
    nalloc: usize,
    local_free: usize,
}

const EMPTY: Entry = Entry {
    span: ptr::null_mut(),
    base: 0,
    elem_size: 0,
    nelems: 0,
    cursor: FreeCursor {
        freeindex: 0,
        alloc_cache: 0,
    },
    nalloc: 0,
    local_free: 0,
};

/// A thread's cache.
pub(crate) struct MCache {
    /// This cache's id for `Span::owner`: its stats block's address (0 until
    /// the first refill registers it).
    id: usize,
    stats: *const CacheStats,
    small: [Entry; NUM_CLASSES],
    /// Cached GC spans; their allocation state stays in the span (under its
    /// gc_lock) because the collector's sweep updates it.
    pub(crate) gc: [*mut Span; NUM_CLASSES],
}

/// The thread-local wrapper whose destructor flushes the cache.
struct MCacheCell(UnsafeCell<MCache>);

impl MCacheCell {
    const fn new_cache() -> MCache {
        MCache {
            id: 0,
            stats: ptr::null(),
            small: [EMPTY; NUM_CLASSES],
            gc: [ptr::null_mut(); NUM_CLASSES],
        }
    }
}

impl Drop for MCacheCell {
    fn drop(&mut self) {
        // SAFETY: the destructor runs on the owning thread with no other
        // borrow of the cache alive (allocator calls do not nest).
        self.0.with_mut(|c| unsafe { (*c).flush() });
    }
}

#[cfg(not(loom))]
crate::loom::thread_local! {
    static MCACHE: MCacheCell = const { MCacheCell(UnsafeCell::new(MCacheCell::new_cache())) };
}

// loom's thread_local! has no `const` form.
#[cfg(loom)]
crate::loom::thread_local! {
    static MCACHE: MCacheCell = MCacheCell(UnsafeCell::new(MCacheCell::new_cache()));
}

/// Runs `f` on this thread's mcache, or returns `None` when the thread's
/// cache is gone (thread exit) or being set up.
#[inline(always)]
pub(crate) fn with_mcache<R>(f: impl FnOnce(&mut MCache) -> R) -> Option<R> {
    MCACHE
        .try_with(|c| {
            // SAFETY: only this thread reaches its thread-local, and allocator
            // calls do not nest, so this is the only live reference.
            c.0.with_mut(|p| f(unsafe { &mut *p }))
        })
        .ok()
}

impl MCache {
    /// Registers the cache's stats block (first refill). False on OOM.
    fn ensure_id(&mut self) -> bool {
        if self.id == 0 {
            match stats::register() {
                Some(b) => {
                    self.stats = b;
                    self.id = b as usize;
                }
                None => return false,
            }
        }
        true
    }

    /// This cache's owner id (registering it if needed); 0 on OOM.
    pub(crate) fn id(&mut self) -> usize {
        if self.ensure_id() { self.id } else { 0 }
    }

    /// The counters this thread owns (registered).
    #[inline(always)]
    pub(crate) fn counters(&self) -> &stats::Counters {
        // SAFETY: `stats` is set by ensure_id before any span is cached, and
        // registry blocks live forever.
        unsafe { &(*self.stats).counters }
    }

    /// Allocates a slot of size class `class` (normal objects).
    #[inline(always)]
    fn alloc(&mut self, class: usize) -> *mut u8 {
        let e = &mut self.small[class];
        if e.local_free != 0 {
            let p = e.local_free;
            // SAFETY: list entries are dead slots of the cached span whose
            // first word free_local wrote; this thread owns the list.
            e.local_free = unsafe { (p as *const usize).read() };
            if class > 1 {
                // SAFETY: slots above class 1 hold at least 16 bytes; the
                // slot is ours until returned. Clearing the key keeps a live
                // object from looking freed (see `free_local`).
                unsafe { (p as *mut usize).add(1).write(0) };
            }
            e.nalloc += 1;
            bump(&self.counters().mallocs[span_class(class, false)]);
            return p as *mut u8;
        }
        if !e.span.is_null() {
            // SAFETY: a cached span is in use and its struct lives forever.
            let span = unsafe { &*e.span };
            if let Some(idx) = e.cursor.next(&span.alloc_bits, e.nelems) {
                let w = &span.alloc_bits[word_of(idx)];
                // This cache owns the span: the only writer of alloc_bits.
                w.store(
                    w.load(Ordering::Relaxed) | 1 << (idx % 64),
                    Ordering::Relaxed,
                );
                e.nalloc += 1;
                let p = (e.base + idx * e.elem_size) as *mut u8;
                bump(&self.counters().mallocs[span_class(class, false)]);
                return p;
            }
        }
        self.alloc_slow(class)
    }

    #[cold]
    fn alloc_slow(&mut self, class: usize) -> *mut u8 {
        if !self.refill(class) {
            return ptr::null_mut();
        }
        self.alloc(class)
    }

    /// Makes `small[class]` hold a span with a free slot under its cursor.
    fn refill(&mut self, class: usize) -> bool {
        let sc = span_class(class, false);
        let central = &HEAP.central[sc];
        let e = &mut self.small[class];
        if let Some(span) = NonNull::new(e.span) {
            // SAFETY: cached span structs live forever.
            let span = unsafe { SpanRef::from_ptr(span) };
            if e.nalloc == e.nelems {
                e.nalloc -= central.harvest(span);
            }
            if e.nalloc < e.nelems {
                // Local or remote frees left holes behind the cursor.
                e.cursor = FreeCursor::rewind(&span.span().alloc_bits);
                return true;
            }
            // Full and the local list is empty (alloc pops it first).
            debug_assert_eq!(e.local_free, 0);
            e.span = ptr::null_mut();
            // A full span cannot be empty: nothing to return to the mheap.
            let _ = central.uncache_span(span, e.nelems);
        }
        if !self.ensure_id() {
            return false;
        }
        let (span, nalloc) = match central.cache_span(self.id) {
            Some(got) => got,
            None => {
                let npages = CLASS_NPAGES[class] as usize;
                match HEAP.alloc_span(npages, sc, 0, 0, self.id) {
                    Some(span) => (span, 0),
                    None => return false,
                }
            }
        };
        self.small[class] = Entry {
            span: span.as_ptr(),
            base: span.base(),
            elem_size: CLASS_SIZE[class] as usize,
            nelems: CLASS_NELEMS[class] as usize,
            cursor: FreeCursor::rewind(&span.span().alloc_bits),
            nalloc,
            local_free: 0,
        };
        true
    }

    /// Frees slot `idx` (at address `p`) of `span` if this cache holds the
    /// span; `None` if not.
    #[inline(always)]
    fn free_local(
        &mut self,
        span: &Span,
        idx: usize,
        class: usize,
        p: usize,
    ) -> Option<Result<(), FreeError>> {
        if !ptr::eq(self.small[class].span, span) {
            return None;
        }
        Some(self.push_local(span, idx, class, p))
    }

    /// Frees `p` if it lies in this cache's span of size class `class` (the
    /// class `dealloc`'s layout names), without the page map: the sized
    /// fast path. `None` if `p` is elsewhere (another span, or the layout
    /// was not the allocation's), for the page-map path to settle.
    #[inline(always)]
    fn free_sized(&mut self, class: usize, p: usize) -> Option<Result<(), FreeError>> {
        let e = &self.small[class];
        let off = p.wrapping_sub(e.base);
        // An empty entry has base 0, so `off` is `p` itself: out of range.
        if off >= e.nelems * e.elem_size {
            return None;
        }
        let idx = ((off as u64 * CLASS_DIV_MAGIC[class] as u64) >> 32) as usize;
        if idx * e.elem_size != off {
            return Some(Err(FreeError::Interior));
        }
        // SAFETY: a cached span is in use and its struct lives forever.
        let span = unsafe { &*e.span };
        Some(self.push_local(span, idx, class, p))
    }

    /// Puts slot `idx` (at `p`) of this cache's span of `class` on the local
    /// free list, after the double-free checks.
    #[inline(always)]
    fn push_local(
        &mut self,
        span: &Span,
        idx: usize,
        class: usize,
        p: usize,
    ) -> Result<(), FreeError> {
        let e = &mut self.small[class];
        if span.alloc_bits[word_of(idx)].load(Ordering::Relaxed) & (1 << (idx % 64)) == 0 {
            return Err(FreeError::DoubleFree);
        }
        // A slot already on the local list still has its bit set. Slots of
        // 16 bytes and more carry a key in their second word while listed
        // (glibc's tcache does the same): only a slot showing the key needs
        // the O(n) walk that confirms a double free. 8-byte slots have no
        // room for a key; debug builds walk for them.
        let key = self.id ^ FREE_KEY_SALT;
        if class > 1 {
            // SAFETY: the slot is at least 16 bytes and was handed out by us.
            let listed = unsafe { (p as *const usize).add(1).read() } == key;
            if listed && free_list_contains(e.local_free, p) {
                return Err(FreeError::DoubleFree);
            }
            // SAFETY: as above; the slot is the allocator's until reused.
            unsafe { (p as *mut usize).add(1).write(key) };
        } else if cfg!(debug_assertions) && free_list_contains(e.local_free, p) {
            return Err(FreeError::DoubleFree);
        }
        // SAFETY: the slot is being freed, so its first word (slots are at
        // least 8 bytes and 8-aligned) is the allocator's until reused.
        unsafe { (p as *mut usize).write(e.local_free) };
        e.local_free = p;
        e.nalloc -= 1;
        bump(&self.counters().frees[span_class(class, false)]);
        Ok(())
    }

    /// Hands every cached span back to its mcentral (thread exit).
    fn flush(&mut self) {
        for class in 1..NUM_CLASSES {
            let e = std::mem::replace(&mut self.small[class], EMPTY);
            if let Some(span) = NonNull::new(e.span) {
                // SAFETY: cached span structs live forever.
                let span = unsafe { SpanRef::from_ptr(span) };
                drain_local_free(span, e.local_free);
                if let Release::ToHeap(s) =
                    HEAP.central[span_class(class, false)].uncache_span(span, e.nalloc)
                {
                    // SAFETY: uncache_span found it empty and took it off
                    // every list; no mcache holds it any more.
                    unsafe { HEAP.free_span(s) };
                }
            }
            let g = std::mem::replace(&mut self.gc[class], ptr::null_mut());
            if let Some(span) = NonNull::new(g) {
                // SAFETY: as above.
                let span = unsafe { SpanRef::from_ptr(span) };
                HEAP.central[span_class(class, true)].uncache_gc_span(span);
            }
        }
        if !self.stats.is_null() {
            stats::unregister(self.stats);
        }
        self.id = 0;
    }
}

/// Clears the alloc bits of the slots on a local free list (the owner,
/// giving its span up).
fn drain_local_free(span: SpanRef, mut head: usize) {
    let keyed = span.elem_size() >= 16;
    while head != 0 {
        let idx = span.index_of(head as *const u8);
        // SAFETY: the caller owns the span (it is still cached by it), so it
        // is the only writer of alloc_bits.
        unsafe { span.clear_alloc_bit(idx) };
        let next = head;
        // SAFETY: list entries are dead slots whose first word is the link.
        head = unsafe { (head as *const usize).read() };
        if keyed {
            // SAFETY: a dead slot of at least 16 bytes: drop its key.
            unsafe { (next as *mut usize).add(1).write(0) };
        }
    }
}

/// Mixed into an mcache's id to make the key `free_local` leaves in the
/// second word of slots on its local free list.
const FREE_KEY_SALT: usize = 0x9e37_79b9_7f4a_7c15;

/// Allocates a small normal object of size class `class`; null on OOM.
#[inline]
pub(crate) fn malloc_small(class: usize) -> *mut u8 {
    match with_mcache(|c| c.alloc(class)) {
        Some(p) => p,
        None => malloc_uncached(class),
    }
}

/// Allocation for a thread without an mcache: straight from the mcentral.
#[cold]
fn malloc_uncached(class: usize) -> *mut u8 {
    let sc = span_class(class, false);
    let central = &HEAP.central[sc];
    loop {
        if let Some(p) = central.alloc_uncached() {
            CENTRAL.mallocs[sc].fetch_add(1, Ordering::Relaxed);
            return p;
        }
        match HEAP.alloc_span(CLASS_NPAGES[class] as usize, sc, 0, 0, 0) {
            Some(span) => central.add_partial(span),
            None => return ptr::null_mut(),
        }
    }
}

/// Frees `ptr` through the sized fast path if it lies in this thread's
/// cached span of `class`; `None` when the page-map path must decide.
#[inline(always)]
pub(crate) fn free_sized(ptr: *mut u8, class: usize) -> Option<Result<(), FreeError>> {
    with_mcache(|c| c.free_sized(class, ptr as usize)).flatten()
}

/// Frees slot `idx` of a normal small span of size class `class`.
#[inline]
pub(crate) fn free_small(
    span: SpanRef,
    class: usize,
    idx: usize,
    ptr: *mut u8,
) -> Result<(), FreeError> {
    let s = span.span();
    if let Some(Some(r)) = with_mcache(|c| c.free_local(s, idx, class, ptr as usize)) {
        return r;
    }
    free_remote(span, class, idx)
}

/// A free from a thread that does not cache the object's span.
#[cold]
fn free_remote(span: SpanRef, class: usize, idx: usize) -> Result<(), FreeError> {
    let sc = span_class(class, false);
    match HEAP.central[sc].free_remote(span, idx)? {
        Release::Keep => {}
        Release::ToHeap(s) => {
            // SAFETY: free_remote found the span empty and unlisted, and it
            // is uncached (owner 0 under the mcentral lock).
            unsafe { HEAP.free_span(s) }
        }
    }
    CENTRAL.frees[sc].fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Finds the span of `ptr` and checks it is the start of a live normal
/// object: returns the span and slot index.
#[inline]
pub(crate) fn lookup_for_free(ptr: *mut u8) -> Result<(SpanRef, usize), FreeError> {
    let sp = NonNull::new(HEAP.pagemap.lookup(ptr as usize)).ok_or(FreeError::NotOwned)?;
    // SAFETY: page-map entries point at span structs that live forever.
    let span = unsafe { SpanRef::from_ptr(sp) };
    let state = span.span().state.load(Ordering::Relaxed);
    if state != SMALL && state != LARGE {
        return Err(FreeError::NotOwned);
    }
    if span.is_gc() {
        return Err(FreeError::GcObject);
    }
    let idx = span.index_of(ptr);
    if span.base_of(idx) != ptr {
        return Err(FreeError::Interior);
    }
    Ok((span, idx))
}
