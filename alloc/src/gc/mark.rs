//! Marking and mark termination.
//!
//! The collector marks from the roots `roots::find_roots` pushed, tracing each
//! marked object once; mutators' barriers push what they shade on the shared
//! gray queue (barrier.rs). Termination is a loop: drain everything, note how
//! many shades mutators have made, wait until every mutator that was inside a
//! barrier operation has left it (`Barrier::wait_for_mutators`), and stop only
//! when that wait produced no new shade. DESIGN.md, "Termination", argues why
//! a barrier that begins after the wait cannot need to shade anything.

use std::ptr::NonNull;

use crate::gc::barrier::Barrier;
use crate::gc::object::Header;
use crate::gc::trace::{TraceMode, Tracer};

/// What marking did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MarkStats {
    /// Objects traced (each once).
    pub(crate) traced: usize,
    /// Handshake rounds mark termination needed.
    pub(crate) rounds: usize,
    /// Cells skipped because a mutator held them mutably.
    pub(crate) opaque: usize,
}

/// Marks everything reachable from `stack` and from mutators' shades.
pub(crate) fn mark(barrier: &Barrier, mut stack: Vec<NonNull<Header>>) -> MarkStats {
    let mut stats = MarkStats::default();
    drain(&mut stack, &mut stats);
    stats.rounds = barrier.terminate(|addr| {
        stack.push(from_addr(addr));
        drain(&mut stack, &mut stats);
    });
    stats
}

/// Traces until the local stack is empty.
fn drain(stack: &mut Vec<NonNull<Header>>, stats: &mut MarkStats) {
    while let Some(object) = stack.pop() {
        let mut tracer = Tracer::new(TraceMode::Mark { stack });
        // SAFETY: objects on the stack were marked by this cycle, so its
        // sweep keeps them; they were allocated before (roots and children
        // of traced objects) or are held by a mutator (shaded), and
        // initialised (the allocation handshake, barrier.rs).
        let header = unsafe { object.as_ref() };
        // SAFETY: as above; the value is not dropped (not condemned), and the
        // vtable belongs to the object (object.rs).
        unsafe { (header.vtable.trace)(object, &mut tracer) };
        stats.opaque += tracer.opaque;
        stats.traced += 1;
    }
}

fn from_addr(addr: usize) -> NonNull<Header> {
    NonNull::new(addr as *mut Header).expect("gray queue holds header addresses")
}
