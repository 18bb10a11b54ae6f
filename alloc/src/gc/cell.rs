//! `GcCell<T>` and `GcMutex<T>`: interior mutability the collector can see.
//!
//! A `Gc` handle that changes place after its object was built moves through
//! one of these (Trace obligation 3). Taking one mutably is a barrier
//! operation: while a cycle marks, the handles the value holds at that moment
//! are shaded before the mutator can move them (a Yuasa deletion barrier;
//! DESIGN.md explains why release needs no insertion barrier). The collector
//! reads a cell's handles under the borrow flag (borrow.rs); a cell held
//! mutably is skipped, which DESIGN.md, "Soundness", shows is safe.
//!
//! A mutator that takes a cell while the collector reads it waits for that one
//! read; the wait is recorded as a pause in the GC statistics.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::gc::barrier::{BARRIER, Barrier, with_barrier};
use crate::gc::borrow::{BorrowFlag, Conflict, Parking};
use crate::gc::stats;
use crate::gc::trace::{Trace, TraceMode, Tracer};
use crate::loom::cell::UnsafeCell;

/// A borrow of a cell was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BorrowError {
    exclusive: bool,
}

impl fmt::Display for BorrowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exclusive {
            f.write_str("GcCell is already mutably borrowed")
        } else {
            f.write_str("GcCell is already borrowed")
        }
    }
}

impl std::error::Error for BorrowError {}

impl From<Conflict> for BorrowError {
    fn from(conflict: Conflict) -> BorrowError {
        BorrowError {
            exclusive: conflict == Conflict::Writing,
        }
    }
}

/// How a cell's exclusive borrow takes its flag (borrow.rs).
#[derive(Clone, Copy)]
enum Access {
    /// `GcCell`: one mutator thread at a time; no locked instruction while
    /// no cycle runs (`acquire_write_unshared`).
    Unshared,
    /// `GcMutex`: any thread; one CAS (`acquire_write_shared`).
    Shared,
}

/// Takes `flag` exclusively and runs the deletion barrier over `value`: the
/// shared step of `GcCell::try_borrow_mut` and `GcMutex::lock`.
#[inline]
fn acquire_with_barrier<T: Trace + ?Sized>(
    flag: &BorrowFlag,
    value: &UnsafeCell<T>,
    access: Access,
) -> Result<(), Conflict> {
    let waited = with_barrier(|barrier| {
        let (phase, waited) = match access {
            Access::Unshared => flag.acquire_write_unshared(barrier)?,
            Access::Shared => flag.acquire_write_shared(barrier)?,
        };
        if phase.marking() {
            let mut tracer = Tracer::new(TraceMode::Shade { barrier });
            // SAFETY: we hold WRITING (acquired above), so no one else
            // reads or writes the value; tracing only reads it.
            value.with(|ptr| unsafe { &*ptr }.trace(&mut tracer));
        }
        Ok(waited)
    })?;
    if let Some(waited) = waited {
        stats::record_pause(waited);
    }
    Ok(())
}

/// Runs `tracer` over a cell's value if the borrow flag allows it.
fn trace_guarded<T: Trace + ?Sized>(flag: &BorrowFlag, value: &UnsafeCell<T>, tracer: &mut Tracer) {
    if tracer.is_collector() {
        let barrier: &Barrier = &BARRIER;
        if flag.collector_try_read(barrier) {
            // SAFETY: the flag carries the open read's id and WRITING is
            // not set, so only readers share the value until
            // `end_cell_read` (borrow.rs); tracing only reads.
            value.with(|ptr| unsafe { &*ptr }.trace(tracer));
            barrier.end_cell_read();
        } else {
            tracer.opaque += 1;
        }
    } else if flag.try_read().is_ok() {
        // A barrier tracing a cell nested in a value its thread holds
        // exclusively.
        // SAFETY: we hold a shared borrow (try_read above); tracing only reads.
        value.with(|ptr| unsafe { &*ptr }.trace(tracer));
        flag.release_read();
    }
}

