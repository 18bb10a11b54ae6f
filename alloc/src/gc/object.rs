//! The object header every `Gc` allocation starts with, its type-erased
//! vtable, and the list of all objects the collector snapshots.
//!
//! Layout of one allocation (`GcBox<T>`, `repr(C)`, header first so a
//! `NonNull<Header>` and a `NonNull<GcBox<T>>` are the same address):
//!
//! | field      | written by                          | read by                 |
//! |------------|-------------------------------------|-------------------------|
//! | `handles`  | every `Gc` clone/drop (atomic RMW)  | collector (`roots.rs`)  |
//! | `internal` | collector only                      | collector only          |
//! | `mark`     | barriers and collector (CAS)        | anyone                  |
//! | `vtable`   | `Gc::new`, before publication       | collector               |
//! | `next`     | `push_all` before publication; then the collector alone | collector |
//! | `value`    | `Gc::new`; then only through `GcCell`/`GcMutex` | anyone      |
//!
//! The all-objects list is a Treiber stack: `Gc::new` pushes with a CAS, and
//! the collector takes the whole list with one swap at the start of a cycle
//! (the cycle's snapshot, H0 in DESIGN.md). Objects allocated after the swap
//! go on the fresh list and are not swept by that cycle. The collector pushes
//! the survivors back after sweeping.

use std::alloc::Layout;
use std::ptr::NonNull;

use crate::gc::trace::{Trace, Tracer};
use crate::loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// Type-erased operations on one object type.
pub(crate) struct VTable {
    /// Reports the handles held by the object's value.
    pub(crate) trace: unsafe fn(NonNull<Header>, &mut Tracer),
    /// Drops the object's value in place (not its memory).
    pub(crate) drop_value: unsafe fn(NonNull<Header>),
    /// The layout of the whole `GcBox<T>`.
    pub(crate) layout: Layout,
}

/// The header of every collected object.
pub(crate) struct Header {
    /// How many `Gc` handles point here, wherever they live.
    pub(crate) handles: AtomicUsize,
    /// Handles found inside scanned objects this cycle (collector only).
    pub(crate) internal: AtomicU32,
    /// The epoch this object was last marked in, or `CONDEMNED`.
    pub(crate) mark: AtomicU32,
    pub(crate) vtable: &'static VTable,
    /// The next object on the all-objects list.
    pub(crate) next: AtomicPtr<Header>,
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
        layout: Layout::new::<GcBox<T>>(),
    };

    /// The vtable of `GcBox<T>`.
    pub(crate) fn vtable() -> &'static VTable {
        &Self::VTABLE
    }
}

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

impl Header {
    /// A header for a fresh object with one handle.
    pub(crate) fn new(vtable: &'static VTable) -> Header {
        Header {
            handles: AtomicUsize::new(1),
            internal: AtomicU32::new(0),
            mark: AtomicU32::new(0),
            vtable,
            next: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The address used as the object's identity in queues.
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self as *const Header as usize
    }
}

/// A list of objects linked through `Header::next`, owned by one thread.
pub(crate) struct ObjectList {
    pub(crate) head: *mut Header,
    pub(crate) tail: *mut Header,
    pub(crate) len: usize,
}

impl ObjectList {
    pub(crate) fn new() -> ObjectList {
        ObjectList {
            head: std::ptr::null_mut(),
            tail: std::ptr::null_mut(),
            len: 0,
        }
    }

    /// Appends `object` (owned by the caller's list from now on).
    pub(crate) fn push(&mut self, object: NonNull<Header>) {
        // SAFETY: `object` is live and not on any other list: its owner
        // passed it here after taking it off one (sweep.rs).
        unsafe { object.as_ref() }
            .next
            .store(std::ptr::null_mut(), Ordering::Relaxed);
        if self.tail.is_null() {
            self.head = object.as_ptr();
        } else {
            // SAFETY: `tail` is a live object this list owns.
            unsafe { &*self.tail }
                .next
                .store(object.as_ptr(), Ordering::Relaxed);
        }
        self.tail = object.as_ptr();
        self.len += 1;
    }
}

#[cfg(not(loom))]
mod all {
    use super::{Header, ObjectList};
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicPtr, Ordering};

    /// Every object not currently owned by a running sweep.
    static ALL: AtomicPtr<Header> = AtomicPtr::new(std::ptr::null_mut());

    /// Publishes a fresh object to the collector.
    pub(crate) fn push_all(object: NonNull<Header>) {
        // SAFETY: `object` was just initialised by `Gc::new`; no one else can
        // see it until the CAS below publishes it.
        let header = unsafe { object.as_ref() };
        let mut head = ALL.load(Ordering::Relaxed);
        loop {
            header.next.store(head, Ordering::Relaxed);
            // SeqCst: pairs with `take_all`'s swap; Release part publishes
            // the initialised header and value to the collector.
            match ALL.compare_exchange_weak(
                head,
                object.as_ptr(),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => head = seen,
            }
        }
    }

    /// Takes every published object: the cycle's snapshot.
    pub(crate) fn take_all() -> Vec<NonNull<Header>> {
        // SeqCst: after `Barrier::start_cycle`'s store; Acquire part sees the
        // headers published by `push_all`.
        let mut cursor = ALL.swap(std::ptr::null_mut(), Ordering::SeqCst);
        let mut objects = Vec::new();
        while let Some(object) = NonNull::new(cursor) {
            objects.push(object);
            // SAFETY: objects on the taken list are live and owned by the
            // collector now; `next` was set before publication.
            cursor = unsafe { object.as_ref() }.next.load(Ordering::Relaxed);
        }
        objects
    }

    /// Gives the survivors of a sweep back to the all-objects list.
    pub(crate) fn give_back(list: ObjectList) {
        if list.head.is_null() {
            return;
        }
        let mut head = ALL.load(Ordering::Relaxed);
        loop {
            // SAFETY: `list.tail` is a live object the collector owns until
            // the CAS below publishes the chain.
            unsafe { &*list.tail }.next.store(head, Ordering::Relaxed);
            match ALL.compare_exchange_weak(head, list.head, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => head = seen,
            }
        }
    }
}

#[cfg(not(loom))]
pub(crate) use all::{give_back, push_all, take_all};
