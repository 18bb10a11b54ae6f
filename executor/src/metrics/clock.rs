//! The diagnostics clock: CPU timestamp-counter ticks, converted to
//! nanoseconds away from the hot path.
//!
//! # Purpose
//! A sampled poll reads the clock twice, a traced poll twice per poll. A
//! `clock_gettime` through the vDSO costs about 20 ns, half a short gort
//! poll; `rdtsc` costs about 7. So the probes record raw ticks ([`ticks`])
//! and the readers convert: histograms hold ticks and are scaled when read
//! (`HistogramSnapshot`), the trace writer converts each record with
//! [`Calibration`].
//!
//! # Which counter
//! On x86-64, the TSC when it is invariant (CPUID 0x8000_0007, EDX bit 8:
//! constant rate across P-states and C-states) and, on Linux, the kernel
//! uses it as its clocksource (the kernel checks that the cores' counters
//! agree and switches away when they do not). Everywhere else, nanoseconds
//! of `Instant` since the process's first reading: one tick is one ns.
//!
//! # Calibration
//! `(ticks, Instant)` is read once at first use (`ORIGIN`); the ratio is
//! taken between that pair and a pair read when asked ([`ns_per_tick`]),
//! waiting a millisecond when the two are closer than that so a ratio is
//! never taken over a few microseconds.
//!
//! Under `cfg(loom)` the counter is `Instant` (no inline assembly to model).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The first reading: ticks and the time they were read.
struct Origin {
    ticks: u64,
    at: Instant,
    tsc: bool,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

fn origin() -> &'static Origin {
    ORIGIN.get_or_init(|| {
        let tsc = tsc_usable();
        let at = Instant::now();
        let ticks = if tsc { rdtsc() } else { 0 };
        Origin { ticks, at, tsc }
    })
}

/// Whether the TSC ticks at a constant rate the kernel trusts.
fn tsc_usable() -> bool {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        // CPUID leaf 0x8000_0000 reports the highest extended leaf,
        // checked before reading 0x8000_0007.
        use core::arch::x86_64::__cpuid;
        let invariant =
            __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0;
        let trusted = !cfg!(target_os = "linux")
            || std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|s| s.trim() == "tsc");
        invariant && trusted
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    {
        false
    }
}

#[inline(always)]
fn rdtsc() -> u64 {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        // SAFETY: RDTSC has no memory effects and exists on every x86-64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    {
        0
    }
}

/// The current time in ticks (see the module doc for the unit).
#[inline]
pub(crate) fn ticks() -> u64 {
    let o = origin();
    if o.tsc {
        rdtsc()
    } else {
        o.at.elapsed().as_nanos() as u64
    }
}

/// Nanoseconds per tick, measured since the first reading.
pub(crate) fn ns_per_tick() -> f64 {
    Calibration::now().ns_per_tick
}

/// Ticks converted to nanoseconds since the process's first reading.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(loom, allow(dead_code))] // the trace writer's, absent under loom
pub(crate) struct Calibration {
    origin_ticks: u64,
    ns_per_tick: f64,
    /// `ns_per_tick` in 32.32 fixed point (the trace writer converts
    /// millions of records; integer multiplies keep that cheap).
    mult: u64,
}

#[cfg_attr(loom, allow(dead_code))]
impl Calibration {
    /// The ratio between the first reading and now (at least 1 ms apart).
    pub(crate) fn now() -> Calibration {
        let o = origin();
        if !o.tsc {
            return Calibration {
                origin_ticks: 0,
                ns_per_tick: 1.0,
                mult: 1 << 32,
            };
        }
        let min = Duration::from_millis(1);
        let mut elapsed = o.at.elapsed();
        if elapsed < min {
            std::thread::sleep(min - elapsed);
        }
        let t = rdtsc();
        elapsed = o.at.elapsed();
        let dt = t.wrapping_sub(o.ticks).max(1);
        let ns_per_tick = elapsed.as_nanos() as f64 / dt as f64;
        Calibration {
            origin_ticks: o.ticks,
            ns_per_tick,
            mult: (ns_per_tick * (1u64 << 32) as f64) as u64,
        }
    }

    /// `ticks` as nanoseconds since the first reading.
    pub(crate) fn ns(&self, ticks: u64) -> u64 {
        let t = u128::from(ticks.saturating_sub(self.origin_ticks));
        ((t * u128::from(self.mult)) >> 32) as u64
    }

    /// A duration of `ticks` in nanoseconds.
    pub(crate) fn dur_ns(&self, ticks: u64) -> u64 {
        (ticks as f64 * self.ns_per_tick) as u64
    }
}