/// A mutable memory location for one thread, like `RefCell`, whose `Gc`
/// handles the collector can follow.
pub struct GcCell<T: ?Sized> {
    flag: BorrowFlag,
    value: UnsafeCell<T>,
}

/// A shared borrow of a [`GcCell`].
pub struct GcRef<'a, T: ?Sized> {
    cell: &'a GcCell<T>,
}

/// An exclusive borrow of a [`GcCell`].
pub struct GcRefMut<'a, T: ?Sized> {
    cell: &'a GcCell<T>,
    // Not Send: the borrow belongs to the cell's thread.
    _not_send: PhantomData<*mut ()>,
}

impl<T> GcCell<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> GcCell<T> {
        GcCell {
            flag: BorrowFlag::new(),
            value: UnsafeCell::new(value),
        }
    }
}

impl<T: Trace + ?Sized> GcCell<T> {
    /// Borrows the value; panics if it is mutably borrowed (see `try_borrow`).
    #[track_caller]
    #[inline]
    pub fn borrow(&self) -> GcRef<'_, T> {
        match self.try_borrow() {
            Ok(guard) => guard,
            Err(error) => panic!("{error}"),
        }
    }

    /// Borrows the value, or says why not.
    #[inline]
    pub fn try_borrow(&self) -> Result<GcRef<'_, T>, BorrowError> {
        self.flag.try_read()?;
        Ok(GcRef { cell: self })
    }

    /// Borrows the value mutably; panics if it is borrowed (see
    /// `try_borrow_mut`).
    #[track_caller]
    #[inline]
    pub fn borrow_mut(&self) -> GcRefMut<'_, T> {
        match self.try_borrow_mut() {
            Ok(guard) => guard,
            Err(error) => panic!("{error}"),
        }
    }

    /// Borrows the value mutably, or says why not. While a cycle marks, the
    /// handles the value holds now are shaded first (deletion barrier).
    #[inline]
    pub fn try_borrow_mut(&self) -> Result<GcRefMut<'_, T>, BorrowError> {
        acquire_with_barrier(&self.flag, &self.value, Access::Unshared)?;
        Ok(GcRefMut {
            cell: self,
            _not_send: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for GcRef<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: we hold a shared borrow (try_read in `try_borrow`), which
        // excludes WRITING until our drop.
        self.cell.value.with(|ptr| unsafe { &*ptr })
    }
}

impl<T: ?Sized> Drop for GcRef<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.cell.flag.release_read();
    }
}

impl<T: ?Sized> Deref for GcRefMut<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: we hold WRITING (acquire_with_barrier in `try_borrow_mut`).
        self.cell.value.with(|ptr| unsafe { &*ptr })
    }
}

impl<T: ?Sized> DerefMut for GcRefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold WRITING exclusively, and `&mut self` makes this the
        // only live reference derived from the guard.
        self.cell.value.with_mut(|ptr| unsafe { &mut *ptr })
    }
}

impl<T: ?Sized> Drop for GcRefMut<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.cell.flag.release_write();
    }
}

// SAFETY: the collector reads the value only under the borrow flag, and a
// nested barrier only under a shared borrow; `T::trace` reports the handles
// (obligation 1) and only reads (obligation 2).
unsafe impl<T: Trace + ?Sized> Trace for GcCell<T> {
    fn trace(&self, tracer: &mut Tracer) {
        trace_guarded(&self.flag, &self.value, tracer);
    }
}

impl<T: Trace + fmt::Debug + ?Sized> fmt::Debug for GcCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_borrow() {
            Ok(value) => f.debug_tuple("GcCell").field(&&*value).finish(),
            Err(_) => f.write_str("GcCell(<mutably borrowed>)"),
        }
    }
}

impl<T: Default> Default for GcCell<T> {
    fn default() -> GcCell<T> {
        GcCell::new(T::default())
    }
}

