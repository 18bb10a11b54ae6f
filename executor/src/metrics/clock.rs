//! The diagnostics clock: nanoseconds since the first use in this process,
//! with a coarse copy that costs one Relaxed load to read.
//!
//! Every precise read ([`now`]) also refreshes the coarse copy, so
//! [`coarse`] lags the true time by at most the gap between two precise reads
//! on any thread: a few microseconds on a busy runtime (every 8th poll reads
//! the clock), longer when the runtime idles. The coarse clock only stamps
//! "in this state since" for the task dump, never a histogram sample.
//!
//! The coarse copy is a plain statistic (Relaxed, may step back by a few
//! microseconds when two threads race to store it). Under `cfg(loom)` it is
//! not kept (loom atomics cannot be statics) and `coarse` reads the clock.

use std::sync::OnceLock;
use std::time::Instant;

#[cfg(not(loom))]
use gort_netpoll::loom::sync::atomic::{AtomicU64, Ordering::Relaxed};

static EPOCH: OnceLock<Instant> = OnceLock::new();

#[cfg(not(loom))]
static COARSE_NS: AtomicU64 = AtomicU64::new(0);

/// The process-wide origin of diagnostic timestamps.
fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`] (a `clock_gettime` through the vDSO).
#[inline]
pub(crate) fn now() -> u64 {
    let ns = epoch().elapsed().as_nanos() as u64;
    #[cfg(not(loom))]
    COARSE_NS.store(ns, Relaxed);
    ns
}

/// The last precise reading of any thread (see the module doc).
#[inline]
pub(crate) fn coarse() -> u64 {
    #[cfg(not(loom))]
    {
        COARSE_NS.load(Relaxed)
    }
    #[cfg(loom)]
    {
        now()
    }
}
