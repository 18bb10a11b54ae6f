//! `SpanAlloc`: the arena behind Rust's `GlobalAlloc` interface.
//!
//! This is a contract: code outside gort uses `SpanAlloc` as its
//! `#[global_allocator]`, and benchmarks call it directly. Its obligations:
//! - memory returned is aligned to `layout.align()` and holds
//!   `layout.size()` bytes; a request that cannot be met (larger than the
//!   address space, or refused by the OS) returns null and changes nothing;
//! - nothing inside the arena allocates through the global allocator (which
//!   may be `SpanAlloc` itself): metadata comes from `os.rs`;
//! - no method unwinds (unwinding out of a global allocator is undefined
//!   behaviour); misuse that would corrupt the heap (freeing a pointer the
//!   arena does not own, a double free, an interior pointer, a GC object) is
//!   detected and aborts the process with a message naming the pointer and
//!   the error, like glibc's "free(): invalid pointer";
//! - `realloc` within the same size class (or, for large objects, the same
//!   number of pages) returns the same pointer.
//!
//! Small requests (at most 32 KiB, alignment at most 8 KiB) go through the
//! thread's mcache; larger or more aligned ones get a span of their own.

use crate::loom::sync::atomic::Ordering;
use crate::mcache;
use crate::mcentral::FreeError;
use crate::mheap::HEAP;
use crate::sizeclass::{CLASS_DIV_MAGIC, CLASS_SIZE, NUM_CLASSES, PAGE_SIZE, class_for};
use crate::span::SpanRef;
use crate::stats::CENTRAL;
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::{self, NonNull};

/// gort's span allocator as a `GlobalAlloc`. Use it with
/// `#[global_allocator] static A: gort_alloc::SpanAlloc = gort_alloc::SpanAlloc;`
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanAlloc;

/// Allocates `size` bytes aligned to `align`; null when impossible.
#[inline]
pub(crate) fn malloc(size: usize, align: usize) -> *mut u8 {
    match class_for(size, align) {
        Some(class) => mcache::malloc_small(class),
        None => alloc_large(size, align, false),
    }
}

/// Allocates a large object of its own span (`gc` selects the span kind);
/// null when the size is impossible or the OS refuses.
pub(crate) fn alloc_large(size: usize, align: usize, gc: bool) -> *mut u8 {
    // Alignment up to a page comes free with the span; beyond it, over-allocate.
    let extra = align.saturating_sub(PAGE_SIZE);
    let Some(bytes) = size.max(1).checked_add(extra) else {
        return ptr::null_mut();
    };
    let Some(npages) = bytes.checked_add(PAGE_SIZE - 1).map(|b| b / PAGE_SIZE) else {
        return ptr::null_mut();
    };
    let Some(span) = HEAP.alloc_span(npages, usize::from(gc), size, align, 0) else {
        return ptr::null_mut();
    };
    let k = usize::from(gc);
    CENTRAL.mallocs[k].fetch_add(1, Ordering::Relaxed);
    CENTRAL.large_bytes_alloc[k].fetch_add(size as u64, Ordering::Relaxed);
    span.base_of(0)
}

/// Frees a large object's span.
pub(crate) fn free_large(span: SpanRef) {
    let k = usize::from(span.is_gc());
    CENTRAL.frees[k].fetch_add(1, Ordering::Relaxed);
    CENTRAL.large_bytes_freed[k].fetch_add(span.elem_size() as u64, Ordering::Relaxed);
    // SAFETY: the caller freed the span's only object, so no one uses it.
    unsafe { HEAP.free_span(span) };
}

