//! Central span lists, one per span class (Go's `mcentral`): spans with free
//! slots (`partial`) and without (`full`) that no mcache holds, from which
//! mcaches refill and to which they hand exhausted spans back.
//!
//! # Purpose
//! The meeting point of threads for one span class: caching and uncaching a
//! span, frees from a thread that does not cache the object's span ("remote"
//! frees), and allocation when a thread has no mcache (during its exit).
//!
//! # States
//! A span of this class is on `partial` (`0 < nalloc < nelems`, uncached), on
//! `full` (`nalloc == nelems`, uncached), cached (`owner != 0`, on no list),
//! on `empty` (a normal span with no object, kept as a spare while the
//! spares' pages stay under `MAX_EMPTY_PAGES`), or on its way back to the
//! mheap. GC spans rest empty on `partial` between sweeps: only the sweep
//! (`heap_api.rs`) returns them to the mheap.
//!
//! # Transitions
//! - partial -> cached: `cache_span` (a refilling mcache).
//! - new span -> cached: `MHeap::alloc_span` with `owner` set, before the
//!   span is published (so no other thread can see it yet).
//! - cached -> partial/full/mheap: `uncache_span` (the owning mcache), after
//!   folding in the remote frees that arrived while it was cached.
//! - full -> partial, partial -> empty or mheap: `free_remote` on a central
//!   span; empty -> cached: `cache_span` when no partial span is left;
//!   empty -> mheap: `take_empty` (scavenger, `free_os_memory`).
//! - cached span, remote free: `free_remote` pushes the object on the span's remote list;
//!   `harvest` (owner) or `uncache_span` applies it to `alloc_bits`.
//!
//! # Ownership
//! `Lists` and every span's `central` cell are under this class's lock. A
//! central normal span's `local.nalloc` and `alloc_bits` are under it too;
//! a cached span's `alloc_bits` belong to its owner, so other threads'
//! frees go to its remote list instead.
//!
//! # Orderings
//! All by the mutex: its unlock (Release) pairs with the next lock (Acquire),
//! so `owner`, read with a Relaxed load under the lock, is the latest value.
//! The owner's own Relaxed read of `owner` without the lock (mcache free path)
//! needs no ordering: only the owner sets it away from its own id.
//!
//! # Rejected alternatives
//! - Go's lock-free span sets (`spanSet`): allocation from a cached span never
//!   touches this lock, and a refill every `nelems` allocations is cheap
//!   enough; a mutex is far easier to model and to read.
//! - Remote frees with an atomic fetch_and on `alloc_bits`: the owner would
//!   need a read-modify-write on its own fast path.
//!
//! # Checked by
//! `tests/loom_mcentral.rs`: with one thread allocating through a cached span
//! (uncaching and re-caching it) and another freeing remotely, every slot is
//! handed out once, freed once, and the span returns to the mheap exactly
//! when its last object is freed.

use crate::loom::sync::atomic::Ordering;
use crate::loom::sync::{Mutex, MutexGuard};
use crate::span::{
    LIST_EMPTY, LIST_FULL, LIST_NONE, LIST_PARTIAL, Span, SpanRef, free_list_contains,
};

/// Pages of empty normal spans an mcentral keeps as spares (256 KiB) instead
/// of returning them to the mheap at once: a class whose spans hold one to
/// four objects would otherwise make a round trip to the mheap lock for
/// nearly every allocation. All classes together keep at most ~17 MiB; the
/// scavenger's next tick and `free_os_memory` hand spares back.
const MAX_EMPTY_PAGES: usize = 32;
use std::ptr::{self, NonNull};

/// Why a free was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// The pointer is not inside memory this arena handed out.
    NotOwned,
    /// The slot is already free.
    DoubleFree,
    /// The pointer is inside an object but not at its start.
    Interior,
    /// The object belongs to the garbage collector (`gc_alloc`), which frees
    /// it by sweeping; `SpanAlloc` must not free it.
    GcObject,
}

impl std::fmt::Display for FreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FreeError::NotOwned => "pointer was not allocated by gort-alloc",
            FreeError::DoubleFree => "double free",
            FreeError::Interior => "pointer is inside an allocation, not at its start",
            FreeError::GcObject => "pointer belongs to the garbage collector",
        })
    }
}

