//! The `Trace` trait: how the collector finds the `Gc` handles inside a value.
//!
//! Every type stored in a [`Gc`](crate::Gc) implements [`Trace`]. The
//! collector calls [`Trace::trace`] to enumerate the handles a value holds
//! directly (inside its fields, boxes, vectors, maps, cells), never to follow
//! them: following is the collector's job. A [`Tracer`] receives each handle.
//!
//! `#[derive(Trace)]` writes the impl for structs and enums; `#[trace(skip)]`
//! leaves out a field that holds no `Gc`.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::num::{
    NonZeroI8, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI128, NonZeroIsize, NonZeroU8,
    NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU128, NonZeroUsize,
};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::gc::barrier::Barrier;
use crate::gc::object::Header;

/// A type whose `Gc` handles the collector can enumerate.
///
/// # Safety
///
/// The collector frees an object when it finds no handle to it outside the
/// objects it proved unreachable, so an impl that hides a handle lets it free
/// memory a program still uses. An implementor promises:
///
/// 1. **Every handle is reported.** `trace` calls `Trace::trace` on every
///    field that holds a `Gc` (directly or inside a container, cell or box),
///    so that each `Gc` reachable from `self` without going through another
///    `Gc` is passed to the tracer exactly once per call.
/// 2. **Reporting only reads.** `trace` reads `self` and nothing else: no
///    allocation of `Gc`s, no cloning or dropping of handles, no locks, no
///    panics. It runs on the collector thread, concurrently with shared
///    borrows of the same value on mutator threads.
/// 3. **Handles move only through `GcCell` and `GcMutex`.** After a value is
///    placed in a `Gc`, the set of handles it holds changes only through a
///    [`GcCell`](crate::GcCell) or [`GcMutex`](crate::GcMutex) borrow, whose
///    barriers tell the collector. Types with other interior mutability
///    (`Cell`, `RefCell`, `std::sync::Mutex`, atomics holding pointers) must
///    not hold `Gc`s; this is why no impl exists for them.
/// 4. **Destructors may not rely on other handles.** A `Drop` impl of a traced
///    type may find that a `Gc` it holds points to an object found unreachable
///    in the same collection; dereferencing it then panics (see
///    `alloc/DESIGN.md`, "Destructors"). Moving such a handle out and keeping
///    it leaks that object instead of freeing it.
/// 5. **Dropping and tracing may happen on the collector thread.** The value of
///    an object is dropped by its last handle's drop on that thread, or, when
///    a collection finds it unreachable (cycles), on the collector thread,
///    and `trace` runs there: every part of the type that is not itself `Trace` must be
///    `Send` (an `Rc` or a `MutexGuard` must not be inside). The derive checks
///    this for `#[trace(skip)]` fields at compile time.
///
/// Types that hold no `Gc` at all (plain data) satisfy all five with an empty
/// `trace`.
pub unsafe trait Trace {
    /// Passes every `Gc` handle held directly by `self` to `tracer`.
    fn trace(&self, tracer: &mut Tracer);
}

/// What the collector is doing with the handles a [`Trace::trace`] call
/// reports.
pub(crate) enum TraceMode<'a> {
    /// Counting: each reported handle adds one to its target's `internal`
    /// count for `epoch` (collector thread only; see `roots.rs`).
    Count {
        /// The cycle's epoch.
        epoch: u32,
    },
    /// Marking: each reported target is marked; newly marked ones are
    /// pushed on the collector's local gray stack (see `mark.rs`).
    Mark {
        /// The collector's gray stack.
        stack: &'a mut Vec<NonNull<Header>>,
    },
    /// A mutator's barrier: each reported target is shaded (marked) and
    /// newly marked ones go on the shared gray queue (see `barrier.rs`).
    Shade {
        /// The barrier whose gray queue receives newly marked objects.
        barrier: &'a Barrier,
    },
}

/// Receives the `Gc` handles a [`Trace::trace`] call reports.
///
/// Only the collector and the barriers create tracers; user code passes the
/// tracer it was given on to the fields it holds.
pub struct Tracer<'a> {
    pub(crate) mode: TraceMode<'a>,
    /// Cells and mutexes skipped because a mutator held them mutably.
    pub(crate) opaque: usize,
}

impl<'a> Tracer<'a> {
    pub(crate) fn new(mode: TraceMode<'a>) -> Tracer<'a> {
        Tracer { mode, opaque: 0 }
    }

    /// Reports one handle's target: the single place every mode's action on
    /// a handle lives.
    #[inline]
    pub(crate) fn visit(&mut self, target: NonNull<Header>) {
        // SAFETY: `target` comes from a live `Gc` handle being traced, and a
        // handle keeps its object allocated (handle.rs, "Validity").
        let header = unsafe { target.as_ref() };
        match &mut self.mode {
            TraceMode::Count { epoch } => header.add_internal(*epoch),
            TraceMode::Mark { stack } => {
                if header.try_mark() {
                    stack.push(target);
                }
            }
            TraceMode::Shade { barrier } => {
                if header.try_mark() {
                    barrier.shaded(header.addr());
                }
            }
        }
    }

    /// Whether this tracer belongs to the collector thread (counting or
    /// marking) rather than to a mutator's barrier.
    pub(crate) fn is_collector(&self) -> bool {
        !matches!(self.mode, TraceMode::Shade { .. })
    }
}

impl std::fmt::Debug for Tracer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            TraceMode::Count { .. } => "count",
            TraceMode::Mark { .. } => "mark",
            TraceMode::Shade { .. } => "shade",
        };
        f.debug_struct("Tracer").field("mode", &mode).finish()
    }
}

