//! The coarse clock behind the task dump's "time in that state".
//!
//! # Purpose
//! Every task carries, in the upper half of its state word, the time it last
//! became runnable or waiting (task/state.rs, "States"). Reading a real clock
//! on every wake and every `Pending` would cost a `clock_gettime` (or an
//! `rdtsc`) per poll; instead the transitions copy a process-wide word that
//! others keep roughly current, so the stamp costs one load and one `or`
//! inside a read-modify-write the transition does anyway.
//!
//! # States
//! `NOW` (`AtomicUsize`): the coarse time already shifted into the state
//! word's stamp field: bits 32..64 hold `elapsed >> UNIT_SHIFT`, the time
//! since `BASE` (the first reading of the process) in units of 2^16 ns
//! (65.5 us), bits 0..32 are zero. The unit count wraps after 2^48 ns, 78
//! hours: a state held longer shows its time modulo that (documented in
//! docs/DIAGNOSTICS.md). On targets without 64-bit words the stamp field
//! does not exist and `NOW` stays 0.
//!
//! # Transitions
//! - [`advance`] stores the current time: called by sysmon on each tick
//!   (20 us to 10 ms apart), by the M that wakes sysmon from its deep sleep
//!   (`SysmonShared::wake`: with every P idle no tick runs, so the first M
//!   to take a P refreshes the clock before it polls), and when a runtime
//!   starts. A plain Relaxed store: writers race only to store nearly
//!   equal times, and a slightly older value wins at worst.
//! - [`stamp`] (Relaxed load) is read by the state transitions.
//! - [`elapsed_since`] turns a task's stamp into a duration with a fresh
//!   `Instant`, rounding up one unit.
//!
//! # Ownership
//! `NOW` is written by the threads named above and read by any thread
//! that changes a task's state. `BASE` is written once.
//!
//! # Orderings
//! Relaxed everywhere: the stamp is a measurement, not a synchronisation.
//! No load pairs with the stores; a stale read makes a stamp older, which
//! only lengthens the time shown (see "Accuracy").
//!
//! # Accuracy
//! The clock lags real time by at most one sysmon tick (10 ms; 2 ms while
//! a P is busy) and the stamp is rounded down to a unit, while the reading
//! rounds up: the time shown is never shorter than the time the task has
//! really been in its state, and longer by at most a tick and a unit.
//! One exception: a task woken from outside the runtime while sysmon is in
//! its deep sleep (every P idle for 20 ms) is stamped with the time sysmon
//! fell asleep; an M takes a P for it at once (`wakep`), so it shows a too
//! long "runnable" only for the moment until that M polls it.
//!
//! # Rejected alternatives
//! - A field of its own in the task cell: 8 bytes per task (a `u32` pads
//!   to 8), which moves the idle task of `benches/idle_task_memory.rs`
//!   into the next malloc size class.
//! - A tick counter with a table from tick to `Instant`: the same lag, a
//!   table to keep; a time in fixed units needs none.
//! - `Instant::now()` (or `rdtsc`) at each transition: 7-20 ns per poll,
//!   against a budget of about 2 instructions (issue 7, docs/BENCHMARKS.md).
//!
//! # Checked by
//! No loom model: the clock is a process-wide static and under `cfg(loom)`
//! it is a constant 0 (the state models then see the same word as before).
//! `tests/diagnostics.rs` checks the times the dump shows against bounds.

use std::time::Duration;

#[cfg(not(loom))]
use gort_netpoll::loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};

#[cfg(not(loom))]
use crate::task::state::STAMP_SHIFT;

/// Nanoseconds per unit of the stamp, as a shift: 2^16 ns = 65.5 us, so 32
/// bits of units span 78 hours.
const UNIT_SHIFT: u32 = 16;

/// Units (67 ms) by which a stamp may run ahead of a reading and still
/// count as "just now" (`elapsed_since`).
const AHEAD_GRACE: u32 = 1024;

/// See "States".
#[cfg(not(loom))]
static NOW: AtomicUsize = AtomicUsize::new(0);

#[cfg(not(loom))]
static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// The coarse time now in units, from a fresh `Instant` (32 bits, wrapping).
#[cfg(not(loom))]
fn units_now() -> u32 {
    let base = BASE.get_or_init(std::time::Instant::now);
    (base.elapsed().as_nanos() >> UNIT_SHIFT) as u32
}

/// Stores the current time into the clock (see "Transitions").
pub(crate) fn advance() {
    #[cfg(not(loom))]
    if STAMP_SHIFT < usize::BITS {
        NOW.store((units_now() as usize) << STAMP_SHIFT, Relaxed);
    }
}

/// The clock, already shifted into the state word's stamp field.
#[inline(always)]
pub(crate) fn stamp() -> usize {
    #[cfg(not(loom))]
    {
        NOW.load(Relaxed)
    }
    #[cfg(loom)]
    {
        0
    }
}

/// Time since a task's stamp (`Snapshot::stamp`), rounded up to a unit.
pub(crate) fn elapsed_since(stamp: u32) -> Duration {
    #[cfg(not(loom))]
    let now = units_now();
    #[cfg(loom)]
    let now = 0u32;
    let units = match now.wrapping_sub(stamp) {
        // A stamp slightly ahead of this reading (an `advance` computed
        // after ours): no time, not a 78-hour wrap.
        ahead if ahead > u32::MAX - AHEAD_GRACE => 0,
        units => u64::from(units),
    };
    Duration::from_nanos((units + 1) << UNIT_SHIFT)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::task::state::STAMP_SHIFT;

    #[test]
    fn a_stamp_reads_back_at_least_the_time_since() {
        advance();
        let t0 = std::time::Instant::now();
        let s = (stamp() >> STAMP_SHIFT) as u32;
        // Only the duration is under test: let some pass.
        std::thread::sleep(Duration::from_millis(30));
        let shown = elapsed_since(s);
        let real = t0.elapsed();
        assert!(shown >= real, "shown {shown:?} < real {real:?}");
        assert!(
            shown <= real + Duration::from_secs(1),
            "shown {shown:?} far above real {real:?}"
        );
    }

    #[test]
    fn a_stamp_just_ahead_reads_as_one_unit_and_an_old_one_wraps() {
        let now = units_now();
        let ahead = elapsed_since(now.wrapping_add(3));
        assert_eq!(ahead, Duration::from_nanos(1 << UNIT_SHIFT));
        // Two hours back, across the wrap of the unit count.
        let back = (2 * 3600 * 1_000_000_000u64) >> UNIT_SHIFT;
        let shown = elapsed_since(now.wrapping_sub(back as u32));
        assert!(shown >= Duration::from_secs(2 * 3600), "{shown:?}");
        assert!(shown < Duration::from_secs(2 * 3600 + 1), "{shown:?}");
    }
}