/// Heads of the two lists.
pub(crate) struct Lists {
    partial: *mut Span,
    full: *mut Span,
    empty: *mut Span,
    /// Pages of the spans on `empty`.
    empty_pages: usize,
}

// SAFETY: the lists hold span structs that live forever, reached only under
// the mcentral lock.
unsafe impl Send for Lists {}

/// One span class's central lists.
pub(crate) struct MCentral {
    lists: Mutex<Lists>,
}

/// What the caller must do after a central operation.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// Nothing.
    Keep,
    /// The span is empty and off every list: return it to the mheap.
    ToHeap(SpanRef),
}

/// No spans on any list.
const EMPTY_LISTS: Lists = Lists {
    partial: ptr::null_mut(),
    full: ptr::null_mut(),
    empty: ptr::null_mut(),
    empty_pages: 0,
};

impl MCentral {
    /// Empty lists.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> MCentral {
        MCentral {
            lists: Mutex::new(EMPTY_LISTS),
        }
    }

    /// Empty lists (loom's mutex has no `const` constructor).
    #[cfg(loom)]
    pub(crate) fn new() -> MCentral {
        MCentral {
            lists: Mutex::new(EMPTY_LISTS),
        }
    }

    /// Takes the lock. Lock order: this lock before the GC-span lock and the
    /// mheap lock, and before any span's `gc_lock`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a partial span for the mcache `owner`; returns it and its
    /// allocated-slot count (meaningful for normal spans).
    pub(crate) fn cache_span(&self, owner: usize) -> Option<(SpanRef, usize)> {
        let mut l = self.lock();
        // Partly used spans first (they pack the heap), then spares.
        let span = NonNull::new(l.partial).or(NonNull::new(l.empty))?;
        // SAFETY: list members are live span structs (mheap never frees them).
        let span = unsafe { SpanRef::from_ptr(span) };
        l.remove(span);
        span.span().owner.store(owner, Ordering::Relaxed);
        // SAFETY: a central span's `local` is under this lock, held here.
        let nalloc = span.span().local.with(|p| unsafe { (*p).nalloc });
        Some((span, nalloc))
    }

    /// Gives a cached span back: folds in remote frees, clears `owner`, and
    /// files the span by fullness. `nalloc` is the owner's count of allocated
    /// slots. An empty normal span goes back to the mheap instead.
    pub(crate) fn uncache_span(&self, span: SpanRef, nalloc: usize) -> Release {
        let mut l = self.lock();
        let nalloc = nalloc - apply_remote(span);
        let s = span.span();
        s.owner.store(0, Ordering::Relaxed);
        // SAFETY: the span is now central; its `local` is under this lock.
        s.local.with_mut(|p| unsafe { (*p).nalloc = nalloc });
        if nalloc == 0 && !span.is_gc() {
            return l.retire_empty(span);
        }
        let list = if nalloc == s.nelems.load(Ordering::Relaxed) {
            LIST_FULL
        } else {
            LIST_PARTIAL
        };
        l.push(span, list);
        Release::Keep
    }

    /// The owner folds in remote frees without giving the span up; returns
    /// how many slots they freed.
    pub(crate) fn harvest(&self, span: SpanRef) -> usize {
        let _l = self.lock();
        apply_remote(span)
    }

    /// Frees slot `idx` of `span` for a thread that does not cache it.
    pub(crate) fn free_remote(&self, span: SpanRef, idx: usize) -> Result<Release, FreeError> {
        let mut l = self.lock();
        let s = span.span();
        if !span.is_allocated(idx) {
            return Err(FreeError::DoubleFree);
        }
        if s.owner.load(Ordering::Relaxed) != 0 {
            // Cached elsewhere: its owner writes alloc_bits; leave a note.
            let obj = span.base_of(idx);
            return s.central.with_mut(|c| {
                // SAFETY: `central` is under this lock, held here.
                let c = unsafe { &mut *c };
                if cfg!(debug_assertions) && free_list_contains(c.remote_head, obj as usize) {
                    return Err(FreeError::DoubleFree);
                }
                // SAFETY: the object is being freed, so its first word (every
                // slot is at least 8 bytes, 8-aligned) belongs to the
                // allocator until the owner folds the list in.
                unsafe { obj.cast::<usize>().write(c.remote_head) };
                c.remote_head = obj as usize;
                c.nremote += 1;
                Ok(Release::Keep)
            });
        }
        // SAFETY: the span is central (owner == 0 under this lock), so this
        // lock owns its alloc_bits and `local`.
        unsafe { span.clear_alloc_bit(idx) };
        // SAFETY: as above.
        let nalloc = s.local.with_mut(|p| unsafe {
            (*p).nalloc -= 1;
            (*p).nalloc
        });
        if nalloc == 0 && !span.is_gc() {
            l.remove(span);
            return Ok(l.retire_empty(span));
        }
        // SAFETY: `central` is under this lock.
        if s.central.with(|c| unsafe { (*c).list }) == LIST_FULL {
            l.remove(span);
            l.push(span, LIST_PARTIAL);
        }
        Ok(Release::Keep)
    }

    /// Allocates one slot of a central normal span without caching it (a
    /// thread whose mcache is gone). `None` when no partial span exists.
    pub(crate) fn alloc_uncached(&self) -> Option<*mut u8> {
        let mut l = self.lock();
        if l.partial.is_null() {
            // SAFETY: list members are live span structs.
            let spare = unsafe { SpanRef::from_ptr(NonNull::new(l.empty)?) };
            l.remove(spare);
            l.push(spare, LIST_PARTIAL);
        }
        // SAFETY: list members are live span structs.
        let span = unsafe { SpanRef::from_ptr(NonNull::new(l.partial)?) };
        let s = span.span();
        let nelems = s.nelems.load(Ordering::Relaxed);
        // SAFETY: the span is central: this lock owns `local` and alloc_bits.
        let (idx, full) = s.local.with_mut(|p| unsafe {
            let local = &mut *p;
            let mut cur = crate::span::FreeCursor::rewind(&s.alloc_bits);
            let idx = cur.next(&s.alloc_bits, nelems)?;
            local.nalloc += 1;
            Some((idx, local.nalloc == nelems))
        })?;
        // SAFETY: as above.
        unsafe { span.set_alloc_bit(idx) };
        if full {
            l.remove(span);
            l.push(span, LIST_FULL);
        }
        Some(span.base_of(idx))
    }

    /// Gives a cached GC span back (the GC counterpart of `uncache_span`):
    /// GC spans keep their count in `local` under `gc_lock` and never go
    /// back to the mheap from here.
    pub(crate) fn uncache_gc_span(&self, span: SpanRef) {
        let mut l = self.lock();
        span.lock_gc();
        // SAFETY: a GC span's `local` is under its gc_lock, held here.
        let nalloc = span.span().local.with(|p| unsafe { (*p).nalloc });
        span.span().owner.store(0, Ordering::Relaxed);
        span.unlock_gc();
        let list = if nalloc == span.nelems() {
            LIST_FULL
        } else {
            LIST_PARTIAL
        };
        l.push(span, list);
    }

    /// The first partial span, left on its list (for `gc_alloc` without an
    /// mcache, which allocates from it under this lock and its gc_lock).
    pub(crate) fn first_partial(l: &Lists) -> Option<SpanRef> {
        // SAFETY: list members are live span structs.
        NonNull::new(l.partial).map(|p| unsafe { SpanRef::from_ptr(p) })
    }

    /// Files a new, uncached span on the partial list (lock held by caller).
    pub(crate) fn push_partial(l: &mut Lists, span: SpanRef) {
        l.push(span, LIST_PARTIAL);
    }

    /// Takes one spare empty span off its list, for the mheap.
    pub(crate) fn take_empty(&self) -> Option<SpanRef> {
        let mut l = self.lock();
        // SAFETY: list members are live span structs.
        let span = unsafe { SpanRef::from_ptr(NonNull::new(l.empty)?) };
        l.remove(span);
        Some(span)
    }

    /// Files a new, uncached span on the partial list.
    pub(crate) fn add_partial(&self, span: SpanRef) {
        self.lock().push(span, LIST_PARTIAL);
    }

    /// Takes a span off its list (the sweep returning an empty GC span).
    pub(crate) fn remove_if_listed(l: &mut Lists, span: SpanRef) -> bool {
        // SAFETY: `central` is under the lock the caller holds (`l`).
        if span.span().central.with(|c| unsafe { (*c).list }) == LIST_NONE {
            return false;
        }
        l.remove(span);
        true
    }

    /// Moves a central span to the list matching its count (after a sweep).
    pub(crate) fn refile(l: &mut Lists, span: SpanRef, nalloc: usize) {
        if MCentral::remove_if_listed(l, span) {
            let full = nalloc == span.nelems();
            l.push(span, if full { LIST_FULL } else { LIST_PARTIAL });
        }
    }
}

