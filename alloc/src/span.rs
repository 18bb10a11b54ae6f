//! The span: a run of pages cut into equal slots of one size class (or
//! holding one large object), with its allocation and mark bitmaps kept
//! outside the objects (Go's `mspan`).
//!
//! # Purpose
//! A span is the unit the mheap hands to an mcentral, an mcache caches, the
//! page map points at, and the collector marks and sweeps. Its bitmaps let a
//! sweep be a bitmap copy and let marking leave object memory untouched.
//!
//! # States
//! `state` (one byte):
//! - `FREE`: not in use; its pages are free in the mheap, no page-map entry
//!   points at it, and the struct waits on the mheap's span free list.
//! - `SMALL`: in use, cut into `nelems` slots of `elem_size` bytes.
//! - `LARGE`: in use, one object (over 32 KiB, or over-aligned).
//!
//! A `SMALL` span is further *cached* (`owner != 0`: one mcache allocates from
//! it) or *central* (`owner == 0`: on its mcentral's partial or full list,
//! `list` says which). `sweepgen` follows Go for GC spans: with the mheap's
//! generation `h`, `h - 2` means "needs sweeping", `h` "swept" (or created
//! after the sweep began). Normal spans ignore it.
//!
//! # Transitions
//! - FREE -> SMALL/LARGE: `MHeap::alloc_span`, under the mheap lock; every
//!   field is written, then each page-map slot is published (Release).
//! - SMALL/LARGE -> FREE: `MHeap::free_span`, under the mheap lock, once the
//!   span holds no object; page-map slots are cleared first.
//! - central -> cached: `MCentral::cache_span` (mcentral lock) sets `owner`.
//! - cached -> central: `MCentral::uncache_span` (mcentral lock) clears it.
//! - GC spans: `gc_sweep_span` (collector) moves `sweepgen` from `h - 2` to
//!   `h` under `gc_lock`, copying `gcmark_bits` into `alloc_bits`.
//!
//! # Ownership
//! - `base`, `npages`, `elem_size`, `nelems`, `div_magic`, `spanclass`,
//!   `large_offset`: written by the mheap before publication, read by anyone
//!   holding a pointer from the page map (Relaxed atomics, so a stale reader
//!   of a recycled struct reads a valid value, never a torn one).
//! - `alloc_bits`: normal spans: written by the owning mcache while cached
//!   (load + store, no read-modify-write: it is the only writer), under the
//!   mcentral lock while central. Slots on the owner's local free list
//!   (`mcache.rs`) keep their bit set until the span is uncached. GC spans: written under `gc_lock`. Read by
//!   anyone (the collector's `is_allocated`) with Relaxed loads.
//! - `gcmark_bits`: set by the collector's `mark` (fetch_or, any thread),
//!   by `gc_alloc` for allocate-black objects (under `gc_lock`); cleared by
//!   the sweep under `gc_lock`.
//! - `local` (free cursor and live count): GC spans: under `gc_lock`. Normal
//!   spans: the cursor lives in the owning mcache entry while cached;
//!   `local.nalloc` is read and written under the mcentral lock while central.
//! - `central` (list links, remote-free list): under the mcentral lock.
//! - `gc_links` (list of all GC spans): under the mheap's GC-span lock.
//! - `owner`: written under the mcentral lock; read without it by the free
//!   path, which only compares it with its own mcache (see `mcache.rs`).
//!
//! # Orderings
//! - The page-map store of a span pointer (Release, `PageMap::set_range`)
//!   pairs with the Acquire load in `PageMap::lookup`: a reader that finds the
//!   span sees every identity field written before it by `MHeap::alloc_span`.
//! - `gc_lock`: the Acquire compare-exchange in `SpanRef::lock_gc` pairs with
//!   the Release store in `SpanRef::unlock_gc`.
//! - `set_alloc_bit` (Release) pairs with `is_allocated` (Acquire): the
//!   collector's snapshot reads a slot's bits without `gc_lock`, and an
//!   allocate-black `take_slot` sets the mark before the alloc bit, so a
//!   snapshot that sees the alloc bit sees the mark (free on x86; needed on
//!   weakly ordered CPUs).
//! - `mark` is a Relaxed fetch_or: the collector's handshake with mutators
//!   (its own barrier) orders marks against sweeps; the sweep reads the mark
//!   bits on the collector thread that set them or after that handshake.
//!
//! # Rejected alternatives
//! - A free list threaded through free objects (mimalloc): the collector
//!   needs per-slot allocation state it can read without touching objects.
//! - Atomic fetch_and on `alloc_bits` for every free: a lock-prefixed RMW on
//!   the fast path; the owner is the only writer, so load + store suffices,
//!   and other threads' frees go to `central.remote_head` under the lock.
//! - A remote-free bitmap per span: 128 more bytes per span struct (spans
//!   are 512-byte blocks); the list costs nothing until used.
//! - Go's "bits below freeindex are allocated" rule without setting bits at
//!   allocation: explicit `dealloc` needs the exact state to catch double frees.
//!
//! # Checked by
//! `tests/loom_pagemap.rs` (a published span is seen whole) and
//! `tests/loom_mcentral.rs` (every slot is allocated or free exactly once
//! across cached allocation, remote frees and uncaching), and
//! `tests/loom_gc_sweep.rs` (an object allocated while its span is swept is
//! never reported dead; the one unmarked object is reported once).

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use crate::sizeclass::MAX_SPAN_ELEMS;
use std::ptr::{self, NonNull};

