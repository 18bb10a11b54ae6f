//! The page heap (Go's `mheap`): arenas of 8 KiB pages reserved from the OS,
//! runs of pages handed out as spans and taken back with coalescing, the
//! page map that finds any pointer's span, and the page-level counters the
//! scavenger and `stats()` read.
//!
//! Free pages are tracked per arena in bitmaps (`PageBits`): a run of free
//! pages is a run of set bits, so freeing a span coalesces it with its free
//! neighbours for nothing, and allocation is a first-fit search for `n`
//! consecutive set bits (count-trailing-zeros over 64-page words). Go uses
//! the same bitmaps with a radix tree of summaries on top; at gort's heap
//! sizes (a few arenas) the flat scan is a few hundred word reads at most.
//!
//! Everything here runs under `MHeap::inner`'s lock except page-map reads.
//! Lock order: mcentral lock, then the GC-span lock, then the mheap lock.

use crate::loom::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};
use crate::mcentral::MCentral;
use crate::os;
use crate::pagemap::{ARENA_PAGES, ARENA_SIZE, ArenaMeta, PageBits, PageMap};
use crate::sizeclass::{
    CLASS_DIV_MAGIC, CLASS_NELEMS, CLASS_NPAGES, CLASS_SIZE, NUM_SPAN_CLASSES, PAGE_SIZE,
};
use crate::span::{FreeCursor, GcLinks, LARGE, SMALL, Span, SpanRef};
use std::ptr::{self, NonNull};

const _: () = assert!(
    size_of::<Span>() <= os::SPAN_BLOCK,
    "Span outgrew its pool block"
);

/// Most arenas the heap tracks: 4096 x 64 MiB = 256 GiB.
const MAX_ARENAS: usize = if crate::loom::IS_LOOM { 4 } else { 4096 };

/// State under the mheap lock.
pub(crate) struct HeapInner {
    arenas: [*mut ArenaMeta; MAX_ARENAS],
    narenas: usize,
    #[cfg(not(loom))]
    span_alloc: os::SpanPool,
    /// Pages in all arenas.
    sys_pages: usize,
    /// Pages on no span.
    free_pages: usize,
    /// Free pages returned to the OS.
    released_pages: usize,
}

// SAFETY: the raw pointers are arena headers that live forever, reached only
// under the mheap lock.
unsafe impl Send for HeapInner {}

/// Head of the list of every in-use GC span.
struct GcSpanList {
    head: *mut Span,
    len: usize,
}

// SAFETY: span structs live forever; the list is reached only under its lock.
unsafe impl Send for GcSpanList {}

/// The heap. One process-wide instance, [`HEAP`].
pub(crate) struct MHeap {
    /// Address -> span, lock-free.
    pub(crate) pagemap: PageMap,
    inner: Mutex<HeapInner>,
    /// One mcentral per span class (size class x {normal, GC}).
    pub(crate) central: [MCentral; NUM_SPAN_CLASSES],
    gc_spans: Mutex<GcSpanList>,
    /// Go's `mheap_.sweepgen`: advanced by 2 when a sweep begins.
    pub(crate) sweepgen: AtomicU32,
    /// `GC_OFF`, `GC_MARK` or `GC_SWEEP` (see heap_api.rs).
    pub(crate) gc_phase: AtomicU8,
    /// Soft limit on mapped-and-not-released bytes (`usize::MAX`: none).
    pub(crate) memory_limit: AtomicUsize,
    /// Mirrors of the page counters, for lock-free readers (scavenger pacing).
    pub(crate) sys_pages: AtomicUsize,
    pub(crate) free_pages: AtomicUsize,
    pub(crate) released_pages: AtomicUsize,
}

crate::loom::global! {
    /// The process-wide heap every allocation path shares.
    pub(crate) static HEAP: MHeap = MHeap::new();
}

/// The `PageBits` of an arena.
///
/// # Safety
/// The caller holds the mheap lock (the only context `pages` is touched in)
/// and no other reference to this arena's bits is live.
unsafe fn bits<'a>(meta: *mut ArenaMeta) -> &'a mut PageBits {
    // SAFETY: the caller holds the mheap lock, which owns every arena's bits;
    // headers live forever.
    unsafe { (*meta).pages.with_mut(|p| &mut *p) }
}

