//! The page map: from any address to the span holding it, in O(1), for
//! interior pointers too (Go's `mheap.arenas` / `heapArena.spans`).
//!
//! # Purpose
//! `dealloc` and the collector's `span_of` must find a pointer's span without
//! a lock. The address space is cut into 64 MiB arenas; a flat first-level
//! table (`l1`, one slot per possible arena of a 47-bit address space: 16 MiB
//! of zero `.bss` that the OS only backs where touched) points at each
//! arena's header, whose `spans` array has one slot per 8 KiB page.
//!
//! # States
//! An `l1` slot is null (no arena) or an arena header, forever once set.
//! A `spans` slot is null (page free or not yet used) or the span covering
//! the page; it changes only under the mheap lock.
//!
//! # Transitions
//! - `register_arena` (mheap lock): null -> header, Release store.
//! - `set_range` (mheap lock): every page of a new span -> span, Release
//!   stores, after the span's fields are written (`MHeap::alloc_span`);
//!   back to null, Relaxed, when the span is freed.
//!
//! # Ownership
//! Written only under the mheap lock; read by any thread without a lock.
//!
//! # Orderings
//! `register_arena`'s Release store pairs with the Acquire load of `l1` in
//! `lookup`; `set_range`'s Release stores pair with the Acquire load of the
//! `spans` slot in `lookup`: a thread that finds a span sees its identity
//! fields as `alloc_span` wrote them. (On x86 both are plain moves.)
//!
//! # Rejected alternatives
//! - A sorted arena list with binary search: O(log n) on every `dealloc`.
//! - Storing the span only at its first and last page (Go does this for free
//!   spans): interior pointers then need a search; in-use spans get every page.
//! - A span header inside the span's first page: large objects aligned to the
//!   page would lose a page each, and headers would be in object memory.
//!
//! # Checked by
//! `tests/loom_pagemap.rs`: a reader that races the publication of a span
//! either misses it or sees every field of it.

use crate::loom::sync::atomic::{AtomicPtr, Ordering};
use crate::sizeclass::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::Span;
use std::ptr;

/// log2 of the arena size: 64 MiB normally, 64 KiB (8 pages) under loom so a
/// model can build arenas without a 64 KiB header.
pub(crate) const ARENA_SHIFT: usize = if crate::loom::IS_LOOM { 16 } else { 26 };
/// Bytes per arena.
pub(crate) const ARENA_SIZE: usize = 1 << ARENA_SHIFT;
/// Pages per arena.
pub(crate) const ARENA_PAGES: usize = ARENA_SIZE / PAGE_SIZE;
/// Slots of the first-level table: the 47-bit user address space of x86-64
/// and aarch64 Linux; 4 under loom, whose models use small fake addresses.
pub(crate) const L1_LEN: usize = if crate::loom::IS_LOOM {
    4
} else {
    1 << (47 - ARENA_SHIFT)
};
const PAGE_WORDS: usize = ARENA_PAGES / 64;

/// Per-page bitmaps of an arena, owned by the mheap (under its lock).
#[derive(Debug)]
pub(crate) struct PageBits {
    /// Bit set: the page is free (belongs to no span).
    pub(crate) free: [u64; PAGE_WORDS],
    /// Bit set: the page is free and its memory was returned to the OS.
    pub(crate) released: [u64; PAGE_WORDS],
    /// Bit set: the page has been free and unreleased since the scavenger's
    /// previous pass (so it is old enough to release).
    pub(crate) idle: [u64; PAGE_WORDS],
    /// Number of free pages.
    pub(crate) nfree: usize,
}

impl Default for PageBits {
    fn default() -> Self {
        PageBits {
            free: [0; PAGE_WORDS],
            released: [0; PAGE_WORDS],
            idle: [0; PAGE_WORDS],
            nfree: 0,
        }
    }
}