/// Frees a `SpanAlloc` object, or says why it cannot.
#[inline]
pub(crate) fn free(ptr: *mut u8) -> Result<(), FreeError> {
    let addr = ptr as usize;
    let Some(sp) = NonNull::new(HEAP.pagemap.lookup(addr)) else {
        return Err(FreeError::NotOwned);
    };
    // SAFETY: page-map entries point at span structs, which live forever.
    let span = unsafe { SpanRef::from_ptr(sp) };
    let s = span.span();
    // A span in the page map is in use (free_span clears its entries before
    // marking it FREE); class 0 means large, the low bit GC.
    let sc = s.spanclass.load(Ordering::Relaxed);
    let class = sc >> 1;
    if sc & 1 == 0 && class != 0 && class < NUM_CLASSES {
        let off = addr.wrapping_sub(s.base.load(Ordering::Relaxed));
        let idx = ((off as u64 * CLASS_DIV_MAGIC[class] as u64) >> 32) as usize;
        if idx * CLASS_SIZE[class] as usize != off {
            return Err(FreeError::Interior);
        }
        return mcache::free_small(span, class, idx, ptr);
    }
    let (span, _) = mcache::lookup_for_free(ptr)?;
    free_large(span);
    Ok(())
}

/// Prints `msg` and the pointer to stderr without allocating, then aborts.
#[cold]
pub(crate) fn abort_with(err: FreeError, ptr: *mut u8) -> ! {
    let mut buf = [0u8; 160];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        for &b in s {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
    };
    put(b"gort-alloc: invalid free of 0x");
    let addr = ptr as usize;
    for i in (0..16).rev() {
        put(&[b"0123456789abcdef"[(addr >> (i * 4)) & 15]]);
    }
    put(b": ");
    put(match err {
        FreeError::NotOwned => b"pointer was not allocated by gort-alloc",
        FreeError::DoubleFree => b"double free",
        FreeError::Interior => b"pointer is inside an allocation, not at its start",
        FreeError::GcObject => b"pointer belongs to the garbage collector",
    });
    put(b"\n");
    // SAFETY: writing our own buffer to stderr; the result does not matter
    // since we abort next.
    unsafe { libc::write(2, buf.as_ptr().cast(), n) };
    std::process::abort();
}

/// The usable size the arena gives a request (its class size, or the large
/// object's size), or `None` for a large request.
fn small_capacity(size: usize, align: usize) -> Option<usize> {
    class_for(size, align).map(|c| CLASS_SIZE[c] as usize)
}