/// The empty heap's fields, with the one part that differs between builds
/// (the mcentral array: `const` blocks normally, `from_fn` under loom, whose
/// mutexes are not `const`).
macro_rules! empty_heap {
    ($central:expr) => {
        MHeap {
            pagemap: PageMap::new(),
            inner: Mutex::new(HeapInner {
                arenas: [ptr::null_mut(); MAX_ARENAS],
                narenas: 0,
                #[cfg(not(loom))]
                span_alloc: os::SpanPool::new(),
                sys_pages: 0,
                free_pages: 0,
                released_pages: 0,
            }),
            central: $central,
            gc_spans: Mutex::new(GcSpanList {
                head: ptr::null_mut(),
                len: 0,
            }),
            sweepgen: AtomicU32::new(0),
            gc_phase: AtomicU8::new(0),
            memory_limit: AtomicUsize::new(usize::MAX),
            sys_pages: AtomicUsize::new(0),
            free_pages: AtomicUsize::new(0),
            released_pages: AtomicUsize::new(0),
        }
    };
}

impl MHeap {
    /// An empty heap: no arenas yet.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> MHeap {
        empty_heap!([const { MCentral::new() }; NUM_SPAN_CLASSES])
    }

    /// An empty heap: no arenas yet.
    #[cfg(loom)]
    pub(crate) fn new() -> MHeap {
        empty_heap!(std::array::from_fn(|_| MCentral::new()))
    }

    fn lock(&self) -> MutexGuard<'_, HeapInner> {
        // A panic while the lock was held left page bitmaps in a state this
        // module wrote completely or not at all; carry on with the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allocates a span of `npages` pages. `spanclass` 0 or 1 makes a large
    /// span (one object of `large_size` bytes at the first `large_align`
    /// boundary in it); otherwise the span is cut into the class's slots.
    /// `owner` is the caching mcache's id (0: none): the span is not yet
    /// published, so setting it here needs no mcentral lock. Returns `None`
    /// when the OS refuses.
    pub(crate) fn alloc_span(
        &self,
        npages: usize,
        spanclass: usize,
        large_size: usize,
        large_align: usize,
        owner: usize,
    ) -> Option<SpanRef> {
        let mut h = self.lock();
        let base = h.alloc_pages(self, npages)?;
        let Some(sp) = h.new_span_struct() else {
            h.free_pages_range(base, npages);
            self.mirror(&h);
            return None;
        };
        let class = spanclass >> 1;
        let gc = spanclass & 1 == 1;
        // SAFETY: `sp` is a fresh span struct from `new_span_struct`,
        // reachable by no one until `set_range` below publishes it.
        let span = unsafe { SpanRef::from_ptr(sp) };
        let s = span.span();
        s.base.store(base, Ordering::Relaxed);
        s.npages.store(npages, Ordering::Relaxed);
        s.spanclass.store(spanclass, Ordering::Relaxed);
        s.owner.store(owner, Ordering::Relaxed);
        s.sweepgen
            .store(self.sweepgen.load(Ordering::Relaxed), Ordering::Relaxed);
        s.gc_lock.store(false, Ordering::Relaxed);
        for w in 0..s.alloc_bits.len() {
            s.alloc_bits[w].store(0, Ordering::Relaxed);
            s.gcmark_bits[w].store(0, Ordering::Relaxed);
        }
        if class == 0 {
            s.elem_size.store(large_size, Ordering::Relaxed);
            s.nelems.store(1, Ordering::Relaxed);
            let align = large_align.max(1);
            let offset = ((base + align - 1) & !(align - 1)) - base;
            s.large_offset.store(offset, Ordering::Relaxed);
            s.alloc_bits[0].store(1, Ordering::Relaxed);
            s.state.store(LARGE, Ordering::Relaxed);
        } else {
            debug_assert_eq!(npages, CLASS_NPAGES[class] as usize);
            s.elem_size
                .store(CLASS_SIZE[class] as usize, Ordering::Relaxed);
            s.nelems
                .store(CLASS_NELEMS[class] as usize, Ordering::Relaxed);
            s.div_magic.store(CLASS_DIV_MAGIC[class], Ordering::Relaxed);
            s.large_offset.store(0, Ordering::Relaxed);
            s.state.store(SMALL, Ordering::Relaxed);
        }
        let nalloc = usize::from(class == 0);
        s.local.with_mut(|l| {
            // SAFETY: the span is not yet published (see above).
            let l = unsafe { &mut *l };
            l.nalloc = nalloc;
            l.cursor = FreeCursor::rewind(&s.alloc_bits);
        });
        // SAFETY: we hold the mheap lock; the arenas of [base, base+npages)
        // were registered by alloc_pages; every field is written above.
        unsafe { self.pagemap.set_range(base, npages, sp.as_ptr()) };
        self.mirror(&h);
        drop(h);
        if gc {
            self.gc_list_push(span);
        }
        Some(span)
    }

    /// Returns an empty span's pages to the heap and its struct for reuse.
    ///
    /// # Safety
    /// The span is in use, holds no live object, is on no mcentral list and
    /// in no mcache; nothing will use `span` afterwards.
    pub(crate) unsafe fn free_span(&self, span: SpanRef) {
        if span.is_gc() {
            self.gc_list_remove(span);
        }
        let s = span.span();
        let base = s.base.load(Ordering::Relaxed);
        let npages = s.npages.load(Ordering::Relaxed);
        let mut h = self.lock();
        // SAFETY: we hold the mheap lock and the range is this span's.
        unsafe { self.pagemap.set_range(base, npages, ptr::null_mut()) };
        s.state.store(crate::span::FREE, Ordering::Relaxed);
        s.owner.store(0, Ordering::Relaxed);
        h.free_pages_range(base, npages);
        h.free_span_struct(span.as_ptr());
        self.mirror(&h);
    }

    fn mirror(&self, h: &HeapInner) {
        self.sys_pages.store(h.sys_pages, Ordering::Relaxed);
        self.free_pages.store(h.free_pages, Ordering::Relaxed);
        self.released_pages
            .store(h.released_pages, Ordering::Relaxed);
    }

    /// Page counters: (sys, free, released), read under the lock.
    pub(crate) fn page_counts(&self) -> (usize, usize, usize) {
        let h = self.lock();
        (h.sys_pages, h.free_pages, h.released_pages)
    }

    /// Returns every spare empty span the mcentrals keep to the heap.
    pub(crate) fn release_spare_spans(&self) {
        for sc in (0..NUM_SPAN_CLASSES).step_by(2) {
            while let Some(span) = self.central[sc].take_empty() {
                // SAFETY: take_empty unlisted an empty, uncached span.
                unsafe { self.free_span(span) };
            }
        }
    }

    /// Returns to the OS up to `max_pages` free pages; with `only_idle`, only
    /// pages that have stayed free since the previous call (the scavenger's
    /// age rule), after which the still-free pages are marked idle for the
    /// next call. Returns the number of pages released.
    pub(crate) fn scavenge(&self, max_pages: usize, only_idle: bool) -> usize {
        let mut h = self.lock();
        let n = h.scavenge(max_pages, only_idle);
        self.mirror(&h);
        n
    }

    /// (free, released, idle) bits of the page holding `addr` (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn page_state(&self, addr: usize) -> (bool, bool, bool) {
        let h = self.lock();
        let a = addr & !(ARENA_SIZE - 1);
        let page = (addr - a) / PAGE_SIZE;
        // SAFETY: we hold the mheap lock.
        let b = unsafe { bits(h.meta_of(a)) };
        let bit = |w: &[u64]| w[page / 64] & (1 << (page % 64)) != 0;
        (bit(&b.free), bit(&b.released), bit(&b.idle))
    }

    fn gc_list_push(&self, span: SpanRef) {
        let mut l = self.gc_spans.lock().unwrap_or_else(|e| e.into_inner());
        let head = l.head;
        span.span().gc_links.with_mut(|g| {
            // SAFETY: gc_links is owned by the GC-span lock, held here.
            unsafe {
                *g = GcLinks {
                    next: head,
                    prev: ptr::null_mut(),
                }
            }
        });
        if let Some(h) = NonNull::new(head) {
            // SAFETY: list members are live span structs; we hold the lock.
            unsafe { h.as_ref() }
                .gc_links
                .with_mut(|g| unsafe { (*g).prev = span.as_ptr() });
        }
        l.head = span.as_ptr();
        l.len += 1;
    }

    fn gc_list_remove(&self, span: SpanRef) {
        let mut l = self.gc_spans.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: gc_links is owned by the GC-span lock, held here.
        let links = span.span().gc_links.with(|g| unsafe {
            GcLinks {
                next: (*g).next,
                prev: (*g).prev,
            }
        });
        if let Some(n) = NonNull::new(links.next) {
            // SAFETY: list members are live span structs; we hold the lock.
            unsafe { n.as_ref() }
                .gc_links
                .with_mut(|g| unsafe { (*g).prev = links.prev });
        }
        match NonNull::new(links.prev) {
            // SAFETY: as above.
            Some(p) => unsafe { p.as_ref() }
                .gc_links
                .with_mut(|g| unsafe { (*g).next = links.next }),
            None => l.head = links.next,
        }
        l.len -= 1;
    }

    /// Copies the list of in-use GC spans into `buf` (up to its length) and
    /// returns how many there are in all.
    pub(crate) fn gc_list_snapshot(&self, buf: &mut [*mut Span]) -> usize {
        let l = self.gc_spans.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = l.head;
        let mut i = 0;
        while let Some(s) = NonNull::new(p) {
            if i < buf.len() {
                buf[i] = p;
            }
            i += 1;
            // SAFETY: list members are live span structs; we hold the lock.
            p = unsafe { s.as_ref() }
                .gc_links
                .with(|g| unsafe { (*g).next });
        }
        debug_assert_eq!(i, l.len);
        i
    }
}

