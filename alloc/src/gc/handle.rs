//! `Gc<T>`: a counted handle to an object the collector may free.
//!
//! # Validity
//! Every handle counts itself in its object's `handles` word, wherever the
//! handle lives (a stack, a global, another object). An object is freed only
//! by a sweep, and only when the cycle found it unreachable and no handle to
//! it remained after its destructors ran (sweep.rs). So a handle held by a
//! mutator always points to allocated memory; its value is valid unless the
//! handle was reached from a destructor of the same collection, in which case
//! `Deref` panics (DESIGN.md, "Destructors").
//!
//! # Barriers
//! `clone` is the one operation on a handle that takes part in the
//! collector's protocol: it counts the new handle and, while a cycle marks,
//! shades the target (barrier.rs). `drop` only decrements; `deref` reads.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use crate::gc::barrier::with_barrier;
use crate::gc::object::{CONDEMNED, GcBox, Header};
use crate::gc::pacer;
use crate::gc::trace::{Trace, Tracer};
use crate::heap_api::gc_alloc;
use crate::loom::sync::atomic::Ordering;

/// A handle to a garbage-collected `T`, shared by cloning.
///
/// Cycles of `Gc`s are freed by the collector (`collect()`, or a background
/// cycle started by the pacer). Values are immutable through a `Gc`; put a
/// [`GcCell`](crate::GcCell) or [`GcMutex`](crate::GcMutex) inside to mutate.
///
/// `Gc<T>` is `Send` and `Sync` exactly when `T` is `Send + Sync`.
pub struct Gc<T: Trace + 'static> {
    ptr: NonNull<GcBox<T>>,
    _marker: PhantomData<T>,
}

// SAFETY: a `Gc<T>` moved to another thread gives that thread `&T` (needs
// `T: Sync`) and a share of ownership, so the last user may be there (needs
// `T: Send`). The header is only touched through atomics.
unsafe impl<T: Trace + Send + Sync + 'static> Send for Gc<T> {}
// SAFETY: as for `Send`: `&Gc<T>` gives `&T` (needs `T: Sync`) and clones
// (which move `T`'s ownership share across threads, needs `T: Send`).
unsafe impl<T: Trace + Send + Sync + 'static> Sync for Gc<T> {}

impl<T: Trace + 'static> Gc<T> {
    /// Moves `value` into a new collected object.
    ///
    /// The collector drops unreachable values on its own thread, which Trace
    /// obligation 5 makes sound for every `Trace` type.
    pub fn new(value: T) -> Gc<T> {
        let layout = std::alloc::Layout::new::<GcBox<T>>();
        // A barrier operation: a cycle that starts meanwhile waits until the
        // object is initialised, or the arena allocates it black (barrier.rs,
        // Orderings, "Allocation").
        let ptr = with_barrier(|barrier| {
            barrier.phase_after_store();
            let Some(memory) = gc_alloc(layout) else {
                std::alloc::handle_alloc_error(layout)
            };
            let ptr = memory.cast::<GcBox<T>>();
            let header = Header::new(GcBox::<T>::vtable());
            // SAFETY: `memory` is a fresh slot, sized and aligned for
            // `GcBox<T>` (gc_alloc honours the layout).
            unsafe { ptr.as_ptr().write(GcBox { header, value }) };
            ptr
        });
        pacer::note_alloc(layout.size());
        Gc {
            ptr,
            _marker: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Gc<T> {
    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: a handle keeps its object allocated (Validity).
        unsafe { &(*self.ptr.as_ptr()).header }
    }

    /// Whether `a` and `b` point to the same object.
    #[inline]
    pub fn ptr_eq(a: &Gc<T>, b: &Gc<T>) -> bool {
        a.ptr == b.ptr
    }

    /// The object's address, for identity (stable for the object's life).
    #[inline]
    pub fn as_ptr(this: &Gc<T>) -> *const T {
        // SAFETY: a handle keeps its object allocated (Validity); taking the
        // field's address reads nothing.
        unsafe { &raw const (*this.ptr.as_ptr()).value }
    }

    /// How many handles point to this object (racy under concurrency; for
    /// tests and diagnostics).
    pub fn handle_count(this: &Gc<T>) -> usize {
        this.header().handle_count(Ordering::Relaxed)
    }
}

impl<T: Trace + 'static> Clone for Gc<T> {
    #[inline]
    fn clone(&self) -> Gc<T> {
        let header = self.header();
        with_barrier(|barrier| {
            // Relaxed: the fence in `phase_after_store` orders it before the
            // phase load; a clone that sees OFF is counted by `find_roots`
            // (barrier.rs, Orderings).
            let old = header.handles.fetch_add(1, Ordering::Relaxed);
            if old & !CONDEMNED > isize::MAX as usize / 2 {
                // Like `Arc`: a count this large means handles were leaked
                // with `mem::forget` in a loop; wrapping would free live memory.
                std::process::abort();
            }
            if barrier.phase_after_store().marking() && header.try_mark() {
                barrier.shaded(header.addr());
            }
        });
        Gc {
            ptr: self.ptr,
            _marker: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Drop for Gc<T> {
    #[inline]
    fn drop(&mut self) {
        // Release: whatever this thread wrote through the value happens
        // before the collector's SeqCst count load and the destructor.
        self.header().handles.fetch_sub(1, Ordering::Release);
    }
}

impl<T: Trace + 'static> Deref for Gc<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        if self.header().is_condemned() {
            condemned_deref();
        }
        // SAFETY: a handle keeps its object allocated (Validity), and an
        // object that is not condemned still holds its value: values are
        // dropped only after their object is condemned (sweep.rs).
        unsafe { &(*self.ptr.as_ptr()).value }
    }
}

#[cold]
#[inline(never)]
fn condemned_deref() -> ! {
    panic!(
        "gort_alloc::Gc: dereferenced an object the collector found unreachable; \
         only a destructor running in the same collection can hold such a handle \
         (see alloc/DESIGN.md, \"Destructors\")"
    )
}

// SAFETY: a handle reports exactly itself (obligation 1) and reporting only
// reads the pointer (obligation 2).
unsafe impl<T: Trace + 'static> Trace for Gc<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        tracer.visit(self.ptr.cast::<Header>());
    }
}

impl<T: Trace + fmt::Debug + 'static> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Trace + fmt::Display + 'static> fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: Trace + 'static> fmt::Pointer for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&Gc::as_ptr(self), f)
    }
}

impl<T: Trace + PartialEq + 'static> PartialEq for Gc<T> {
    fn eq(&self, other: &Gc<T>) -> bool {
        **self == **other
    }
}

impl<T: Trace + Eq + 'static> Eq for Gc<T> {}

impl<T: Trace + PartialOrd + 'static> PartialOrd for Gc<T> {
    fn partial_cmp(&self, other: &Gc<T>) -> Option<std::cmp::Ordering> {
        (**self).partial_cmp(&**other)
    }
}

impl<T: Trace + Ord + 'static> Ord for Gc<T> {
    fn cmp(&self, other: &Gc<T>) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl<T: Trace + Hash + 'static> Hash for Gc<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl<T: Trace + 'static> AsRef<T> for Gc<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: Trace + 'static> std::borrow::Borrow<T> for Gc<T> {
    fn borrow(&self) -> &T {
        self
    }
}

impl<T: Trace + Default + 'static> Default for Gc<T> {
    fn default() -> Gc<T> {
        Gc::new(T::default())
    }
}

impl<T: Trace + 'static> From<T> for Gc<T> {
    fn from(value: T) -> Gc<T> {
        Gc::new(value)
    }
}