/// Words in each per-span bitmap.
pub(crate) const BITMAP_WORDS: usize = MAX_SPAN_ELEMS / 64;

/// The bitmap word of slot `idx`. Slot indexes are below `MAX_SPAN_ELEMS`,
/// so the mask changes nothing; it lets the compiler drop the bounds check
/// on the fast paths.
#[inline(always)]
pub(crate) const fn word_of(idx: usize) -> usize {
    (idx / 64) & (BITMAP_WORDS - 1)
}

/// `Span::state`: not in use.
pub(crate) const FREE: u8 = 0;
/// `Span::state`: cut into slots of one size class.
pub(crate) const SMALL: u8 = 1;
/// `Span::state`: one large object.
pub(crate) const LARGE: u8 = 2;

/// `SpanCentral::list`: on no list (cached, or being handled).
pub(crate) const LIST_NONE: u8 = 0;
/// `SpanCentral::list`: on the partial list (has free slots).
pub(crate) const LIST_PARTIAL: u8 = 1;
/// `SpanCentral::list`: on the full list.
pub(crate) const LIST_FULL: u8 = 2;
/// `SpanCentral::list`: on the empty list (a spare kept for reuse).
pub(crate) const LIST_EMPTY: u8 = 3;

/// Allocation progress through a span: Go's `freeindex` and `allocCache`.
///
/// Invariant: bit `j` of `alloc_cache` is set iff slot `freeindex + j` was
/// free when the cache was loaded; the cache covers `freeindex` up to the end
/// of its 64-bit word (the whole word when `freeindex % 64 == 0`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FreeCursor {
    /// Slots below this index are not handed out again before a rescan.
    pub(crate) freeindex: usize,
    /// Inverted `alloc_bits` from `freeindex` on, for count-trailing-zeros.
    pub(crate) alloc_cache: u64,
}

impl FreeCursor {
    /// A cursor at slot 0 of a span with the given bitmap.
    #[inline]
    pub(crate) fn rewind(bits: &[AtomicU64; BITMAP_WORDS]) -> FreeCursor {
        FreeCursor {
            freeindex: 0,
            alloc_cache: !bits[0].load(Ordering::Relaxed),
        }
    }

    /// A cursor at slot `idx` (an immediate free moved it back there).
    #[inline]
    pub(crate) fn at(bits: &[AtomicU64; BITMAP_WORDS], idx: usize) -> FreeCursor {
        FreeCursor {
            freeindex: idx,
            alloc_cache: !bits[word_of(idx)].load(Ordering::Relaxed) >> (idx % 64),
        }
    }

