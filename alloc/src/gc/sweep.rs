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
//! 3. **Keep the referenced.** A condemned object whose handle count is not
//!    zero now was given a handle by a destructor; one with `Weak`s must keep
//!    its header for them. Its mark bit is set so the arena keeps its memory;
//!    its `Deref` panics, `Weak::upgrade` returns `None`, and every later
//!    snapshot marks it again instead of tracing it, until its last handle
//!    and `Weak` are dropped: then the next cycle frees it.
//! 4. **Free.** `heap_api::gc_sweep_span` on every GC span: the arena reports
//!    each allocated, unmarked slot (exactly the condemned objects with no
//!    handle left) and swaps its bitmaps (`allocBits = markBits`), which
//!    frees them and clears every mark for the next cycle.

use crate::gc::object::{Header, Slot};
use crate::gc::roots::Snapshot;
use crate::heap_api::{for_each_gc_span, gc_sweep_span};
use crate::loom::sync::atomic::{Ordering, fence};
use std::panic::{AssertUnwindSafe, catch_unwind};

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

/// Sweeps after a cycle whose snapshot was `objects`;
/// `condemned` is scratch space, reused across cycles; `released` says which
/// resurrected objects of earlier cycles the arena frees too.
pub(crate) fn sweep(objects: &[Slot], condemned: &mut Vec<Slot>, released: Snapshot) -> SweepStats {
    let mut stats = SweepStats {
        freed_objects: released.released_objects,
        freed_bytes: released.released_bytes,
        ..SweepStats::default()
    };
    condemned.clear();
    let mut destructors = false;
    for &object in objects {
        let header = object.header();
        if object.span.is_marked(object.idx) {
            stats.live_objects += 1;
            stats.live_bytes += header.vtable.layout.size();
        } else {
            header.condemn();
            destructors |= header.vtable.needs_drop;
            condemned.push(object);
        }
    }

    if destructors {
        for object in condemned.iter() {
            let vtable = object.header().vtable;
            if !vtable.needs_drop {
                continue;
            }
            // SAFETY: `object` is condemned: unreachable from every mutator
            // (DESIGN.md, "Soundness"), so no one else uses its value, and
            // this loop visits each condemned object once.
            let destroy = || unsafe { (vtable.drop_value)(object.header) };
            if catch_unwind(AssertUnwindSafe(destroy)).is_err() {
                stats.destructor_panics += 1;
            }
        }
    }

    // Release: a `Weak::upgrade` that sees a mark set below (Acquire fence
    // after its mark load) sees the `CONDEMNED` set above.
    fence(Ordering::Release);
    for object in condemned.iter() {
        let header = object.header();
        if header.is_referenced(Ordering::Acquire) {
            object.span.mark(object.idx);
            stats.leaked_objects += 1;
        } else {
            stats.freed_objects += 1;
            stats.freed_bytes += header.vtable.layout.size();
        }
    }

    let mut reported = 0;
    for_each_gc_span(|span| {
        gc_sweep_span(span, |slot| {
            reported += 1;
            if cfg!(debug_assertions) {
                // SAFETY: the arena reports allocated slots of GC spans,
                // which hold `GcBox`es whose headers outlive their values.
                let header = unsafe { &*slot.cast::<Header>() };
                if !header.is_condemned() {
                    stats.unexpected_dead += 1;
                }
            }
        });
    });
    // Every reported slot must be a condemned object counted as freed above.
    if reported != stats.freed_objects {
        stats.unexpected_dead = stats
            .unexpected_dead
            .max(reported.saturating_sub(stats.freed_objects));
    }
    stats
}
