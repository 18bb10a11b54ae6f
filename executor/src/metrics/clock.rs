//! The diagnostics clock: nanoseconds since the first use in this process,
//! with a coarse copy that costs one Relaxed load to read.
//!
//! Every precise read ([`now`]) also refreshes the coarse copy when it lags
//! by more than 50 us, so [`coarse`] lags the true time by 50 us plus the gap
//! between two precise reads on any thread: well under a millisecond on a
//! busy runtime, longer when the runtime idles (an M reads the clock when
//! it parks and unparks). The coarse clock only stamps
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

/// The coarse clock is stored only when it lags by more than this, so that
/// the Ms, which read it on every poll, find its line in their caches
/// (measured: storing on every precise read made yield_many 80% slower on
/// two cores, the line bouncing between them).
#[cfg(not(loom))]
const COARSE_GRAIN_NS: u64 = 50_000;

/// Nanoseconds since [`epoch`] (a `clock_gettime` through the vDSO).
#[inline]
pub(crate) fn now() -> u64 {
    let ns = epoch().elapsed().as_nanos() as u64;
    #[cfg(not(loom))]
    if ns > COARSE_NS.load(Relaxed) + COARSE_GRAIN_NS {
        COARSE_NS.store(ns, Relaxed);
    }
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
