//! The object header every `Gc` allocation starts with, and its type-erased
//! vtable.
//!
//! Objects live in the arena's GC spans (`heap_api::gc_alloc`); an object's
//! mark is its slot's bit in the span's mark bitmap, found through
//! `heap_api::span_of` (O(1), the page map). Layout of one allocation
//! (`GcBox<T>`, `repr(C)`, header first so a `NonNull<Header>` and a
//! `NonNull<GcBox<T>>` are the same address, the slot's base):
//!
//! | field      | written by                          | read by                 |
//! |------------|-------------------------------------|-------------------------|
//! | `handles`  | `Gc` clone/drop (bits 0..32), `Weak` (bits 32..63), both by atomic RMW; bit 63 `CONDEMNED` by the sweep | collector, `Deref`, `Weak::upgrade` |
//! | `internal` | collector only: `epoch << 32 \| count` | collector only   |
//! | `vtable`   | `Gc::new`, before the collector may read the slot | collector |
//! | `value`    | `Gc::new`; then only through `GcCell`/`GcMutex` | anyone      |

use std::alloc::Layout;
use std::ptr::NonNull;

use crate::gc::trace::{Trace, Tracer};
use crate::heap_api::{SpanRef, span_of};
use crate::loom::sync::atomic::{AtomicU64, Ordering};

pub(crate) use crate::gc::last_drop::{CONDEMNED, STRONG_MASK, WEAK_MASK, WEAK_ONE};
/// Counts past this abort, like `Arc` (only reachable by leaking handles in
/// a loop); half of each field, so an increment cannot carry into the next.
pub(crate) const COUNT_LIMIT: u64 = 1 << 30;

/// Type-erased operations on one object type.
pub(crate) struct VTable {
    /// Reports the handles held by the object's value.
    pub(crate) trace: unsafe fn(NonNull<Header>, &mut Tracer),
    /// Drops the object's value in place (not its memory).
    pub(crate) drop_value: unsafe fn(NonNull<Header>),
    /// Whether `drop_value` does anything (`std::mem::needs_drop`).
    pub(crate) needs_drop: bool,
    /// The layout of the whole `GcBox<T>`.
    pub(crate) layout: Layout,
}

/// The header of every collected object.
pub(crate) struct Header {
    /// How many `Gc` handles point here, wherever they live (bits 0..32),
    /// how many `Weak`s (bits 32..63), and `CONDEMNED`.
    pub(crate) handles: AtomicU64,
    /// Handles found inside scanned objects in cycle `internal >> 32`, in
    /// the low 32 bits (collector only). A count from another cycle reads as
    /// zero, so no pass has to reset it. In a dead slot (`DEAD_VTABLE`): the
    /// bytes the pacer still counts for it (`dead_bytes`), written and read
    /// by the thread that keeps the slot, read by the snapshot that releases
    /// it; the collector counts handles only into objects that have them.
    pub(crate) internal: AtomicU64,
    pub(crate) vtable: &'static VTable,
}

/// One allocation: header, then value.
#[repr(C)]
pub(crate) struct GcBox<T> {
    pub(crate) header: Header,
    pub(crate) value: T,
}

impl<T: Trace> GcBox<T> {
    const VTABLE: VTable = VTable {
        trace: trace_value::<T>,
        drop_value: drop_value::<T>,
        needs_drop: std::mem::needs_drop::<T>(),
        layout: Layout::new::<GcBox<T>>(),
    };

    /// The vtable of `GcBox<T>`.
    pub(crate) fn vtable() -> &'static VTable {
        &Self::VTABLE
    }
}

/// The vtable of a dead slot a thread keeps for reuse (heap_api.rs,
/// `gc_keep_dead`): its header says `CONDEMNED` with no handle, so the
/// snapshot neither traces nor drops it. Its size is 0: the bytes the pacer
/// still counts for the slot are in the header (`Header::dead_bytes`).
pub(crate) static DEAD_VTABLE: VTable = VTable {
    trace: trace_nothing,
    drop_value: drop_nothing,
    needs_drop: false,
    layout: Layout::new::<()>(),
};

/// # Safety
/// None needed: reads nothing (a dead slot has no value).
unsafe fn trace_nothing(_header: NonNull<Header>, _tracer: &mut Tracer) {}

/// # Safety
/// None needed: drops nothing (a dead slot's value was dropped).
unsafe fn drop_nothing(_header: NonNull<Header>) {}

/// # Safety
/// `header` must point to a live `GcBox<T>` whose value has not been dropped.
unsafe fn trace_value<T: Trace>(header: NonNull<Header>, tracer: &mut Tracer) {
    let gc_box = header.cast::<GcBox<T>>();
    // SAFETY: the caller guarantees a live `GcBox<T>` with its value; shared
    // access is enough (Trace obligation 2: tracing only reads).
    let value = unsafe { &(*gc_box.as_ptr()).value };
    value.trace(tracer);
}