    /// The next free slot at or after `freeindex`, or `None` at the end of a
    /// span of `nelems` slots. Does not set the slot's bit.
    #[inline]
    pub(crate) fn next(
        &mut self,
        bits: &[AtomicU64; BITMAP_WORDS],
        nelems: usize,
    ) -> Option<usize> {
        loop {
            if self.alloc_cache != 0 {
                let bit = self.alloc_cache.trailing_zeros() as usize;
                let idx = self.freeindex + bit;
                if idx >= nelems {
                    return None;
                }
                self.freeindex = idx + 1;
                if self.freeindex % 64 == 0 {
                    self.alloc_cache = if self.freeindex < nelems {
                        !bits[word_of(self.freeindex)].load(Ordering::Relaxed)
                    } else {
                        0
                    };
                } else {
                    // bit + 1 <= 63: idx is not the last bit of its word.
                    self.alloc_cache >>= bit + 1;
                }
                return Some(idx);
            }
            self.freeindex = (self.freeindex | 63) + 1;
            if self.freeindex >= nelems {
                return None;
            }
            self.alloc_cache = !bits[word_of(self.freeindex)].load(Ordering::Relaxed);
        }
    }
}

/// Whether a free list threaded through dead objects' first word, starting
/// at `head` (0: empty), holds `obj`. O(length): a debug-build check for
/// double frees of slots parked on a list (local or remote).
pub(crate) fn free_list_contains(mut head: usize, obj: usize) -> bool {
    while head != 0 {
        if head == obj {
            return true;
        }
        // SAFETY: list entries are dead slots whose first word is the link,
        // written when they were pushed; the caller owns the list.
        head = unsafe { (head as *const usize).read() };
    }
    false
}

/// Allocation state of a span that is not in an mcache entry.
#[derive(Debug, Default)]
pub(crate) struct SpanLocal {
    /// Where the next allocation looks (GC spans; normal spans while central).
    pub(crate) cursor: FreeCursor,
    /// Allocated slots.
    pub(crate) nalloc: usize,
}

/// Fields owned by the span's mcentral (under its lock).
#[derive(Debug)]
pub(crate) struct SpanCentral {
    /// Next span on the same list.
    pub(crate) next: *mut Span,
    /// Previous span on the same list.
    pub(crate) prev: *mut Span,
    /// `LIST_NONE`, `LIST_PARTIAL`, `LIST_FULL` or `LIST_EMPTY`.
    pub(crate) list: u8,
    /// Objects freed by other threads while the span was cached: a list
    /// threaded through their first word (they are dead, so their memory is
    /// the allocator's), 0 for none. Their alloc bits stay set until the
    /// owner folds the list in.
    pub(crate) remote_head: usize,
    /// Length of the remote list.
    pub(crate) nremote: usize,
}

/// Links in the mheap's list of every in-use GC span (under the mheap's
/// GC-span lock, not the mcentral lock).
#[derive(Debug)]
pub(crate) struct GcLinks {
    /// Next GC span.
    pub(crate) next: *mut Span,
    /// Previous GC span.
    pub(crate) prev: *mut Span,
}

impl Default for GcLinks {
    fn default() -> Self {
        GcLinks {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        }
    }
}

impl Default for SpanCentral {
    fn default() -> Self {
        SpanCentral {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            list: LIST_NONE,
            remote_head: 0,
            nremote: 0,
        }
    }
}

/// A span. See the module doc for who may touch which field.
///
/// All-zero bytes are a valid `Span` (every field is an atomic, a cell of
/// integers or raw pointers, or an array of those): the mheap takes span
/// structs from zeroed memory.
/// `repr(C)` keeps what `dealloc` reads (span class, base) and what the
/// cached allocator touches (the first alloc-bit words) in the first two
/// cache lines.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Span {
    pub(crate) spanclass: AtomicUsize,
    pub(crate) base: AtomicUsize,
    pub(crate) elem_size: AtomicUsize,
    pub(crate) nelems: AtomicUsize,
    pub(crate) owner: AtomicUsize,
    pub(crate) npages: AtomicUsize,
    pub(crate) div_magic: AtomicU32,
    pub(crate) sweepgen: AtomicU32,
    pub(crate) state: AtomicU8,
    pub(crate) gc_lock: AtomicBool,
    /// Large objects aligned above a page start this far into the span.
    pub(crate) large_offset: AtomicUsize,
    pub(crate) alloc_bits: [AtomicU64; BITMAP_WORDS],
    pub(crate) gcmark_bits: [AtomicU64; BITMAP_WORDS],
    pub(crate) local: UnsafeCell<SpanLocal>,
    pub(crate) central: UnsafeCell<SpanCentral>,
    pub(crate) gc_links: UnsafeCell<GcLinks>,
}