impl HeapInner {
    /// A zeroed span struct.
    fn new_span_struct(&mut self) -> Option<NonNull<Span>> {
        #[cfg(not(loom))]
        {
            // All-zero bytes are a valid Span (see its doc).
            NonNull::new(self.span_alloc.alloc()?.cast())
        }
        #[cfg(loom)]
        {
            NonNull::new(Box::into_raw(Box::<Span>::default()))
        }
    }

    fn free_span_struct(&mut self, sp: *mut Span) {
        #[cfg(not(loom))]
        // SAFETY: `sp` came from span_alloc and its span is now FREE; stale
        // SpanRefs read a recycled but valid struct (SpanRef's doc).
        unsafe {
            self.span_alloc.free(sp.cast())
        };
        // Under loom span structs are leaked: a model frees a handful.
        #[cfg(loom)]
        let _ = sp;
    }

    /// First-fit run of `npages` free pages, growing the heap if none fits.
    fn alloc_pages(&mut self, heap: &MHeap, npages: usize) -> Option<usize> {
        if npages == 0 || npages > (isize::MAX as usize) / PAGE_SIZE {
            return None;
        }
        if npages <= ARENA_PAGES {
            for i in 0..self.narenas {
                let meta = self.arenas[i];
                // SAFETY: we hold the mheap lock (&mut self is behind it).
                let b = unsafe { bits(meta) };
                if b.nfree < npages {
                    continue;
                }
                if let Some(p) = find_run(&b.free, npages) {
                    // SAFETY: meta is a live registered header.
                    let base = unsafe { (*meta).base } + p * PAGE_SIZE;
                    self.take_range(base, npages);
                    return Some(base);
                }
            }
        } else {
            // A huge object: reuse a row of wholly free, address-contiguous
            // arenas (a freed huge object leaves exactly that), rather than
            // reserving new ones each time.
            let k = npages.div_ceil(ARENA_PAGES);
            for i in 0..self.narenas {
                // SAFETY: registered headers live forever.
                let base = unsafe { (*self.arenas[i]).base };
                if (0..k).all(|j| arena_is_free(heap, base + j * ARENA_SIZE)) {
                    self.take_range(base, npages);
                    return Some(base);
                }
            }
        }
        let base = self.grow(heap, npages)?;
        self.take_range(base, npages);
        let limit = heap.memory_limit.load(Ordering::Relaxed);
        if (self.sys_pages - self.released_pages) * PAGE_SIZE > limit {
            // Over the soft limit: give back every free page now (Go
            // scavenges synchronously when an allocation passes the limit).
            self.scavenge(usize::MAX, false);
        }
        heap.mirror(self);
        Some(base)
    }

