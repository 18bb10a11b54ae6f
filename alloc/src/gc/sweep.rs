//! Sweeping: destructors of unreachable objects, then their memory.
//!
//! Three passes over the cycle's snapshot, on the collector thread, with the
//! barriers off:
//! 1. **Condemn.** Every unmarked object gets `mark = CONDEMNED`; survivors go
//!    back on the all-objects list. From here a `Deref` of a condemned object
//!    panics (handle.rs), and shading skips it.
//! 2. **Destroy.** Each condemned value is dropped in place, exactly once,
//!    under `catch_unwind`: a destructor that panics (for instance by
//!    dereferencing another condemned object) is counted and does not stop
//!    the sweep. Dropping a value drops the handles it holds, which decrement
//!    counts of other objects, condemned ones included: their memory is still
//!    allocated.
//! 3. **Free.** A condemned object whose handle count is now zero is freed. A
//!    count above zero means a destructor kept a handle (resurrection): the
//!    object is leaked, not freed, so that handle stays memory-safe (its
//!    `Deref` panics).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use crate::gc::barrier::{CONDEMNED, is_marked};
use crate::gc::heap_shim::gc_free;
use crate::gc::object::{Header, ObjectList, give_back};
use crate::loom::sync::atomic::Ordering;

/// What sweeping did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SweepStats {
    /// Objects that survived.
    pub(crate) live_objects: usize,
    /// Bytes of the objects that survived.
    pub(crate) live_bytes: usize,
    /// Objects freed.
    pub(crate) freed_objects: usize,
    /// Bytes freed.
    pub(crate) freed_bytes: usize,
    /// Objects kept alive by a destructor (leaked, see module doc).
    pub(crate) leaked_objects: usize,
    /// Destructors that panicked.
    pub(crate) destructor_panics: usize,
}

/// Sweeps the snapshot `objects` of the cycle with `epoch`.
pub(crate) fn sweep(objects: Vec<NonNull<Header>>, epoch: u32) -> SweepStats {
    let mut stats = SweepStats::default();
    let mut survivors = ObjectList::new();
    let mut condemned = Vec::new();
    for object in objects {
        // SAFETY: snapshot objects are live until this pass frees them.
        let header = unsafe { object.as_ref() };
        if is_marked(&header.mark, epoch) {
            stats.live_objects += 1;
            stats.live_bytes += header.vtable.layout.size();
            survivors.push(object);
        } else {
            header.mark.store(CONDEMNED, Ordering::Release);
            condemned.push(object);
        }
    }
    give_back(survivors);

    for object in &condemned {
        // SAFETY: `object` is condemned: unreachable from every mutator
        // (DESIGN.md, "Soundness"), so no one else uses its value, and this
        // loop visits each condemned object once.
        let result = catch_unwind(AssertUnwindSafe(|| unsafe {
            (object.as_ref().vtable.drop_value)(*object)
        }));
        if result.is_err() {
            stats.destructor_panics += 1;
        }
    }

    for object in condemned {
        // SAFETY: condemned objects stay allocated until this loop.
        let header = unsafe { object.as_ref() };
        let layout = header.vtable.layout;
        if header.handles.load(Ordering::SeqCst) == 0 {
            stats.freed_objects += 1;
            stats.freed_bytes += layout.size();
            // SAFETY: no handle points here (count zero, and the object is
            // unreachable so none can be made), its value was dropped above,
            // and the memory came from `gc_alloc(layout)` in `Gc::new`.
            unsafe { gc_free(object.cast::<u8>(), layout) };
        } else {
            stats.leaked_objects += 1;
        }
    }
    stats
}
