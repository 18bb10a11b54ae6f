//! Statistic cells: counters that never synchronize anything.
//!
//! # Purpose
//! Statistics live in per-P copies that readers sum, so Ms never write one
//! shared cache line. Histogram buckets have one writer, the M holding the
//! P, which bumps them with a Relaxed load and a Relaxed store (no
//! read-modify-write); counters credited in batches use `fetch_add`.
//!
//! # States
//! A `u64` that only grows.
//!
//! # Transitions
//! - `bump`/`add`: the owner only (the M holding the P); load + store.
//! - `add_shared`: any thread (`fetch_add`), for the runtime's one shared
//!   slot that collects events from threads holding no P, and for the
//!   probe's credits to a P's counters (every 64th poll, or a steal): after
//!   sysmon hands a P off, its old M may credit it while the new M does.
//!
//! # Ownership
//! One writer per cell (the P's holder; P ownership moves between Ms through
//! the idle lists' lock, which orders one holder's stores before the next
//! holder's loads); any thread reads.
//!
//! # Orderings
//! All Relaxed: no other memory is published through these cells, and a
//! reader only needs each value to be one that was stored (no tearing).
//!
//! # Rejected alternatives
//! - One `fetch_add` counter per runtime: a shared line written by every M
//!   on every poll.
//! - Plain `u64` fields read racily: a data race is undefined behaviour.
//!
//! # Checked by
//! Nothing to model: no protocol depends on these values. Under `cfg(loom)`
//! the cells compile to no-ops, so the scheduler's models do not explore
//! statistics.

#[cfg(not(loom))]
use gort_netpoll::loom::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A statistic written by one owner, read by anyone.
#[derive(Default)]
pub(crate) struct Counter {
    #[cfg(not(loom))]
    v: AtomicU64,
}

#[cfg(not(loom))]
impl Counter {
    /// Adds one (owner only).
    #[inline]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    /// Adds `n` (owner only): a load and a store, no read-modify-write.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.v.store(self.v.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Adds `n` from any thread.
    #[inline]
    pub(crate) fn add_shared(&self, n: u64) {
        self.v.fetch_add(n, Relaxed);
    }

    /// The current value.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.v.load(Relaxed)
    }
}

#[cfg(loom)]
impl Counter {
    pub(crate) fn bump(&self) {}
    pub(crate) fn add(&self, _n: u64) {}
    pub(crate) fn add_shared(&self, _n: u64) {}
    pub(crate) fn get(&self) -> u64 {
        0
    }
}
