//! Helpers shared by the integration test binaries.

#![allow(dead_code)] // each binary uses a subset

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use gort_executor::{Builder, Runtime};

/// Upper bound for anything a test waits on; reaching it is a failure.
pub const GENEROUS: Duration = Duration::from_secs(20);

/// A runtime with `n` Ps.
pub fn rt(n: usize) -> Runtime {
    Builder::new()
        .worker_threads(n)
        .build()
        .expect("runtime builds")
}

/// Counts its drops.
pub struct DropCount(pub Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}