    /// Maps enough new arenas for `npages` and returns the first one's base.
    fn grow(&mut self, heap: &MHeap, npages: usize) -> Option<usize> {
        let n = npages.div_ceil(ARENA_PAGES);
        if self.narenas + n > MAX_ARENAS {
            return None;
        }
        let base = map_arenas(n)?;
        for k in 0..n {
            let a = base + k * ARENA_SIZE;
            let Some(meta) = new_arena_meta(a) else {
                // Arenas already registered stay (all free); unmap the rest.
                // SAFETY: [a, base + n * ARENA_SIZE) was mapped above and is
                // not registered, so nothing refers to it.
                unsafe { os::unmap(a as *mut u8, (n - k) * ARENA_SIZE) };
                return None;
            };
            // SAFETY: we hold the mheap lock; meta is initialized, lives
            // forever, and its base is aligned and covered (map_arenas).
            unsafe { heap.pagemap.register_arena(meta) };
            // SAFETY: we hold the mheap lock.
            let b = unsafe { bits(meta) };
            b.free = [u64::MAX; ARENA_PAGES / 64];
            b.nfree = ARENA_PAGES;
            self.arenas[self.narenas] = meta;
            self.narenas += 1;
            self.sys_pages += ARENA_PAGES;
            self.free_pages += ARENA_PAGES;
        }
        crate::scavenger::ensure_started();
        Some(base)
    }