/// Applies a span's remote list to its `alloc_bits`; returns its length.
/// The caller holds the mcentral lock and is the span's owner (or the span
/// is being uncached by it), so it may write `alloc_bits`.
fn apply_remote(span: SpanRef) -> usize {
    let s = span.span();
    s.central.with_mut(|c| {
        // SAFETY: `central` is under the mcentral lock the caller holds.
        let c = unsafe { &mut *c };
        if c.nremote == 0 {
            return 0;
        }
        let mut p = std::mem::take(&mut c.remote_head);
        while p != 0 {
            let idx = span.index_of(p as *const u8);
            let a = &s.alloc_bits[idx / 64];
            a.store(
                a.load(Ordering::Relaxed) & !(1 << (idx % 64)),
                Ordering::Relaxed,
            );
            // SAFETY: `p` is a dead object on the remote list, whose first
            // word free_remote wrote.
            p = unsafe { (p as *const usize).read() };
        }
        std::mem::take(&mut c.nremote)
    })
}

impl Lists {
    fn head(&mut self, list: u8) -> &mut *mut Span {
        match list {
            LIST_FULL => &mut self.full,
            LIST_EMPTY => &mut self.empty,
            _ => &mut self.partial,
        }
    }

    /// Keeps an empty, unlisted normal span as a spare if there is room, or
    /// says to return it to the mheap.
    fn retire_empty(&mut self, span: SpanRef) -> Release {
        let npages = span.span().npages.load(Ordering::Relaxed);
        if self.empty_pages + npages > MAX_EMPTY_PAGES {
            return Release::ToHeap(span);
        }
        self.empty_pages += npages;
        self.push(span, LIST_EMPTY);
        Release::Keep
    }

