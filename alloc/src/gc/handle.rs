//! `Gc<T>`: a counted handle to an object the collector may free.
//!
//! # Validity
//! Every handle counts itself in its object's `handles` word, wherever the
//! handle lives (a stack, a global, another object). An object is freed
//! either by the drop that took its count to zero (no handle and no `Weak`
//! left, none can appear; `free_at_zero`), or by a sweep, when the cycle
//! found it unreachable and no handle to it remained after its destructors
//! ran (sweep.rs). So a handle held by a mutator always points to allocated
//! memory; its value is valid unless the handle was reached from a
//! destructor of the same collection, in which case `Deref` panics
//! (DESIGN.md, "Destructors").
//!
//! # Barriers
//! `clone` takes part in the collector's protocol: it counts the new handle
//! and, while a cycle marks, shades the target (barrier.rs). `drop` gives up
//! the count (with no locked instruction when it holds the only handle); the
//! last drop frees at once only inside a barrier operation that saw no cycle
//! (last_drop.rs). `deref` reads.

use std::alloc::Layout;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use crate::gc::barrier::{BARRIER, PhaseWord, SWEEP, with_barrier};
use crate::gc::last_drop::{Dropped, give_up, may_destroy};
use crate::gc::object::{
    CONDEMNED, COUNT_LIMIT, DEAD_VTABLE, GcBox, Header, STRONG_MASK, WEAK_MASK, WEAK_ONE,
};
use crate::gc::pacer;
use crate::gc::trace::{Trace, Tracer};
use crate::heap_api::{gc_alloc, gc_alloc_dead_batch, gc_free, gc_keep_dead, gc_reuse_dead};
use crate::loom::sync::atomic::{AtomicU64, Ordering, fence};