/// A mutual-exclusion lock for many threads whose `Gc` handles the collector
/// can follow. `lock` returns the guard directly: a panic while locked does
/// not poison it. The borrow flag is the lock (one CAS to lock, one swap to
/// unlock); a thread that finds it held sleeps on `parking` (borrow.rs).
pub struct GcMutex<T: ?Sized> {
    flag: BorrowFlag,
    parking: Parking,
    value: UnsafeCell<T>,
}

// SAFETY: like `std::sync::Mutex`: the value is reached only by the thread
// that holds the flag's WRITING bit (and the collector, which only reads
// handles under the flag), so sharing the mutex moves `T` between threads,
// which `T: Send` allows.
unsafe impl<T: ?Sized + Send> Sync for GcMutex<T> {}
// SAFETY: the mutex owns its `T`; sending it sends the `T`.
unsafe impl<T: ?Sized + Send> Send for GcMutex<T> {}

/// The guard of a locked [`GcMutex`].
pub struct GcMutexGuard<'a, T: ?Sized> {
    mutex: &'a GcMutex<T>,
    // Not Send, like `std::sync::MutexGuard`.
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: a shared guard only gives `&T`, like `std::sync::MutexGuard`.
unsafe impl<T: ?Sized + Sync> Sync for GcMutexGuard<'_, T> {}

impl<T> GcMutex<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> GcMutex<T> {
        GcMutex {
            flag: BorrowFlag::new(),
            parking: Parking::new(),
            value: UnsafeCell::new(value),
        }
    }
}

impl<T: Trace + ?Sized> GcMutex<T> {
    /// Locks, blocking while another thread holds the lock. While a cycle
    /// marks, the handles the value holds now are shaded first.
    #[inline]
    pub fn lock(&self) -> GcMutexGuard<'_, T> {
        loop {
            match self.try_lock_flag() {
                Ok(guard) => return guard,
                // Another thread holds it: sleep outside any barrier
                // operation (the holder may run a collection before it
                // lets go, and the collection waits for operations).
                Err(Conflict::Writing) => self.flag.park(&self.parking),
                // Only a barrier tracing this mutex nested in a value its
                // thread holds exclusively reads it, for a moment.
                Err(Conflict::Reading) => crate::loom::thread::yield_now(),
            }
        }
    }

    /// Locks if no other thread holds the lock.
    pub fn try_lock(&self) -> Option<GcMutexGuard<'_, T>> {
        loop {
            match self.try_lock_flag() {
                Ok(guard) => return Some(guard),
                Err(Conflict::Writing) => return None,
                Err(Conflict::Reading) => crate::loom::thread::yield_now(),
            }
        }
    }

    fn try_lock_flag(&self) -> Result<GcMutexGuard<'_, T>, Conflict> {
        acquire_with_barrier(&self.flag, &self.value, Access::Shared)?;
        Ok(GcMutexGuard {
            mutex: self,
            _not_send: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for GcMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: we hold WRITING (try_lock_flag).
        self.mutex.value.with(|ptr| unsafe { &*ptr })
    }
}

impl<T: ?Sized> DerefMut for GcMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold WRITING; `&mut self` makes this the only live
        // reference derived from the guard.
        self.mutex.value.with_mut(|ptr| unsafe { &mut *ptr })
    }
}

impl<T: ?Sized> Drop for GcMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.flag.release_write_shared(&self.mutex.parking);
    }
}

// SAFETY: as for `GcCell`: reads only under the flag, reports every handle of
// the value, only reads.
unsafe impl<T: Trace + ?Sized> Trace for GcMutex<T> {
    fn trace(&self, tracer: &mut Tracer) {
        trace_guarded(&self.flag, &self.value, tracer);
    }
}

impl<T: fmt::Debug + ?Sized> fmt::Debug for GcMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcMutex").finish_non_exhaustive()
    }
}

impl<T: Default> Default for GcMutex<T> {
    fn default() -> GcMutex<T> {
        GcMutex::new(T::default())
    }
}