    /// Pushes `span` on `list`.
    fn push(&mut self, span: SpanRef, list: u8) {
        let head = *self.head(list);
        span.span().central.with_mut(|c| {
            // SAFETY: `central` is under the mcentral lock (&mut self).
            let c = unsafe { &mut *c };
            c.next = head;
            c.prev = ptr::null_mut();
            c.list = list;
        });
        if let Some(h) = NonNull::new(head) {
            // SAFETY: list members are live; we hold the lock.
            unsafe { h.as_ref() }
                .central
                .with_mut(|c| unsafe { (*c).prev = span.as_ptr() });
        }
        *self.head(list) = span.as_ptr();
    }

    /// Unlinks `span` from whichever list holds it.
    fn remove(&mut self, span: SpanRef) {
        // SAFETY: `central` is under the mcentral lock (&mut self).
        let (next, prev, list) = span
            .span()
            .central
            .with(|c| unsafe { ((*c).next, (*c).prev, (*c).list) });
        debug_assert_ne!(list, LIST_NONE, "gort-alloc: removing an unlisted span");
        if list == LIST_EMPTY {
            self.empty_pages -= span.span().npages.load(Ordering::Relaxed);
        }
        if let Some(n) = NonNull::new(next) {
            // SAFETY: list members are live; we hold the lock.
            unsafe { n.as_ref() }
                .central
                .with_mut(|c| unsafe { (*c).prev = prev });
        }
        match NonNull::new(prev) {
            // SAFETY: as above.
            Some(p) => unsafe { p.as_ref() }
                .central
                .with_mut(|c| unsafe { (*c).next = next }),
            None => *self.head(list) = next,
        }
        span.span().central.with_mut(|c| {
            // SAFETY: as above.
            let c = unsafe { &mut *c };
            c.next = ptr::null_mut();
            c.prev = ptr::null_mut();
            c.list = LIST_NONE;
        });
    }
}
