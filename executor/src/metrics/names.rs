//! Task names (`task::Builder::name`): a side table keyed by task id, so
//! an unnamed task carries nothing for the feature.
//!
//! Ids are unique in the process, so one table serves every runtime and
//! the trace writer reads names from one place. `NAMED` counts the
//! entries: while it is 0 (no task was ever named, or all named ones
//! completed) a completion's `forget_name` is one Relaxed load and a
//! branch. A named spawn and its completion take the table's lock once
//! each.
//!
//! Under `cfg(loom)` (loom's Mutex cannot be a static) names are not kept:
//! the scheduler's models never name tasks.

use std::panic::Location;
use std::sync::Arc as StdArc;

use crate::task::Id;

#[cfg(not(loom))]
use std::collections::HashMap;

#[cfg(not(loom))]
use gort_netpoll::loom::sync::Mutex;
#[cfg(not(loom))]
use gort_netpoll::loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};

#[cfg(not(loom))]
static NAMES: Mutex<Option<HashMap<u64, StdArc<str>>>> = Mutex::new(None);
/// Entries in `NAMES`. Relaxed everywhere: a task's name is inserted
/// before its spawn publishes it, which happens-before its completion and
/// any poll (the run queues' orderings), so the count a completion or a
/// poll reads already includes its own task's entry.
#[cfg(not(loom))]
static NAMED: AtomicUsize = AtomicUsize::new(0);

/// The `tracing` event of a spawn (out of line: called only when TRACE is
/// enabled at all).
#[cold]
#[inline(never)]
pub(crate) fn trace_spawn(id: Id, spawned_at: &Location<'static>) {
    let name = name(id.as_u64());
    tracing::trace!(target: "gort", task_id = id.as_u64(),
        task_name = name.as_deref().unwrap_or(""), spawned_at = %spawned_at, "spawn");
}

/// Records the name of a task about to be spawned.
pub(crate) fn set_name(id: Id, name: &str) {
    let name = StdArc::<str>::from(name);
    crate::trace::note_name(id.as_u64(), &name);
    #[cfg(not(loom))]
    {
        let prev = NAMES
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(id.as_u64(), name);
        if prev.is_none() {
            NAMED.fetch_add(1, Relaxed);
        }
    }
}

/// The name of live task `id`, if it was given one.
pub(crate) fn name(id: u64) -> Option<StdArc<str>> {
    #[cfg(not(loom))]
    {
        if NAMED.load(Relaxed) == 0 {
            return None;
        }
        NAMES.lock().unwrap().as_ref()?.get(&id).cloned()
    }
    #[cfg(loom)]
    {
        let _ = id;
        None
    }
}

/// Every live named task's id and name (the trace writer's first names).
#[cfg_attr(loom, allow(dead_code))] // the writer does not exist under loom
pub(crate) fn named_tasks() -> Vec<(u64, StdArc<str>)> {
    #[cfg(not(loom))]
    {
        NAMES
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|(id, n)| (*id, n.clone()))
            .collect()
    }
    #[cfg(loom)]
    {
        Vec::new()
    }
}

/// Forgets the name of a completed task: one Relaxed load while no task
/// has a name.
#[inline]
pub(crate) fn forget_name(id: Id) {
    #[cfg(not(loom))]
    if NAMED.load(Relaxed) != 0 {
        forget_named(id);
    }
    #[cfg(loom)]
    let _ = id;
}

#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn forget_named(id: Id) {
    let removed = NAMES
        .lock()
        .unwrap()
        .as_mut()
        .and_then(|m| m.remove(&id.as_u64()));
    if removed.is_some() {
        NAMED.fetch_sub(1, Relaxed);
    }
}