/// A handle to a garbage-collected `T`, shared by cloning.
///
/// When the last handle to an object is dropped, the object is dropped and
/// freed right there, on the dropping thread, as with `Arc`, unless a
/// collection is running: then the collector frees it. Cycles of `Gc`s are
/// freed by the collector (`collect()`, or a background cycle started by the
/// pacer), which runs their destructors on its own thread. Values are
/// immutable through a `Gc`; put a
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
    /// The value is dropped by the last handle's drop, on that thread, or by
    /// the collector on its own thread (cycles, and objects whose last
    /// handle went during a collection), which Trace obligation 5 makes
    /// sound for every `Trace` type.
    pub fn new(value: T) -> Gc<T> {
        let layout = std::alloc::Layout::new::<GcBox<T>>();
        // A barrier operation: a cycle that starts meanwhile waits until the
        // object is initialised, or the arena allocates it black (barrier.rs,
        // Orderings, "Allocation").
        let (ptr, counted) = with_barrier(|barrier| {
            let phase = barrier.phase_after_store();
            // Bytes the pacer still counts for the slot we take (pacer.rs).
            let mut counted = 0;
            // A dead slot this thread kept under the same phase word: no
            // cycle has looked at it since, and the next one waits for this
            // operation (barrier.rs, "Dead slots").
            // When there is none, take a batch of fresh slots under one span
            // lock and keep the rest as dead slots under this word. While a
            // cycle runs too: a batch taken during MARK or SWEEP is
            // allocated as any allocation then is (black, or white in a span
            // this sweep already swept), so the running cycle never reads or
            // frees those slots.
            let reused = gc_reuse_dead(layout, phase.tag())
                .inspect(|slot| {
                    // SAFETY: a slot from this thread's dead-slot cache
                    // holds a dead header this thread wrote (FreeSlot,
                    // `write_dead_header`); no one else writes it, and no
                    // snapshot reads it before this operation exits.
                    counted = unsafe { slot.cast::<Header>().as_ref() }.dead_bytes();
                })
                .or_else(|| gc_alloc_dead_batch(layout, phase.tag(), write_dead_header));
            let Some(memory) = reused.or_else(|| gc_alloc(layout)) else {
                std::alloc::handle_alloc_error(layout)
            };
            let ptr = memory.cast::<GcBox<T>>();
            let header = Header::new(GcBox::<T>::vtable());
            // SAFETY: `memory` is a fresh slot, sized and aligned for
            // `GcBox<T>` (gc_alloc honours the layout).
            unsafe { ptr.as_ptr().write(GcBox { header, value }) };
            (ptr, counted)
        });
        pacer::note_reuse(layout.size(), counted);
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

    /// A `Weak` handle to this object: it does not keep the object alive,
    /// and `upgrade` returns `None` once the collector found the object
    /// unreachable.
    pub fn downgrade(this: &Gc<T>) -> Weak<T> {
        let old = this.header().handles.fetch_add(WEAK_ONE, Ordering::Relaxed);
        if (old & WEAK_MASK) >> 32 > COUNT_LIMIT {
            std::process::abort();
        }
        Weak {
            ptr: this.ptr,
            _marker: PhantomData,
        }
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
            if old & STRONG_MASK > COUNT_LIMIT {
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
        // Gives up the count: a load and no locked instruction when this is
        // the only handle and no `Weak` exists (last_drop.rs, Ownership).
        let dropped = give_up(&BARRIER, &self.header().handles);
        if dropped != Dropped::NotLast {
            // SAFETY: `give_up` found this the last handle: no other handle
            // or `Weak` exists and none can be made.
            unsafe { free_at_zero(self.ptr, dropped) };
        }
    }
}

/// Drops and frees an object whose last handle is gone, on this thread,
/// unless a cycle may be looking at it (`may_destroy`): then it is left to
/// the sweep (it has no handle, so the next cycle finds it unreachable).
///
/// # Safety
/// `dropped` is what `give_up` returned for the object's last handle (not
/// `NotLast`), and nothing touched the object since.
#[inline(never)]
unsafe fn free_at_zero<T: Trace + 'static>(ptr: NonNull<GcBox<T>>, dropped: Dropped) {
    /// Frees the slot when the value's drop ends, normally or by a panic
    /// (the drop glue drops the remaining fields while unwinding): keeps it
    /// as a dead slot for this thread's next `Gc::new` of its class, or
    /// gives it back to the arena.
    struct FreeSlot(NonNull<Header>, Layout, PhaseWord);
    impl Drop for FreeSlot {
        fn drop(&mut self) {
            let header = self.0.as_ptr();
            // A dead slot's header: condemned with no handle and an empty
            // vtable, which the snapshot passes over and releases if the
            // thread never reuses the slot (barrier.rs, "Dead slots").
            // Its bytes stay counted by the pacer while it is kept (pacer.rs).
            // SAFETY: no handle exists (the caller's was the last, `give_up`)
            // and no collector pass reads the heap until this barrier
            // operation exits (`may_destroy`), so these writes race with no
            // one.
            unsafe {
                (*header).handles.store(CONDEMNED, Ordering::Relaxed);
                (*header)
                    .internal
                    .store(self.1.size() as u64, Ordering::Relaxed);
                (&raw mut (*header).vtable).write(&DEAD_VTABLE);
            }
            if !gc_keep_dead(self.0.cast(), self.1, self.2.tag()) {
                // SAFETY: as above; the value is dropped.
                unsafe { gc_free(self.0.cast()) };
                pacer::note_free(self.1.size());
            }
        }
    }
    with_barrier(|barrier| {
        let handles = || {
            // SAFETY: asked for a unique drop only, whose word still counts
            // the caller's handle: the object stays allocated until this
            // call frees it.
            unsafe { &(*ptr.as_ptr()).header.handles }
        };
        let Some(tag) = may_destroy(barrier, dropped, handles) else {
            return;
        };
        let _free = FreeSlot(ptr.cast(), Layout::new::<GcBox<T>>(), tag);
        // SAFETY: no handle exists (caller), so no one else reads the value;
        // no collector pass reads it (`may_destroy`); this is the only drop.
        // The destructor may clone, allocate and drop: barrier operations
        // nest, so the collector keeps waiting for this one.
        unsafe { std::ptr::drop_in_place(&raw mut (*ptr.as_ptr()).value) };
    });
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

/// Writes a dead slot's header into a fresh slot (heap_api.rs,
/// `gc_alloc_dead_batch`): condemned, no handle, the empty vtable. A
/// snapshot that finds the slot before this thread reuses it releases it.
fn write_dead_header(slot: NonNull<u8>) {
    // SAFETY: `slot` is a fresh slot of a class at least as large and
    // aligned as a header (it serves a `GcBox`), ours alone: the caller runs
    // inside a barrier operation that saw OFF, so no snapshot reads the heap
    // until it exits.
    unsafe {
        slot.cast::<Header>().as_ptr().write(Header {
            handles: AtomicU64::new(CONDEMNED),
            internal: AtomicU64::new(0),
            vtable: &DEAD_VTABLE,
        })
    };
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

/// A handle that does not keep its object alive; see [`Gc::downgrade`].
///
/// It keeps the object's memory (not its value) until it is dropped, so
/// `upgrade` is always safe to call: it returns `None` once a collection
/// found the object unreachable, `Some` before.
pub struct Weak<T: Trace + 'static> {
    ptr: NonNull<GcBox<T>>,
    _marker: PhantomData<T>,
}

// SAFETY: as for `Gc`: `upgrade` hands out a `Gc<T>` on any thread.
unsafe impl<T: Trace + Send + Sync + 'static> Send for Weak<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Trace + Send + Sync + 'static> Sync for Weak<T> {}

impl<T: Trace + 'static> Weak<T> {
    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: a `Weak` keeps its object's memory: the snapshot keeps
        // condemned objects with `Weak`s (roots.rs) and live objects are not
        // freed.
        unsafe { &(*self.ptr.as_ptr()).header }
    }

    /// A `Gc` to the object, or `None` if a collection found it unreachable.
    ///
    /// A barrier operation like `Gc::clone`: it takes a strong count (never
    /// on a condemned object), fences, and reads the phase. While a cycle
    /// marks it shades the object, as a clone would. While the cycle sweeps
    /// it keeps the handle only if marking kept the object (otherwise it is
    /// about to be condemned), so it never returns a handle to an object whose
    /// destructor runs.
    pub fn upgrade(&self) -> Option<Gc<T>> {
        let header = self.header();
        let upgraded = with_barrier(|barrier| {
            let mut current = header.handles.load(Ordering::Acquire);
            loop {
                if current & CONDEMNED != 0 {
                    return false;
                }
                if current & STRONG_MASK > COUNT_LIMIT {
                    std::process::abort();
                }
                match header.handles.compare_exchange_weak(
                    current,
                    current + 1,
                    Ordering::Relaxed,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(seen) => current = seen,
                }
            }
            let phase = barrier.phase_after_store();
            let keep = if phase.marking() {
                if header.try_mark() {
                    barrier.shaded(header.addr());
                }
                true
            } else if phase.phase == SWEEP {
                // Marking is over: an unmarked object is about to be
                // condemned.
                let (span, idx) = header.slot();
                span.is_marked(idx)
            } else {
                true
            };
            // Acquire: `CONDEMNED` is set before the sweep's Release fence
            // (which precedes any mark it sets on a condemned object) and
            // before the collector's later phase stores; whichever of those
            // this thread read above, it now sees `CONDEMNED` if it was set.
            fence(Ordering::Acquire);
            if !keep || header.is_condemned() {
                header.handles.fetch_sub(1, Ordering::Release);
                return false;
            }
            true
        });
        upgraded.then(|| Gc {
            ptr: self.ptr,
            _marker: PhantomData,
        })
    }
}

impl<T: Trace + 'static> Clone for Weak<T> {
    fn clone(&self) -> Weak<T> {
        let old = self.header().handles.fetch_add(WEAK_ONE, Ordering::Relaxed);
        if (old & WEAK_MASK) >> 32 > COUNT_LIMIT {
            std::process::abort();
        }
        Weak {
            ptr: self.ptr,
            _marker: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Drop for Weak<T> {
    fn drop(&mut self) {
        self.header().handles.fetch_sub(WEAK_ONE, Ordering::Release);
    }
}

impl<T: Trace + 'static> fmt::Debug for Weak<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(Weak)")
    }
}

// SAFETY: a `Weak` does not keep its object alive, so it reports nothing
// (obligation 1 concerns `Gc` handles); reporting nothing only reads.
unsafe impl<T: Trace + 'static> Trace for Weak<T> {
    #[inline]
    fn trace(&self, _tracer: &mut Tracer) {}
}
