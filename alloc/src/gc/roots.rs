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
pub(crate) use crate::gc::object::Slot;
use crate::gc::trace::{TraceMode, Tracer};
use crate::heap_api::{SpanRef, for_each_gc_span};
use crate::loom::sync::atomic::Ordering;

/// Fills `objects` with the cycle's snapshot (H0 in DESIGN.md): every
/// allocated, unmarked object in the arena's GC spans, and counts, for every
/// object, the handles to it found inside them (its `internal` count for
/// `epoch`).
///
/// Called after `Barrier::start_cycle` and a `wait_for_mutators`, so every
/// allocated object is initialised and every object allocated from now on
/// is born marked (skipped here). Objects condemned by an earlier cycle and
/// kept by a handle a destructor stored (sweep.rs, "resurrected") are never
/// traced (their values are gone); they are marked, so the sweep keeps their
/// memory, until their last handle is dropped.
pub(crate) fn snapshot_and_count(objects: &mut Vec<Slot>, epoch: u32) -> Snapshot {
    objects.clear();
    let mut released = Snapshot::default();
    let mut tracer = Tracer::new(TraceMode::Count { epoch });
    for_each_gc_span(|span| {
        let nelems = span.nelems();
        for w in 0..nelems.div_ceil(64) {
            // Allocated and unmarked slots, a word at a time (empty and
            // black slots cost nothing). The arena marks a black allocation
            // before setting its alloc bit (Release), and the alloc word is
            // read first with Acquire, so such a slot shows its mark
            // (span.rs, Orderings).
            let mut bits = span.allocated_unmarked(w);
            while bits != 0 {
                let idx = 64 * w + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if idx < nelems {
                    snapshot_slot(span, idx, objects, &mut released, &mut tracer);
                }
            }
        }
    });
    released.opaque = tracer.opaque;
    released
}

/// Adds the allocated, unmarked slot `idx` of `span` to the snapshot and
/// counts the handles its object holds (`snapshot_and_count`'s body).
#[inline]
fn snapshot_slot(
    span: SpanRef,
    idx: usize,
    objects: &mut Vec<Slot>,
    released: &mut Snapshot,
    tracer: &mut Tracer,
) {
    let Some(header) = NonNull::new(span.base_of(idx).cast::<Header>()) else {
        return;
    };
    // SAFETY: an allocated slot of a GC span holds an initialised
    // `GcBox` (allocation handshake: barrier.rs, Orderings).
    let object = unsafe { header.as_ref() };
    if object.is_condemned() {
        // Kept by a destructor's handle or a `Weak` (sweep.rs): keep
        // the memory while one exists. With none left no new one can
        // appear (cloning needs a handle; upgrading refuses condemned
        // objects), so the arena's sweep may free it now: it reports
        // a condemned object, as expected.
        if object.is_referenced(Ordering::Acquire) {
            span.mark(idx);
        } else {
            released.released_objects += 1;
            released.released_bytes += object.released_bytes();
        }
        return;
    }
    objects.push(Slot { header, span, idx });
    // SAFETY: `header` is a live `GcBox` of the type its vtable was
    // built for (object.rs), and its value is not dropped (not
    // condemned).
    unsafe { (object.vtable.trace)(header, tracer) };
}

/// What `snapshot_and_count` found besides the snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Snapshot {
    /// Cells skipped because a mutator held them mutably.
    pub(crate) opaque: usize,
    /// Resurrected objects of earlier cycles whose last handle is gone: the
    /// arena's sweep frees them this cycle.
    pub(crate) released_objects: usize,
    /// Their bytes.
    pub(crate) released_bytes: usize,
}

/// Marks every object with more handles than `snapshot_and_count` found
/// inside the heap, pushing it on `stack`. Returns how many roots it found.
pub(crate) fn find_roots(objects: &[Slot], epoch: u32, stack: &mut Vec<NonNull<Header>>) -> usize {
    let mut roots = 0;
    for object in objects {
        let header = object.header();
        let internal = header.internal(epoch);
        // Clear the count once read: a count is only read here, so an old
        // one could look current after the u32 epoch wraps only if its
        // object stayed out of 2^32 consecutive snapshots (always marked
        // before the snapshot reached it).
        header.internal.store(0, Ordering::Relaxed);
        // After `start_cycle`'s fence: a clone whose fence came first is
        // counted here (barrier.rs, Orderings).
        let handles = header.handle_count(Ordering::Relaxed);
        if handles > internal {
            roots += 1;
            if object.span.mark(object.idx) {
                stack.push(object.header);
            }
        }
    }
    roots
}
