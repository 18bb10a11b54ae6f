//! Log-linear histograms of durations: Go's `timeHistogram`, smaller.
//!
//! # Purpose
//! Schedule latency and poll duration are recorded on the hot path by the M
//! holding a P, and read by anyone. Each P owns one histogram of each kind;
//! a reader merges them ([`HistogramSnapshot`]).
//!
//! # States (bucket layout)
//! Values are clock ticks (clock.rs: TSC ticks, or nanoseconds where the
//! TSC is not usable); a snapshot carries the ticks-to-ns ratio and scales
//! bounds, quantiles and the mean when read. Values below 4 get a bucket each; above, every
//! power of two `[2^k, 2^(k+1))` is split into `SUB` = 4 equal sub-buckets,
//! so a bucket is at most 25% wide relative to its lower bound. Index
//! `4 * (k - 1) + sub` for `k >= 2`; values past 2^41 ns (about 37 minutes)
//! share the last bucket. Plus a running sum for the mean. Scaling keeps
//! the buckets' relative width: 25% of the lower bound in ns as in ticks.
//!
//! # Transitions
//! `record`: the owner adds one to a bucket and the value to the sum with
//! [`Counter::bump`]/[`Counter::add`] (load + store): lock-free and without
//! read-modify-write. `snapshot_into`: any thread, Relaxed loads.
//!
//! # Ownership, Orderings
//! As `counter.rs`: one writer per P's histogram, Relaxed everywhere. A
//! snapshot taken during a record may count the value in its bucket and not
//! yet in the sum, or the reverse; the two are statistics, never compared
//! exactly.
//!
//! # Rejected alternatives
//! - HDR-style 2^-7 precision: 25% is enough to tell 50 us from 5 ms, and
//!   fewer buckets keep each P's histograms in 3 KB.
//! - One shared histogram with `fetch_add`: a contended line per poll.
//!
//! # Checked by
//! `src/tests/histogram.rs` (bucket bounds, quantiles, scaling) and the metrics
//! integration tests.

use std::time::Duration;

use super::counter::Counter;

/// Sub-buckets per power of two (a power of two itself).
const SUB: usize = 4;
const SUB_BITS: u32 = SUB.trailing_zeros();
/// Highest power of two with its own buckets.
const MAX_POW: usize = 41;
/// Number of buckets.
pub(crate) const BUCKETS: usize = SUB * MAX_POW;

/// The bucket of `v` nanoseconds.
pub(crate) fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let k = 63 - v.leading_zeros() as usize;
    let sub = ((v >> (k as u32 - SUB_BITS)) as usize) & (SUB - 1);
    (SUB * (k - 1) + sub).min(BUCKETS - 1)
}

/// The smallest value (ns) that falls in bucket `i`.
pub(crate) fn lower_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let k = i / SUB + 1;
    let sub = (i % SUB) as u64;
    (SUB as u64 + sub) << (k as u32 - SUB_BITS)
}

/// One P's histogram: written by its holder only.
pub(crate) struct Histogram {
    buckets: Box<[Counter]>,
    sum: Counter,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| Counter::default()).collect(),
            sum: Counter::default(),
        }
    }

    /// Records a value of `ticks` (owner only).
    #[inline]
    pub(crate) fn record(&self, ticks: u64) {
        self.buckets[bucket_of(ticks)].bump();
        self.sum.add(ticks);
    }

    /// Adds this histogram's counts into `snap`, whose values are scaled
    /// by `ns_per_tick` when read.
    pub(crate) fn snapshot_into(&self, snap: &mut HistogramSnapshot, ns_per_tick: f64) {
        for (dst, src) in snap.counts.iter_mut().zip(self.buckets.iter()) {
            *dst += src.get();
        }
        snap.sum = snap.sum.wrapping_add(self.sum.get());
        snap.ns_per_tick = ns_per_tick;
    }
}

/// A copy of a duration histogram, merged over every P.
///
/// Buckets are log-linear: four per power of two of nanoseconds, so a
/// bucket's upper bound is at most 25% above its lower bound.
#[derive(Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bucket, in ticks.
    counts: Vec<u64>,
    /// Sum of the samples, in ticks.
    sum: u64,
    ns_per_tick: f64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            counts: vec![0; BUCKETS],
            sum: 0,
            ns_per_tick: 1.0,
        }
    }
}

impl HistogramSnapshot {
    /// Number of recorded samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Mean of the samples, `None` when there are none.
    pub fn mean(&self) -> Option<Duration> {
        let n = self.count();
        (n > 0).then(|| self.duration(self.sum / n))
    }

    /// The upper bound of the bucket holding the `q`-quantile (`q` in
    /// `0.0..=1.0`, clamped), `None` when there are no samples. Like Go's
    /// histograms, the answer is a bucket boundary, not a sample.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.duration(upper_bound(i)));
            }
        }
        Some(self.duration(upper_bound(BUCKETS - 1)))
    }

    fn duration(&self, ticks: u64) -> Duration {
        Duration::from_nanos((ticks as f64 * self.ns_per_tick) as u64)
    }

    /// Non-empty buckets as `(lower bound, upper bound, count)`; a sample
    /// `v` of a bucket has `lower <= v < upper` (the last bucket also holds
    /// everything larger).
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, Duration, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, &c)| {
                (
                    self.duration(lower_bound(i)),
                    self.duration(upper_bound(i)),
                    c,
                )
            })
    }
}

fn upper_bound(i: usize) -> u64 {
    if i + 1 < BUCKETS {
        lower_bound(i + 1)
    } else {
        u64::MAX
    }
}

impl std::fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("count", &self.count())
            .field("mean", &self.mean())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max_bucket", &self.quantile(1.0))
            .finish()
    }
}
