//! `GORT_MEMLIMIT` is read when the heap first grows: a valid value sets the
//! soft memory limit, a bad one is reported on stderr and ignored. Each case
//! runs in a child process (this binary re-run) with the variable set.

#![cfg(not(loom))]

use gort_alloc::{SpanAlloc, memory_limit};
use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;

const CHILD_ENV: &str = "GORT_ALLOC_MEMLIMIT_CHILD";

/// The child side: allocates (growing the heap), then prints the limit.
#[test]
fn child() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    let layout = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: a valid layout; the object is freed once.
    unsafe {
        let p = SpanAlloc.alloc(layout);
        assert!(!p.is_null());
        SpanAlloc.dealloc(p, layout);
    }
    println!("LIMIT={}", memory_limit());
}

fn limit_with(value: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("GORT_MEMLIMIT", value)
        .output()
        .expect("re-running the test binary");
    assert!(out.status.success(), "child failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let limit = stdout
        .lines()
        .find_map(|l| l.split("LIMIT=").nth(1))
        .expect("child printed its limit")
        .to_string();
    (limit, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn env_sets_the_limit_and_bad_values_are_reported() {
    let (limit, _) = limit_with("64MiB");
    assert_eq!(limit, (64usize << 20).to_string());
    let (limit, stderr) = limit_with("12XB");
    assert_eq!(limit, usize::MAX.to_string(), "a bad value changes nothing");
    assert!(
        stderr.contains("gort-alloc: ignoring GORT_MEMLIMIT"),
        "bad value not reported: {stderr}"
    );
}