    /// Calls `f(bits, first_page, count)` for each arena piece of a range.
    fn for_each_piece(
        &self,
        base: usize,
        npages: usize,
        mut f: impl FnMut(&mut PageBits, usize, usize),
    ) {
        let mut addr = base;
        let end = base + npages * PAGE_SIZE;
        while addr < end {
            let a = addr & !(ARENA_SIZE - 1);
            let first = (addr - a) / PAGE_SIZE;
            let count = (ARENA_PAGES - first).min((end - addr) / PAGE_SIZE);
            let meta = self.meta_of(a);
            // SAFETY: we hold the mheap lock (&self is behind it).
            f(unsafe { bits(meta) }, first, count);
            addr += count * PAGE_SIZE;
        }
    }

    fn meta_of(&self, arena_base: usize) -> *mut ArenaMeta {
        for i in 0..self.narenas {
            // SAFETY: registered headers live forever.
            if unsafe { (*self.arenas[i]).base } == arena_base {
                return self.arenas[i];
            }
        }
        panic!("gort-alloc: page range outside the heap's arenas");
    }

    /// Marks a free range in use.
    fn take_range(&mut self, base: usize, npages: usize) {
        let mut released = 0;
        self.for_each_piece(base, npages, |b, first, count| {
            released += count_bits(&b.released, first, count);
            clear_bits(&mut b.free, first, count);
            clear_bits(&mut b.released, first, count);
            clear_bits(&mut b.idle, first, count);
            b.nfree -= count;
        });
        self.free_pages -= npages;
        self.released_pages -= released;
    }

    /// Marks an in-use range free (coalescing is implicit in the bitmap).
    fn free_pages_range(&mut self, base: usize, npages: usize) {
        self.for_each_piece(base, npages, |b, first, count| {
            set_bits(&mut b.free, first, count);
            b.nfree += count;
        });
        self.free_pages += npages;
    }

    fn scavenge(&mut self, max_pages: usize, only_idle: bool) -> usize {
        let mut done = 0;
        for i in 0..self.narenas {
            let meta = self.arenas[i];
            // SAFETY: registered headers live forever.
            let base = unsafe { (*meta).base };
            // SAFETY: we hold the mheap lock.
            let b = unsafe { bits(meta) };
            let mut cand = [0u64; ARENA_PAGES / 64];
            for (w, c) in cand.iter_mut().enumerate() {
                *c = b.free[w] & !b.released[w] & if only_idle { b.idle[w] } else { u64::MAX };
            }
            let mut p = 0;
            while done < max_pages {
                let Some((start, len)) = next_run(&cand, p) else {
                    break;
                };
                let len = len.min(max_pages - done);
                // SAFETY: the pages are free (their bits are set in `free`
                // under the lock we hold), so they hold no live data.
                unsafe { os::release((base + start * PAGE_SIZE) as *mut u8, len * PAGE_SIZE) };
                set_bits(&mut b.released, start, len);
                clear_bits(&mut b.idle, start, len);
                done += len;
                p = start + len;
            }
            if only_idle {
                for (w, idle) in b.idle.iter_mut().enumerate() {
                    *idle = b.free[w] & !b.released[w];
                }
            }
        }
        self.released_pages += done;
        if !only_idle || done > 0 {
            // Span structs of freed spans are metadata the heap no longer
            // needs either.
            #[cfg(not(loom))]
            self.span_alloc.release();
        }
        done
    }
}

/// Whether the arena at `base` is registered and has no page in use.
/// The caller holds the mheap lock.
fn arena_is_free(heap: &MHeap, base: usize) -> bool {
    match heap.pagemap.arena(base) {
        // SAFETY: the caller holds the mheap lock, which owns the bits.
        Some(m) => unsafe { bits(ptr::from_ref(m).cast_mut()) }.nfree == ARENA_PAGES,
        None => false,
    }
}