/// An arena's header: where its pages are and which span holds each.
///
/// All-zero bytes are a valid header apart from `base` (see `Span`'s note).
#[derive(Debug)]
pub(crate) struct ArenaMeta {
    /// First byte of the arena (a multiple of `ARENA_SIZE`).
    pub(crate) base: usize,
    /// The span of each page (null when free).
    pub(crate) spans: [AtomicPtr<Span>; ARENA_PAGES],
    /// Page bitmaps; only touched under the mheap lock.
    pub(crate) pages: crate::loom::cell::UnsafeCell<PageBits>,
}

impl ArenaMeta {
    /// A header for the arena at `base`, all pages in use by nothing.
    #[cfg(loom)]
    pub(crate) fn new_boxed(base: usize) -> *mut ArenaMeta {
        Box::into_raw(Box::new(ArenaMeta {
            base,
            spans: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            pages: crate::loom::cell::UnsafeCell::new(PageBits::default()),
        }))
    }
}

/// The two-level address-to-span map.
pub(crate) struct PageMap {
    l1: [AtomicPtr<ArenaMeta>; L1_LEN],
}

impl PageMap {
    /// An empty map.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> PageMap {
        PageMap {
            l1: [const { AtomicPtr::new(ptr::null_mut()) }; L1_LEN],
        }
    }

    /// An empty map.
    #[cfg(loom)]
    pub(crate) fn new() -> PageMap {
        PageMap {
            l1: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// The header of the arena holding `addr`, if one is registered.
    #[inline]
    pub(crate) fn arena(&self, addr: usize) -> Option<&ArenaMeta> {
        let slot = self.l1.get(addr >> ARENA_SHIFT)?;
        let a = slot.load(Ordering::Acquire);
        // SAFETY: non-null l1 entries point at arena headers that are never
        // freed (register_arena's contract).
        unsafe { a.as_ref() }
    }

    /// Whether `addr` lies in an arena `register_arena` accepts.
    pub(crate) fn covers(addr: usize) -> bool {
        addr >> ARENA_SHIFT < L1_LEN
    }

    /// Publishes an arena header.
    ///
    /// # Safety
    /// Called under the mheap lock; `meta` is fully initialized, lives
    /// forever, and `(*meta).base` is `ARENA_SIZE`-aligned and `covers`ed.
    pub(crate) unsafe fn register_arena(&self, meta: *mut ArenaMeta) {
        // SAFETY: the caller guarantees `meta` is valid.
        let base = unsafe { (*meta).base };
        self.l1[base >> ARENA_SHIFT].store(meta, Ordering::Release);
    }

    /// The span covering `addr`, or null. Lock-free, O(1): two dependent
    /// loads (the arena header, then the page's slot).
    #[inline]
    pub(crate) fn lookup(&self, addr: usize) -> *mut Span {
        let Some(slot) = self.l1.get(addr >> ARENA_SHIFT) else {
            return ptr::null_mut();
        };
        let a = slot.load(Ordering::Acquire);
        if a.is_null() {
            return ptr::null_mut();
        }
        // Arenas are ARENA_SIZE-aligned, so the page index is the address
        // bits between the page and the arena shift (no load of `base`).
        let page = (addr >> PAGE_SHIFT) & (ARENA_PAGES - 1);
        // SAFETY: non-null l1 entries point at arena headers that are never
        // freed (register_arena's contract).
        unsafe { (*a).spans[page].load(Ordering::Acquire) }
    }

    /// Points every page of `[base, base + npages * PAGE_SIZE)` at `span`
    /// (null to clear). The range may cross arenas.
    ///
    /// # Safety
    /// Called under the mheap lock; every arena in the range is registered;
    /// a non-null `span` has all its fields written.
    pub(crate) unsafe fn set_range(&self, base: usize, npages: usize, span: *mut Span) {
        let order = if span.is_null() {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        for i in 0..npages {
            let addr = base + i * PAGE_SIZE;
            let a = self
                .arena(addr)
                .expect("gort-alloc: page map range outside any arena");
            a.spans[(addr >> PAGE_SHIFT) & (ARENA_PAGES - 1)].store(span, order);
        }
    }
}
