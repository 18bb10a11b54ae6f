//! In-crate loom models (they need `pub(crate)` items). Run with
//! `bash scripts/loom` from the workspace root.

mod loom_park;
mod loom_registration;
