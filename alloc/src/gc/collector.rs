//! The background collector thread and `collect()`.
//!
//! One thread (`gort-gc`), started at the first request, runs background
//! cycles, one at a time. A cycle, in order (`run_cycle`):
//! 1. drop stale gray entries; the arena allocates black
//!    (`heap_api::gc_begin_mark`); barriers on (`Barrier::start_cycle`); wait
//!    for mutators inside a barrier operation, allocations included;
//! 2. take the snapshot of every allocated, unmarked object and count the
//!    handles found inside it (`roots::snapshot_and_count`);
//! 3. mark the objects with handles left over, the roots
//!    (`roots::find_roots`);
//! 4. mark from them and from mutators' shades, then terminate with the
//!    handshake (`mark::mark`);
//! 5. barriers off and a second wait for mutators; the arena's sweepgen
//!    advances (`gc_begin_sweep`); condemn, destroy and free what is
//!    unmarked (`sweep::sweep`, the arena's bitmap swap);
//! 6. tell the pacer what is live; count the cycle; wake `collect()` callers.
//!
//! Requests are cycle numbers under one mutex: `collect()` asks for a cycle
//! that starts after its call and waits for it; the pacer asks without
//! waiting. The mutex is taken only to request and to finish cycles, never on
//! clone, drop or deref.
//!
//! `collect()` runs the cycle itself, on the calling thread, when none is
//! running: it would only block until the collector thread ran it, and the
//! two wake-ups that costs are each a scheduler delay on a busy machine (the
//! destructors of what it finds then run on the caller, which Trace
//! obligation 5 allows for any thread). Other mutators keep running beside
//! it as beside the collector thread. `running` makes the two exclusive: the
//! collector thread waits while a caller runs a cycle, and a caller that finds
//! one running waits for it to end, then runs the next one itself.

use std::cell::Cell;
use std::time::Instant;

use crate::gc::barrier::{BARRIER, OFF, PhaseWord, SWEEP, inside_operation};
use crate::gc::events::{GcPhase::*, PhaseEdge::*, emit};
use crate::gc::stats::{self, CycleReport};
use crate::gc::{mark, pacer, roots, sweep};
use crate::heap_api;
use crate::loom::sync::{Condvar, LazyLock, Mutex};

#[derive(Default)]
struct State {
    /// The highest cycle number anyone asked for.
    requested: u64,
    /// Cycles finished.
    completed: u64,
    /// Whether a cycle is running now.
    running: bool,
    /// Whether the collector thread was started.
    started: bool,
    /// The cycles' buffers, taken by whoever runs a cycle (`running`).
    buffers: Option<Buffers>,
}

struct Control {
    state: Mutex<State>,
    /// Signalled on a new request (the collector waits) and on a finished
    /// cycle (`collect()` callers wait).
    changed: Condvar,
}

static CONTROL: LazyLock<Control> = LazyLock::new(|| Control {
    state: Mutex::new(State::default()),
    changed: Condvar::new(),
});

thread_local! {
    static ON_COLLECTOR: Cell<bool> = const { Cell::new(false) };
}

