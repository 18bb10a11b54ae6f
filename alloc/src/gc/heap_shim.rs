//! TEMPORARY stand-in for the arena's GC-facing API, backed by `std::alloc`.
//!
//! Branch `alloc` provides `gc_alloc` (an object in a Gc span) and frees
//! objects through `gc_sweep_span`; until it is merged, the collector gets its
//! memory here. Delete this file when merging: `gc_alloc` maps one to one,
//! and `gc_free` becomes the sweep's `dead` callback (see DESIGN.md,
//! "Integration with the span arena").

use std::alloc::Layout;
use std::ptr::NonNull;

/// Allocates memory for one collected object; `None` when the system is out
/// of memory.
pub(crate) fn gc_alloc(layout: Layout) -> Option<NonNull<u8>> {
    debug_assert!(layout.size() > 0, "GcBox always holds a header");
    // SAFETY: `layout` has a non-zero size (it includes the object header).
    NonNull::new(unsafe { std::alloc::alloc(layout) })
}

/// Frees memory returned by `gc_alloc`.
///
/// # Safety
/// `ptr` must come from `gc_alloc(layout)` with this `layout` and must not be
/// used afterwards.
pub(crate) unsafe fn gc_free(ptr: NonNull<u8>, layout: Layout) {
    // SAFETY: the caller guarantees `ptr` came from `std::alloc::alloc` with
    // `layout` and is never used again.
    unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
}