/// A copyable reference to an in-use span, as the page map and the collector
/// hand it out. Span structs are never unmapped, so a `SpanRef` is always
/// safe to read; it is *meaningful* while the span stays in use, which the
/// holder ensures (it holds a live object in it, or it is the collector and
/// only the collector returns GC spans to the mheap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SpanRef(NonNull<Span>);

// SAFETY: every field of `Span` a `SpanRef` method touches is an atomic or is
// reached under the lock that owns it (module doc, "Ownership").
unsafe impl Send for SpanRef {}
// SAFETY: as for Send.
unsafe impl Sync for SpanRef {}

impl SpanRef {
    /// Wraps a pointer to a span struct.
    ///
    /// # Safety
    /// `p` points at a `Span` that is never freed (mheap span structs are not).
    #[inline]
    pub(crate) unsafe fn from_ptr(p: NonNull<Span>) -> SpanRef {
        SpanRef(p)
    }

    /// The raw pointer, for lists and the page map.
    #[inline]
    pub(crate) fn as_ptr(self) -> *mut Span {
        self.0.as_ptr()
    }

    /// The span struct.
    #[inline]
    pub(crate) fn span(&self) -> &Span {
        // SAFETY: span structs are never unmapped (from_ptr's contract).
        unsafe { self.0.as_ref() }
    }

    /// Whether the span holds GC objects (`gc_alloc`), not `SpanAlloc` ones.
    #[inline]
    pub(crate) fn is_gc(&self) -> bool {
        self.span().spanclass.load(Ordering::Relaxed) & 1 == 1
    }

    /// Slot size in bytes (the whole object for a large span).
    #[inline]
    pub(crate) fn elem_size(&self) -> usize {
        self.span().elem_size.load(Ordering::Relaxed)
    }

    /// Number of slots (1 for a large span).
    #[inline]
    pub(crate) fn nelems(&self) -> usize {
        self.span().nelems.load(Ordering::Relaxed)
    }

    /// Whether the span holds one large object.
    #[inline]
    pub(crate) fn is_large(&self) -> bool {
        self.span().state.load(Ordering::Relaxed) == LARGE
    }

    /// First byte of the span's pages.
    #[inline]
    pub(crate) fn base(&self) -> usize {
        self.span().base.load(Ordering::Relaxed)
    }

    /// Index of the slot containing `ptr` (interior pointers too). `ptr`
    /// must lie inside the span; the result is then `< nelems()`.
    #[inline]
    pub(crate) fn index_of(&self, ptr: *const u8) -> usize {
        let s = self.span();
        if s.state.load(Ordering::Relaxed) == LARGE {
            return 0;
        }
        let off = (ptr as usize).wrapping_sub(s.base.load(Ordering::Relaxed));
        ((off as u64 * s.div_magic.load(Ordering::Relaxed) as u64) >> 32) as usize
    }

    /// Address of slot `idx` (for a large span, the object's start).
    #[inline]
    pub(crate) fn base_of(&self, idx: usize) -> *mut u8 {
        let s = self.span();
        if s.state.load(Ordering::Relaxed) == LARGE {
            return (self.base() + s.large_offset.load(Ordering::Relaxed)) as *mut u8;
        }
        (self.base() + idx * self.elem_size()) as *mut u8
    }

    /// Whether slot `idx` holds an allocated object.
    #[inline]
    pub(crate) fn is_allocated(&self, idx: usize) -> bool {
        // Acquire: pairs with `set_alloc_bit`'s Release, so a reader that sees
        // the bit also sees the mark an allocate-black `take_slot` set before
        // it (free on x86, needed on weakly ordered CPUs).
        self.span().alloc_bits[idx / 64].load(Ordering::Acquire) & (1 << (idx % 64)) != 0
    }

    /// Slots `64 * w ..` that are allocated and unmarked, as a bit word (bit
    /// `j` is slot `64 * w + j`): the alloc word is read first, with Acquire
    /// as in `is_allocated`, so a slot allocated black shows its mark.
    /// (Only the root scan uses it, and it is not built under loom.)
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn allocated_unmarked(&self, w: usize) -> u64 {
        let s = self.span();
        let alloc = s.alloc_bits[word_of(64 * w)].load(Ordering::Acquire);
        alloc & !s.gcmark_bits[word_of(64 * w)].load(Ordering::Relaxed)
    }