/// # Safety
/// `header` must point to a `GcBox<T>` whose value is dropped by no one else,
/// now or later.
unsafe fn drop_value<T: Trace>(header: NonNull<Header>) {
    let gc_box = header.cast::<GcBox<T>>();
    // SAFETY: the caller guarantees exclusive, single use of the value
    // (sweep.rs: only condemned objects, each once).
    unsafe { std::ptr::drop_in_place(&raw mut (*gc_box.as_ptr()).value) };
}

/// An object of a cycle's snapshot with its slot, found once by the snapshot
/// so later passes need no page-map lookup.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) header: NonNull<Header>,
    pub(crate) span: SpanRef,
    pub(crate) idx: usize,
}

impl Slot {
    /// The object's header.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: snapshot objects stay allocated until the cycle's sweep
        // frees them (sweep.rs), and no `Slot` outlives the cycle.
        unsafe { self.header.as_ref() }
    }
}

impl Header {
    /// A header for a fresh object with one handle.
    pub(crate) fn new(vtable: &'static VTable) -> Header {
        Header {
            handles: AtomicU64::new(1),
            internal: AtomicU64::new(0),
            vtable,
        }
    }

    /// The address used as the object's identity in queues.
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self as *const Header as usize
    }

    /// The span and slot holding this object.
    #[inline]
    pub(crate) fn slot(&self) -> (SpanRef, usize) {
        let ptr = self as *const Header as *const u8;
        let span = span_of(ptr).expect("gort_alloc: a Gc object outside the arena's spans");
        (span, span.index_of(ptr))
    }

    /// Whether the collector found this object unreachable.
    #[inline]
    pub(crate) fn is_condemned(&self) -> bool {
        self.handles.load(Ordering::Relaxed) & CONDEMNED != 0
    }

    /// Marks the object unreachable (sweep only).
    pub(crate) fn condemn(&self) {
        let word = self.handles.load(Ordering::Relaxed);
        if word & WEAK_MASK == 0 {
            // No mutator reaches the object (DESIGN.md, "Soundness") and no
            // `Weak` exists, and none can appear (downgrading needs a strong
            // handle, and those are inside unreachable objects whose
            // destructors run later, on this thread): nothing else writes
            // the word now, so a store spares the locked RMW.
            self.handles.store(word | CONDEMNED, Ordering::Relaxed);
        } else {
            // A `Weak` may be upgraded or dropped concurrently.
            self.handles.fetch_or(CONDEMNED, Ordering::Relaxed);
        }
    }

    /// How many `Gc` handles point here.
    #[inline]
    pub(crate) fn handle_count(&self, order: Ordering) -> usize {
        (self.handles.load(order) & STRONG_MASK) as usize
    }

    /// Whether any `Gc` or `Weak` handle points here.
    #[inline]
    pub(crate) fn is_referenced(&self, order: Ordering) -> bool {
        self.handles.load(order) & (STRONG_MASK | WEAK_MASK) != 0
    }

    /// The bytes the pacer counts for this condemned object with no handle
    /// when the snapshot releases it: a dead slot's `dead_bytes`, else its
    /// layout's size.
    #[inline]
    pub(crate) fn released_bytes(&self) -> usize {
        if std::ptr::eq(self.vtable, &DEAD_VTABLE) {
            self.dead_bytes()
        } else {
            self.vtable.layout.size()
        }
    }

    /// A dead slot's bytes still counted by the pacer (pacer.rs).
    #[inline]
    pub(crate) fn dead_bytes(&self) -> usize {
        self.internal.load(Ordering::Relaxed) as usize
    }

    /// The handles found inside scanned objects in cycle `epoch`.
    #[inline]
    pub(crate) fn internal(&self, epoch: u32) -> usize {
        let word = self.internal.load(Ordering::Relaxed);
        if (word >> 32) as u32 == epoch {
            (word & u64::from(u32::MAX)) as usize
        } else {
            0
        }
    }

    /// Counts one more handle found inside a scanned object in cycle
    /// `epoch` (collector only, so a load and a store suffice). Saturates:
    /// a count that stops short only makes the object a root.
    #[inline]
    pub(crate) fn add_internal(&self, epoch: u32) {
        let count = self.internal(epoch) as u64;
        let next = (count + 1).min(u64::from(u32::MAX));
        self.internal
            .store((u64::from(epoch) << 32) | next, Ordering::Relaxed);
    }

    /// Sets this object's mark bit unless it is condemned; true if this call
    /// set it.
    #[inline]
    pub(crate) fn try_mark(&self) -> bool {
        if self.is_condemned() {
            return false;
        }
        let (span, idx) = self.slot();
        span.mark(idx)
    }
}