// SAFETY: `alloc` returns null or a block of at least `layout.size()` bytes
// aligned to `layout.align()` (class sizes are multiples of the alignment,
// spans are page-aligned, large spans over-allocate for bigger alignment),
// owned by the caller until `dealloc`; no method unwinds (misuse aborts).
unsafe impl GlobalAlloc for SpanAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        malloc(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // The layout names the class: an object of this thread's cached span
        // is freed without a page-map lookup. A wrong layout (the caller's
        // contract broken) only misses this path; the page map decides then.
        if let Some(class) = class_for(layout.size(), layout.align()) {
            match mcache::free_sized(ptr, class) {
                Some(Ok(())) => return,
                Some(Err(e)) => abort_with(e, ptr),
                None => {}
            }
        }
        if let Err(e) = free(ptr) {
            abort_with(e, ptr);
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = malloc(layout.size(), layout.align());
        if !p.is_null() {
            // SAFETY: `p` holds at least `layout.size()` bytes, just allocated.
            unsafe { p.write_bytes(0, layout.size()) };
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (
            small_capacity(layout.size(), align),
            small_capacity(new_size, align),
        ) {
            (Some(a), Some(b)) if a == b => return ptr,
            (None, None) => {
                // A large object keeps its span when the page count holds.
                let pages = |s: usize| (s + align.saturating_sub(PAGE_SIZE)).div_ceil(PAGE_SIZE);
                if pages(layout.size()) == pages(new_size) {
                    if let Ok((span, _)) = mcache::lookup_for_free(ptr) {
                        // Keep the byte count `stats()` reports exact.
                        let old = span.elem_size();
                        span.span().elem_size.store(new_size, Ordering::Relaxed);
                        let k = usize::from(span.is_gc());
                        CENTRAL.large_bytes_alloc[k].fetch_add(new_size as u64, Ordering::Relaxed);
                        CENTRAL.large_bytes_freed[k].fetch_add(old as u64, Ordering::Relaxed);
                        return ptr;
                    }
                }
            }
            _ => {}
        }
        let new = malloc(new_size, align);
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least
            // min(old, new) bytes long.
            unsafe { ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` was allocated by us with `layout` (caller contract).
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_size_and_alignment_round_trips() {
        let a = SpanAlloc;
        let mut live = Vec::new();
        for size in (1..70_000).step_by(97) {
            for align in [1, 8, 16, 64, 4096, 16384] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size layout.
                let p = unsafe { a.alloc(layout) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                // SAFETY: p holds `size` bytes.
                unsafe { p.write_bytes(size as u8, size) };
                live.push((p, layout));
            }
        }
        for (p, layout) in live {
            // SAFETY: p is live with this layout and was filled with size as u8.
            unsafe {
                assert_eq!(*p.add(layout.size() - 1), layout.size() as u8);
                a.dealloc(p, layout);
            }
        }
    }

    #[test]
    fn bad_frees_are_refused_without_damage() {
        let x = 5u64;
        assert_eq!(free(&x as *const u64 as *mut u8), Err(FreeError::NotOwned));
        let p = malloc(64, 8);
        // SAFETY: p is a live 64-byte object; p+8 is inside it.
        assert_eq!(free(unsafe { p.add(8) }), Err(FreeError::Interior));
        assert_eq!(free(p), Ok(()));
        let big = malloc(100_000, 8);
        assert_eq!(free(big), Ok(()));
        assert_eq!(free(big), Err(FreeError::NotOwned));
        let g = crate::heap_api::gc_alloc(Layout::new::<u64>()).unwrap();
        assert_eq!(free(g.as_ptr()), Err(FreeError::GcObject));
        // A 64-byte slot on this thread's local list carries a key: found
        // in every build.
        assert_eq!(free(p), Err(FreeError::DoubleFree));
        // On the remote list of a span another thread caches, a double free
        // is found by walking that list, which only debug builds do.
        if cfg!(debug_assertions) {
            let q = malloc(64, 8) as usize;
            std::thread::spawn(move || {
                assert_eq!(free(q as *mut u8), Ok(()));
                assert_eq!(free(q as *mut u8), Err(FreeError::DoubleFree));
            })
            .join()
            .unwrap();
        }
        assert!(
            malloc(isize::MAX as usize, 8).is_null(),
            "impossible size is null"
        );
        assert!(malloc(usize::MAX, 8).is_null());
    }

    #[test]
    fn dealloc_with_another_layout_still_frees_the_right_object() {
        let a = SpanAlloc;
        let small = Layout::from_size_align(64, 8).unwrap();
        let other = Layout::from_size_align(200, 8).unwrap();
        let before = crate::stats::stats();
        // SAFETY: the pointers are live; the layouts mismatch on purpose,
        // which only sends dealloc down the page-map path.
        unsafe {
            let p = a.alloc(small);
            let q = a.alloc(other);
            a.dealloc(p, other);
            a.dealloc(q, small);
            let again = a.alloc(small);
            assert_eq!(again, p, "the freed slot is reused first");
            a.dealloc(again, small);
        }
        let after = crate::stats::stats();
        assert!(after.frees - before.frees >= 3);
    }

    #[test]
    fn realloc_in_class_stays_in_place() {
        let a = SpanAlloc;
        let l = Layout::from_size_align(40, 8).unwrap();
        // SAFETY: valid layouts; each pointer is live when passed.
        unsafe {
            let p = a.alloc(l);
            p.write_bytes(9, 40);
            assert_eq!(a.realloc(p, l, 48), p, "40 -> 48 stays in class 48");
            let q = a.realloc(p, Layout::from_size_align(48, 8).unwrap(), 200);
            assert_ne!(q, p);
            assert_eq!(*q.add(39), 9);
            let big = Layout::from_size_align(100_000, 8).unwrap();
            let b = a.realloc(q, Layout::from_size_align(200, 8).unwrap(), 100_000);
            assert_eq!(a.realloc(b, big, 100_200), b, "same page count stays");
            a.dealloc(b, Layout::from_size_align(100_200, 8).unwrap());
        }
    }
}
