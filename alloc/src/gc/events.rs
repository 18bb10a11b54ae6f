//! GC phase events: a hook the collector calls at its phase boundaries, so
//! a layer above (the facade's execution trace) can show when it collected.
//!
//! # Purpose
//! gort-alloc stands alone: it cannot call the executor's trace, and the
//! executor cannot depend on it. The collector reports each phase's begin
//! and end, and each mutator handshake, to one function installed with
//! [`set_phase_hook`]; the `gort` facade installs one that writes the
//! events into the execution trace's "GC" track.
//!
//! # States
//! `HOOK` (`AtomicPtr<()>`): null (no hook) or a `fn(GcEvent)` cast to a
//! pointer. Any thread may replace it at any time.
//!
//! # Transitions
//! - [`set_phase_hook`]: swap (AcqRel) the pointer; returns the old hook.
//! - [`emit`] (the collector, at each boundary of `run_cycle`): one load;
//!   nothing else while no hook is set.
//!
//! # Ownership
//! The hook runs on the thread that runs the cycle, between phases: the
//! collector thread for paced cycles, the caller for `collect()` (which
//! runs its cycle itself) or when the collector thread could not start. No
//! lock of the collector is held and no mutator is stopped, so a slow hook
//! delays the cycle but cannot block a mutator. It must not call
//! `collect()` (on the caller's thread that returns at once, on the
//! collector's it would wait for the cycle it is part of), nor allocate
//! `Gc` objects.
//!
//! # Orderings
//! `emit`'s load is Acquire and pairs with the Release half of the swap in
//! `set_phase_hook`: a function pointer has no data behind it to publish,
//! but Acquire keeps the pair honest for any hook that reads statics its
//! installer wrote before installing it. On x86 the load is a plain `mov`.
//!
//! # Rejected alternatives
//! - A `Box<dyn Fn>` behind a lock: a lock per event for a state that
//!   changes once per process.
//! - `OnceLock<fn(GcEvent)>`: cannot be replaced or cleared (tests install
//!   their own).
//! - Recording into a buffer of gort-alloc's own for the trace to pull:
//!   a second buffer protocol for a few events per cycle.
//!
//! # Checked by
//! `tests/gc_trace.rs` of the facade (the phase slices of a `collect()`
//! appear in order in a trace file); the unit test below (install, replace,
//! remove).

use std::ptr;

use crate::loom::sync::atomic::{AtomicPtr, Ordering::AcqRel, Ordering::Acquire};

/// A phase of a collection cycle (`collector.rs`, `run_cycle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcPhase {
    /// The whole cycle; the phases below nest inside it.
    Cycle,
    /// Steps 1-3: barriers on, the snapshot of the heap, handle counting
    /// and the roots.
    Count,
    /// Step 4: marking from the roots and the mutators' shades, mark
    /// termination included.
    Mark,
    /// Steps 5-6: barriers off, destructors and freeing.
    Sweep,
    /// A wait for every mutator inside a barrier operation to leave it
    /// (`Barrier::wait_for_mutators`); reported as an instant, after it.
    Handshake,
}

impl GcPhase {
    /// A short lower-case name (`"mark"`), used as the trace slice's name.
    pub fn name(self) -> &'static str {
        match self {
            GcPhase::Cycle => "GC cycle",
            GcPhase::Count => "count",
            GcPhase::Mark => "mark",
            GcPhase::Sweep => "sweep",
            GcPhase::Handshake => "handshake",
        }
    }
}

/// Whether an event opens a phase, closes it, or is a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseEdge {
    /// The phase starts.
    Begin,
    /// The phase ends.
    End,
    /// A moment (the handshakes).
    Instant,
}

/// One event given to the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcEvent {
    /// Which phase.
    pub phase: GcPhase,
    /// Begin, end or instant.
    pub edge: PhaseEdge,
    /// The cycle's number (the first cycle of the process is 1).
    pub cycle: u64,
}

/// The hook, see "States".
static HOOK: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

/// Installs `hook` (or removes it with `None`) and returns the previous one.
///
/// The hook is called on the thread running the cycle (the collector
/// thread, or the caller of `collect()`) at each phase boundary of every
/// cycle; it must be quick and must not call [`collect`](crate::collect).
pub fn set_phase_hook(hook: Option<fn(GcEvent)>) -> Option<fn(GcEvent)> {
    let new = hook.map_or(ptr::null_mut(), |f| f as *mut ());
    let old = HOOK.swap(new, AcqRel);
    // SAFETY: HOOK only ever holds null or a `fn(GcEvent)` cast to a
    // pointer (this function is its only writer), and null was checked.
    (!old.is_null()).then(|| unsafe { std::mem::transmute::<*mut (), fn(GcEvent)>(old) })
}

/// Reports one event to the hook, if any (the collector's call sites).
#[inline]
pub(crate) fn emit(phase: GcPhase, edge: PhaseEdge, cycle: u64) {
    let hook = HOOK.load(Acquire);
    if !hook.is_null() {
        // SAFETY: as in `set_phase_hook`: a non-null HOOK is a
        // `fn(GcEvent)` stored by `set_phase_hook`.
        let hook = unsafe { std::mem::transmute::<*mut (), fn(GcEvent)>(hook) };
        hook(GcEvent { phase, edge, cycle });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<GcEvent>> = Mutex::new(Vec::new());

    fn record(ev: GcEvent) {
        SEEN.lock().unwrap().push(ev);
    }

    fn other(_: GcEvent) {}

    // No `collect()` here: a collector thread started in this binary would
    // run cycles under the tests that drive the GC phase by hand
    // (tests/heap_api.rs). The facade's tests/gc_trace.rs checks a real
    // cycle's events in order.
    #[test]
    fn the_hook_gets_what_is_emitted_and_can_be_replaced_and_removed() {
        let _serial = crate::tests::GC_TEST_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let old = set_phase_hook(Some(record));
        let ev = |phase, cycle| GcEvent {
            phase,
            edge: PhaseEdge::Begin,
            cycle,
        };
        emit(GcPhase::Mark, PhaseEdge::Begin, 1);
        // The hook handed back is `record`: calling it records.
        let back = set_phase_hook(Some(other)).expect("record was installed");
        back(ev(GcPhase::Cycle, 2));
        emit(GcPhase::Mark, PhaseEdge::Begin, 3); // to `other`
        assert!(set_phase_hook(None).is_some(), "other was installed");
        emit(GcPhase::Sweep, PhaseEdge::Begin, 4); // to nobody
        set_phase_hook(old);
        let seen = std::mem::take(&mut *SEEN.lock().unwrap());
        assert_eq!(seen, [ev(GcPhase::Mark, 1), ev(GcPhase::Cycle, 2)]);
    }
}