/// Implements `Trace` with an empty body for types that cannot hold a `Gc`.
macro_rules! trace_leaf {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: the type holds no `Gc`, so reporting nothing reports
            // every handle (obligation 1) and reads nothing (obligation 2).
            unsafe impl Trace for $t {
                #[inline]
                fn trace(&self, _tracer: &mut Tracer) {}
            }
        )*
    };
}

trace_leaf!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    str,
    String,
    Duration,
    Instant,
    PathBuf,
    std::ffi::OsString,
    std::ffi::CString,
    NonZeroU8,
    NonZeroU16,
    NonZeroU32,
    NonZeroU64,
    NonZeroU128,
    NonZeroUsize,
    NonZeroI8,
    NonZeroI16,
    NonZeroI32,
    NonZeroI64,
    NonZeroI128,
    NonZeroIsize,
    std::net::IpAddr,
    std::net::SocketAddr,
);

// SAFETY: `&'static str` points to immutable data that holds no `Gc`.
unsafe impl Trace for &'static str {
    #[inline]
    fn trace(&self, _tracer: &mut Tracer) {}
}

// SAFETY: `PhantomData` holds nothing.
unsafe impl<T: ?Sized> Trace for PhantomData<T> {
    #[inline]
    fn trace(&self, _tracer: &mut Tracer) {}
}

// SAFETY: the box's contents are the only place its handles live; they are
// reported by `T::trace` (obligation 1); reading through `&Box` only reads.
unsafe impl<T: Trace + ?Sized> Trace for Box<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        (**self).trace(tracer);
    }
}

// SAFETY: every element is reported once; iteration only reads.
unsafe impl<T: Trace> Trace for [T] {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        for item in self {
            item.trace(tracer);
        }
    }
}

// SAFETY: every element is reported once; iteration only reads.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.as_slice().trace(tracer);
    }
}

// SAFETY: the inner value, if any, is reported; matching only reads.
unsafe impl<T: Trace> Trace for Option<T> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(value) = self {
            value.trace(tracer);
        }
    }
}

// SAFETY: whichever variant is present is reported; matching only reads.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        match self {
            Ok(value) => value.trace(tracer),
            Err(error) => error.trace(tracer),
        }
    }
}

/// Implements `Trace` for a sequence container iterated by `iter()`.
macro_rules! trace_seq {
    ($($t:ident),*) => {
        $(
            // SAFETY: every element is reported once; iteration only reads.
            unsafe impl<T: Trace> Trace for $t<T> {
                #[inline]
                fn trace(&self, tracer: &mut Tracer) {
                    for item in self.iter() {
                        item.trace(tracer);
                    }
                }
            }
        )*
    };
}

trace_seq!(Vec, VecDeque, LinkedList, BTreeSet, BinaryHeap);

// SAFETY: every element is reported once; iteration only reads.
unsafe impl<T: Trace, S: BuildHasher> Trace for HashSet<T, S> {
    fn trace(&self, tracer: &mut Tracer) {
        for item in self.iter() {
            item.trace(tracer);
        }
    }
}

// SAFETY: every key and value is reported once; iteration only reads.
unsafe impl<K: Trace, V: Trace, S: BuildHasher> Trace for HashMap<K, V, S> {
    fn trace(&self, tracer: &mut Tracer) {
        for (key, value) in self.iter() {
            key.trace(tracer);
            value.trace(tracer);
        }
    }
}

// SAFETY: every key and value is reported once; iteration only reads.
unsafe impl<K: Trace, V: Trace> Trace for BTreeMap<K, V> {
    fn trace(&self, tracer: &mut Tracer) {
        for (key, value) in self.iter() {
            key.trace(tracer);
            value.trace(tracer);
        }
    }
}

/// Implements `Trace` for tuples by reporting each element.
macro_rules! trace_tuple {
    ($(($($name:ident),+)),* $(,)?) => {
        $(
            // SAFETY: every element is reported once; destructuring a shared
            // reference only reads.
            unsafe impl<$($name: Trace),+> Trace for ($($name,)+) {
                #[inline]
                #[allow(non_snake_case)]
                fn trace(&self, tracer: &mut Tracer) {
                    let ($($name,)+) = self;
                    $($name.trace(tracer);)+
                }
            }
        )*
    };
}

trace_tuple!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
);
