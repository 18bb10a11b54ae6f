//! Loom models of the collector's protocols.

mod loom_gc_barrier;
mod loom_gc_last_drop;