/// Runs a full collection and returns when it has finished, the destructors of
/// everything it found unreachable included.
///
/// The cycle starts after this call, so every object unreachable at the call
/// is freed by it (unless a destructor keeps a handle). The calling thread
/// runs the cycle itself (after waiting for a background cycle that is
/// running, if any), and the destructors it runs, while other threads keep
/// running. Called from a
/// destructor (run by a cycle, or by the last drop of a handle, which a
/// cycle's start waits for) it returns at once instead of waiting for
/// itself.
pub fn collect() {
    if ON_COLLECTOR.with(Cell::get) || inside_operation() {
        return;
    }
    let control = &*CONTROL;
    let mut state = control.state.lock().unwrap_or_else(|e| e.into_inner());
    // A running cycle may have taken its snapshot before our call: then the
    // one after it is ours.
    let target = state.completed + if state.running { 2 } else { 1 };
    state.requested = state.requested.max(target);
    while state.completed < target {
        if state.running {
            state = control
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
            continue;
        }
        // No cycle runs: run the next one here, on the calling thread, which
        // would only wait for the collector thread to run it (two wake-ups,
        // each a scheduler delay on a busy machine).
        let cycle = state.completed + 1;
        state.running = true;
        let buffers = state.buffers.take().unwrap_or_default();
        drop(state);
        run_inline(cycle, buffers);
        state = control.state.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// Runs cycle `cycle` on the calling thread (`collect()`), which set
/// `running`.
fn run_inline(cycle: u64, buffers: Buffers) {
    /// Ends the inline cycle also if it unwinds, so the collector thread
    /// and other callers do not wait for it forever.
    struct Inline(u64, Option<Buffers>);
    impl Drop for Inline {
        fn drop(&mut self) {
            ON_COLLECTOR.with(|flag| flag.set(false));
            finish_cycle(self.0, self.1.take().unwrap_or_default());
        }
    }
    let mut inline = Inline(cycle, Some(buffers));
    // A destructor this cycle runs here must not wait for it either.
    ON_COLLECTOR.with(|flag| flag.set(true));
    if let Some(buffers) = inline.1.as_mut() {
        run_cycle(cycle, buffers);
    }
}

/// Asks for a background cycle without waiting (the pacer's trigger).
pub(crate) fn request_background() {
    let control = &*CONTROL;
    let mut state = control.state.lock().unwrap_or_else(|e| e.into_inner());
    // While a cycle runs (the pacer re-triggers from its end, before it
    // counts as completed) ask for the next one, not the running one.
    let next = state.completed + if state.running { 2 } else { 1 };
    state.requested = state.requested.max(next);
    ensure_started(&mut state);
    control.changed.notify_all();
}

fn ensure_started(state: &mut State) {
    if state.started {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("gort-gc".into())
        .spawn(collector_main);
    match spawned {
        Ok(_) => state.started = true,
        // No thread, no background cycles: report it; `collect()` callers
        // would wait forever, so run the requested cycles here instead.
        Err(error) => {
            eprintln!("gort_alloc: cannot start the collector thread ({error}); collecting inline");
            let mut buffers = Buffers::default();
            while state.completed < state.requested {
                run_cycle(state.completed + 1, &mut buffers);
                state.completed += 1;
            }
        }
    }
}

fn collector_main() {
    ON_COLLECTOR.with(|flag| flag.set(true));
    let control = &*CONTROL;
    let mut state = control.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        // A `collect()` caller may be running a cycle itself.
        while state.requested <= state.completed || state.running {
            state = control
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.running = true;
        let cycle = state.completed + 1;
        let mut buffers = state.buffers.take().unwrap_or_default();
        drop(state);
        run_cycle(cycle, &mut buffers);
        finish_cycle(cycle, buffers);
        state = control.state.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// Records that cycle `cycle` finished, gives its buffers back and wakes
/// `collect()` callers and the collector thread.
fn finish_cycle(cycle: u64, buffers: Buffers) {
    let control = &*CONTROL;
    let mut buffers = buffers;
    buffers.objects.clear();
    buffers.condemned.clear();
    let mut state = control.state.lock().unwrap_or_else(|e| e.into_inner());
    state.running = false;
    state.completed = cycle;
    state.buffers = Some(buffers);
    control.changed.notify_all();
}

/// Memory a cycle needs in proportion to the heap, kept by the collector
/// thread from one cycle to the next (a fresh 24 MB vector per cycle costs
/// its page faults every time).
#[derive(Default)]
struct Buffers {
    objects: Vec<roots::Slot>,
    condemned: Vec<roots::Slot>,
}

// SAFETY: the buffers pass from the thread that ran a cycle to the next one
// only through `finish_cycle`, which empties them: no `Slot` (whose header
// pointer is meaningful only during its cycle) crosses, only capacity.
unsafe impl Send for Buffers {}

/// Runs cycle number `cycle` (its epoch).
fn run_cycle(cycle: u64, buffers: &mut Buffers) {
    let epoch = cycle as u32;
    let barrier = &*BARRIER;
    let started = Instant::now();
    emit(Cycle, Begin, cycle); // DIAG: the trace's GC track (events.rs)
    emit(Count, Begin, cycle);
    barrier.clear_gray();
    heap_api::gc_begin_mark();
    barrier.start_cycle(epoch);
    // The allocation handshake: every `Gc::new` that may have allocated
    // white has finished writing its object.
    barrier.wait_for_mutators();
    emit(Handshake, Instant, cycle);
    let objects = &mut buffers.objects;
    let released = roots::snapshot_and_count(objects, epoch);
    let mut stack = Vec::new();
    roots::find_roots(objects, epoch, &mut stack);
    emit(Count, End, cycle);
    emit(Mark, Begin, cycle);
    mark::mark(barrier, stack);
    emit(Mark, End, cycle);
    emit(Sweep, Begin, cycle);
    let marked = Instant::now();
    barrier.set_phase(PhaseWord {
        phase: SWEEP,
        epoch,
    });
    // No barrier that saw MARK may still be shading once sweeping starts.
    barrier.wait_for_mutators();
    emit(Handshake, Instant, cycle);
    heap_api::gc_begin_sweep();
    let swept = sweep::sweep(objects, &mut buffers.condemned, released);
    objects.clear();
    heap_api::gc_end_cycle();
    barrier.set_phase(PhaseWord { phase: OFF, epoch });
    if swept.unexpected_dead != 0 {
        eprintln!(
            "gort_alloc: BUG: the arena freed {} objects the collector did not condemn",
            swept.unexpected_dead
        );
    }
    emit(Sweep, End, cycle);
    emit(Cycle, End, cycle);
    pacer::cycle_done(swept.live_bytes, swept.freed_bytes);
    stats::record_cycle(&CycleReport {
        mark: marked - started,
        sweep: marked.elapsed(),
        live_objects: swept.live_objects,
        freed_objects: swept.freed_objects,
        leaked_objects: swept.leaked_objects,
        destructor_panics: swept.destructor_panics,
        unexpected_dead: swept.unexpected_dead,
    });
}
