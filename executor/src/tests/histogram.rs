//! Bucket layout of the metrics histograms.

use std::time::Duration;

use crate::metrics::histogram::{BUCKETS, Histogram, HistogramSnapshot, bucket_of, lower_bound};

#[test]
fn every_value_falls_between_its_bucket_bounds() {
    let mut values: Vec<u64> = (0..5000).collect();
    for k in 2..64 {
        let p = 1u64 << k;
        values.extend([p - 1, p, p + 1, p + p / 4, p + p / 2 - 1]);
    }
    for v in values {
        let i = bucket_of(v);
        assert!(
            lower_bound(i) <= v,
            "v {v} below bucket {i} ({})",
            lower_bound(i)
        );
        if i + 1 < BUCKETS {
            assert!(
                v < lower_bound(i + 1),
                "v {v} not below bucket {} start",
                i + 1
            );
        }
    }
}

#[test]
fn buckets_are_at_most_a_quarter_wide() {
    for i in 4..BUCKETS - 1 {
        let (lo, hi) = (lower_bound(i), lower_bound(i + 1));
        assert!(hi > lo, "bucket {i} empty");
        assert!(
            (hi - lo) * 4 <= lo,
            "bucket {i} [{lo}, {hi}) wider than 25%"
        );
    }
}

#[test]
fn quantiles_and_mean_of_a_known_sample() {
    let h = Histogram::new();
    for _ in 0..90 {
        h.record(1_000); // 1 us
    }
    for _ in 0..10 {
        h.record(1_000_000); // 1 ms
    }
    let mut s = HistogramSnapshot::default();
    h.snapshot_into(&mut s, 1.0);
    assert_eq!(s.count(), 100);
    assert_eq!(
        s.mean(),
        Some(Duration::from_nanos((90 * 1_000 + 10 * 1_000_000) / 100))
    );
    let p50 = s.quantile(0.5).unwrap();
    assert!(
        p50 > Duration::from_nanos(1_000) && p50 <= Duration::from_nanos(1_250),
        "{p50:?}"
    );
    let p99 = s.quantile(0.99).unwrap();
    assert!(
        p99 > Duration::from_millis(1) && p99 <= Duration::from_micros(1_250),
        "{p99:?}"
    );
    assert_eq!(s.buckets().map(|(_, _, c)| c).sum::<u64>(), 100);
    assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    // Out-of-range input is clamped, not a panic.
    assert_eq!(s.quantile(f64::NAN), s.quantile(1.0));
    assert_eq!(s.quantile(-3.0), s.quantile(0.0));
}

#[test]
fn a_snapshot_scales_ticks_to_nanoseconds() {
    // Values are recorded in clock ticks; at 0.5 ns per tick (a 2 GHz
    // counter), 2,000 ticks are 1 us.
    let h = Histogram::new();
    for _ in 0..10 {
        h.record(2_000);
    }
    let mut s = HistogramSnapshot::default();
    h.snapshot_into(&mut s, 0.5);
    assert_eq!(s.count(), 10);
    assert_eq!(s.mean(), Some(Duration::from_nanos(1_000)));
    let p50 = s.quantile(0.5).unwrap();
    assert!(
        p50 > Duration::from_nanos(1_000) && p50 <= Duration::from_nanos(1_250),
        "{p50:?}"
    );
    let (lo, hi, n) = s.buckets().next().unwrap();
    assert!(lo <= Duration::from_nanos(1_000) && Duration::from_nanos(1_000) < hi);
    assert_eq!(n, 10);
}