    /// Sets the mark bit of slot `idx`; true if it was not set before.
    ///
    /// Loads first: a set bit stays set until the sweep clears it, so a load
    /// that sees it set answers as the `fetch_or` would, without its locked
    /// instruction (objects allocated black during a cycle, and edges to
    /// objects already marked, are most marks; a clone of a new object while
    /// a cycle marks is one). A stale clear bit only sends the caller to the
    /// `fetch_or`, which reads the latest value.
    #[inline]
    pub(crate) fn mark(&self, idx: usize) -> bool {
        let bit = 1u64 << (idx % 64);
        let word = &self.span().gcmark_bits[idx / 64];
        if word.load(Ordering::Relaxed) & bit != 0 {
            return false;
        }
        word.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// Whether slot `idx` is marked.
    #[inline]
    pub(crate) fn is_marked(&self, idx: usize) -> bool {
        self.span().gcmark_bits[idx / 64].load(Ordering::Relaxed) & (1 << (idx % 64)) != 0
    }

    /// Takes the span's GC lock (a spin lock held for a few instructions by
    /// `gc_alloc` and for a bitmap pass by the sweep).
    #[inline]
    pub(crate) fn lock_gc(&self) {
        let l = &self.span().gc_lock;
        while l
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            crate::loom::spin_loop();
        }
    }

    /// Releases the GC lock taken by `lock_gc`.
    #[inline]
    pub(crate) fn unlock_gc(&self) {
        self.span().gc_lock.store(false, Ordering::Release);
    }

    /// Sets bit `idx` of `alloc_bits` with a load and a store.
    ///
    /// # Safety
    /// The caller is the only writer of `alloc_bits` (the owning mcache of a
    /// normal span, or a holder of the mcentral lock / `gc_lock`).
    #[inline]
    pub(crate) unsafe fn set_alloc_bit(&self, idx: usize) {
        // SAFETY: the caller's guarantee.
        unsafe { self.set_alloc_bits(idx / 64, 1 << (idx % 64)) };
    }

    /// Sets the bits `bits` of word `w` of `alloc_bits` with a load and a
    /// store (a batch of slots of one word at once).
    ///
    /// # Safety
    /// As for `set_alloc_bit`.
    #[inline]
    pub(crate) unsafe fn set_alloc_bits(&self, w: usize, bits: u64) {
        let w = &self.span().alloc_bits[w];
        // Release: publishes the mark bits set before it (allocate-black) to
        // `is_allocated`'s Acquire load, which runs without `gc_lock`.
        w.store(w.load(Ordering::Relaxed) | bits, Ordering::Release);
    }

    /// Clears bit `idx` of `alloc_bits`; returns whether it was set.
    ///
    /// # Safety
    /// As for `set_alloc_bit`.
    #[inline]
    pub(crate) unsafe fn clear_alloc_bit(&self, idx: usize) -> bool {
        let w = &self.span().alloc_bits[idx / 64];
        let old = w.load(Ordering::Relaxed);
        w.store(old & !(1 << (idx % 64)), Ordering::Relaxed);
        old & 1 << (idx % 64) != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn bits(words: [u64; BITMAP_WORDS]) -> [AtomicU64; BITMAP_WORDS] {
        words.map(AtomicU64::new)
    }

    #[test]
    fn cursor_walks_every_free_slot_once() {
        let mut w = [0u64; BITMAP_WORDS];
        w[0] = 0b1011; // slots 0, 1, 3 taken
        w[1] = u64::MAX; // slots 64..128 taken
        w[2] = !(1 << 63); // only slot 191 free
        let b = bits(w);
        let mut c = FreeCursor::rewind(&b);
        let mut got = Vec::new();
        while let Some(i) = c.next(&b, 200) {
            got.push(i);
        }
        let mut want: Vec<usize> = (0..64).filter(|i| ![0, 1, 3].contains(i)).collect();
        want.push(191);
        want.extend(192..200);
        assert_eq!(got, want);
    }

    #[test]
    fn cursor_handles_word_ends() {
        for nelems in [1, 63, 64, 65, 127, 128, 1024] {
            let b = bits([0; BITMAP_WORDS]);
            let mut c = FreeCursor::rewind(&b);
            let mut n = 0;
            while let Some(i) = c.next(&b, nelems) {
                assert_eq!(i, n);
                n += 1;
            }
            assert_eq!(n, nelems);
        }
    }
}
