//! Sweeping: destructors of unreachable objects, then the arena's sweep.
//!
//! On the collector thread, with the barriers off and no barrier in flight
//! (the SWEEP handshake, barrier.rs):
//! 1. **Condemn.** Every snapshot object whose mark bit is clear gets the
//!    `CONDEMNED` flag. From here a `Deref` of it panics (handle.rs) and
//!    shading skips it.
//! 2. **Destroy.** Each condemned value is dropped in place, exactly once,
//!    under `catch_unwind`: a destructor that panics (for instance by
//!    dereferencing another condemned object) is counted and does not stop
//!    the sweep. Dropping a value drops the handles it holds, which decrement
//!    counts of other objects, condemned ones included: their memory is still
//!    allocated.
//! 3. **Keep the resurrected.** A condemned object whose handle count is not
//!    zero now was given a handle by a destructor. Its mark bit is set so the
//!    arena keeps its memory (leaked: its `Deref` panics forever, and every
//!    later snapshot marks it again instead of tracing it).
//! 4. **Free.** `heap_api::gc_sweep_span` on every GC span: the arena reports
//!    each allocated, unmarked slot (exactly the condemned objects with no
//!    handle left) and swaps its bitmaps (`allocBits = markBits`), which
//!    frees them and clears every mark for the next cycle.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use crate::gc::object::{CONDEMNED, Header};
use crate::heap_api::{for_each_gc_span, gc_sweep_span};
use crate::loom::sync::atomic::Ordering;

/// What sweeping did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SweepStats {
    /// Snapshot objects that survived.
    pub(crate) live_objects: usize,
    /// Bytes of the snapshot objects that survived.
    pub(crate) live_bytes: usize,
    /// Objects freed.
    pub(crate) freed_objects: usize,
    /// Bytes freed.
    pub(crate) freed_bytes: usize,
    /// Objects kept alive by a destructor (leaked, see module doc).
    pub(crate) leaked_objects: usize,
    /// Destructors that panicked.
    pub(crate) destructor_panics: usize,
    /// Slots the arena reported dead that were not condemned: a broken
    /// invariant (always 0; checked by the tests).
    pub(crate) unexpected_dead: usize,
}

/// Sweeps after a cycle whose snapshot was `objects`.
pub(crate) fn sweep(objects: Vec<NonNull<Header>>) -> SweepStats {
    let mut stats = SweepStats::default();
    let mut condemned = Vec::new();
    for object in objects {
        // SAFETY: snapshot objects stay allocated until step 4.
        let header = unsafe { object.as_ref() };
        if header.is_marked() {
            stats.live_objects += 1;
            stats.live_bytes += header.vtable.layout.size();
        } else {
            header.flags.fetch_or(CONDEMNED, Ordering::Relaxed);
            condemned.push(object);
        }
    }

    for object in &condemned {
        // SAFETY: `object` is condemned: unreachable from every mutator
        // (DESIGN.md, "Soundness"), so no one else uses its value, and this
        // loop visits each condemned object once.
        let destroy = || unsafe { (object.as_ref().vtable.drop_value)(*object) };
        if catch_unwind(AssertUnwindSafe(destroy)).is_err() {
            stats.destructor_panics += 1;
        }
    }

    for object in &condemned {
        // SAFETY: condemned objects stay allocated until step 4.
        let header = unsafe { object.as_ref() };
        if header.handles.load(Ordering::Acquire) != 0 {
            let (span, idx) = header.slot();
            span.mark(idx);
            stats.leaked_objects += 1;
        }
    }

    for_each_gc_span(|span| {
        gc_sweep_span(span, |slot| {
            // SAFETY: the arena reports allocated slots of GC spans, which
            // hold `GcBox`es whose headers outlive their values.
            let header = unsafe { &*slot.cast::<Header>() };
            if header.is_condemned() {
                stats.freed_objects += 1;
                stats.freed_bytes += header.vtable.layout.size();
            } else {
                stats.unexpected_dead += 1;
            }
        });
    });
    stats
}
