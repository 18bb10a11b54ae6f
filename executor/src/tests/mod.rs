//! In-crate tests that need `pub(crate)` items: a minimal scheduler for the
//! task layer, and the loom models (`loom_*`, run by `scripts/loom`).

pub(crate) mod test_sched;

#[cfg(all(test, loom))]
mod loom_task;
#[cfg(not(loom))]
mod task_unit;
