//! Roots without stack scanning: handle counting.
//!
//! Every object counts its `Gc` handles (`Header::handles`), wherever they
//! live. A cycle traces every object of its snapshot once in counting mode:
//! each handle found inside a scanned object adds one to its target's
//! `internal` count. An object whose handle count exceeds its internal count
//! has a handle outside the scanned heap (a stack, a global, an object
//! allocated during the cycle): it is a root. This is the idea of CPython's
//! cycle detector (`gc_refs`) and of the shredder crate; here it runs while
//! mutators keep going, which the barriers make sound (DESIGN.md,
//! "Soundness").

use std::ptr::NonNull;

use crate::gc::object::Header;
use crate::gc::trace::{TraceMode, Tracer};
use crate::heap_api::for_each_gc_span;
use crate::loom::sync::atomic::Ordering;

/// The cycle's snapshot (H0 in DESIGN.md): every allocated, unmarked object
/// in the arena's GC spans. Called after `Barrier::start_cycle` and a
/// `wait_for_mutators`, so every allocated object is initialised and every
/// object allocated from now on is born marked (skipped here).
///
/// Objects condemned by an earlier cycle and kept alive by a handle a
/// destructor stored (sweep.rs, "leaked") are marked instead, so the sweep
/// keeps them; their values are gone and must never be traced.
pub(crate) fn snapshot() -> Vec<NonNull<Header>> {
    let mut objects = Vec::new();
    for_each_gc_span(|span| {
        for idx in 0..span.nelems() {
            if !span.is_allocated(idx) || span.is_marked(idx) {
                continue;
            }
            let Some(object) = NonNull::new(span.base_of(idx).cast::<Header>()) else {
                continue;
            };
            // SAFETY: an allocated slot of a GC span holds an initialised
            // `GcBox` (allocation handshake: barrier.rs, Orderings).
            if unsafe { object.as_ref() }.is_condemned() {
                span.mark(idx);
            } else {
                objects.push(object);
            }
        }
    });
    objects
}

/// Counts, for every object, the handles to it found inside `objects`.
/// Returns how many cells were skipped because a mutator held them mutably.
pub(crate) fn count_internal(objects: &[NonNull<Header>]) -> usize {
    for object in objects {
        // SAFETY: snapshot objects are live until this cycle's sweep, which
        // has not started (collector::run_cycle runs the phases in order).
        unsafe { object.as_ref() }
            .internal
            .store(0, Ordering::Relaxed);
    }
    let mut tracer = Tracer::new(TraceMode::Count);
    for object in objects {
        // SAFETY: as above: live, value not dropped (`snapshot` leaves out
        // condemned objects).
        let header = unsafe { object.as_ref() };
        // SAFETY: `object` is a live `GcBox` of the type `vtable` was built
        // for (object.rs: the header is written with its own vtable).
        unsafe { (header.vtable.trace)(*object, &mut tracer) };
    }
    tracer.opaque
}

/// Marks every object with more handles than `count_internal` found inside
/// the heap, pushing it on `stack`. Returns how many roots it found.
pub(crate) fn find_roots(objects: &[NonNull<Header>], stack: &mut Vec<NonNull<Header>>) -> usize {
    let mut roots = 0;
    for object in objects {
        // SAFETY: snapshot objects are live until this cycle's sweep.
        let header = unsafe { object.as_ref() };
        let internal = header.internal.load(Ordering::Relaxed) as usize;
        // After `start_cycle`'s fence: a clone whose fence came first is
        // counted here (barrier.rs, Orderings).
        let handles = header.handles.load(Ordering::Relaxed);
        if handles > internal {
            roots += 1;
            if header.try_mark() {
                stack.push(*object);
            }
        }
    }
    roots
}