/// Reserves `n` contiguous arenas aligned to `ARENA_SIZE` in the range the
/// page map covers.
fn map_arenas(n: usize) -> Option<usize> {
    let len = n.checked_mul(ARENA_SIZE)?;
    if crate::loom::IS_LOOM {
        // Models never grow the real heap past the tiny loom page map.
        return None;
    }
    let p = os::map_aligned(len, ARENA_SIZE)? as usize;
    if !PageMap::covers(p + len - 1) {
        // SAFETY: mapped just above and unused.
        unsafe { os::unmap(p as *mut u8, len) };
        return None;
    }
    Some(p)
}

/// A zeroed, never-freed arena header for the arena at `base`.
fn new_arena_meta(base: usize) -> Option<*mut ArenaMeta> {
    #[cfg(not(loom))]
    {
        let meta: *mut ArenaMeta = os::map(size_of::<ArenaMeta>())?.cast();
        // SAFETY: a fresh zeroed mapping is a valid ArenaMeta with base 0
        // (atomic pointers null, bitmaps zero); we set the base.
        unsafe { ptr::addr_of_mut!((*meta).base).write(base) };
        Some(meta)
    }
    #[cfg(loom)]
    {
        Some(ArenaMeta::new_boxed(base))
    }
}

/// Finds `n` consecutive set bits; returns the first bit's index.
pub(crate) fn find_run(words: &[u64], n: usize) -> Option<usize> {
    let mut p = 0;
    while let Some((start, len)) = next_run(words, p) {
        if len >= n {
            return Some(start);
        }
        p = start + len;
    }
    None
}

/// The maximal run of set bits at or after bit `from`: (start, length).
pub(crate) fn next_run(words: &[u64], from: usize) -> Option<(usize, usize)> {
    let total = words.len() * 64;
    let mut i = from;
    // Skip clear bits.
    while i < total {
        let w = words[i / 64] >> (i % 64);
        if w != 0 {
            i += w.trailing_zeros() as usize;
            break;
        }
        i = (i / 64 + 1) * 64;
    }
    if i >= total {
        return None;
    }
    let start = i;
    while i < total {
        let w = !(words[i / 64] >> (i % 64));
        let ones = if w == 0 {
            64 - i % 64
        } else {
            (w.trailing_zeros() as usize).min(64 - i % 64)
        };
        i += ones;
        if ones < 64 - (i - ones) % 64 {
            break;
        }
    }
    Some((start, i.min(total) - start))
}

fn range_words(first: usize, count: usize, mut f: impl FnMut(usize, u64)) {
    let mut i = first;
    let end = first + count;
    while i < end {
        let n = (64 - i % 64).min(end - i);
        let mask = if n == 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << (i % 64)
        };
        f(i / 64, mask);
        i += n;
    }
}

pub(crate) fn set_bits(words: &mut [u64], first: usize, count: usize) {
    range_words(first, count, |w, m| words[w] |= m);
}

pub(crate) fn clear_bits(words: &mut [u64], first: usize, count: usize) {
    range_words(first, count, |w, m| words[w] &= !m);
}

fn count_bits(words: &[u64], first: usize, count: usize) -> usize {
    let mut n = 0;
    range_words(first, count, |w, m| {
        n += (words[w] & m).count_ones() as usize
    });
    n
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn huge_objects_reuse_their_arenas() {
        let before = HEAP.page_counts().0;
        for _ in 0..40 {
            let p = crate::global::malloc(100 << 20, 8);
            assert!(!p.is_null());
            crate::global::free(p).unwrap();
        }
        let grown = (HEAP.page_counts().0 - before) * PAGE_SIZE;
        // Without reuse: 40 x 2 arenas = 5 GiB of address space.
        assert!(grown <= 10 * ARENA_SIZE, "heap grew by {} MiB", grown >> 20);
    }

    #[test]
    fn runs_are_found_across_words() {
        let mut w = [0u64; 4];
        set_bits(&mut w, 3, 2);
        set_bits(&mut w, 60, 70);
        set_bits(&mut w, 200, 56);
        assert_eq!(next_run(&w, 0), Some((3, 2)));
        assert_eq!(next_run(&w, 5), Some((60, 70)));
        assert_eq!(next_run(&w, 61), Some((61, 69)));
        assert_eq!(next_run(&w, 130), Some((200, 56)));
        assert_eq!(find_run(&w, 3), Some(60));
        assert_eq!(find_run(&w, 71), None);
        assert_eq!(count_bits(&w, 0, 256), 128);
        clear_bits(&mut w, 0, 256);
        assert_eq!(next_run(&w, 0), None);
        let full = [u64::MAX; 2];
        assert_eq!(next_run(&full, 0), Some((0, 128)));
    }
}
