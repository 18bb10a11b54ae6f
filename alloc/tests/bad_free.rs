//! Misuse of `SpanAlloc::dealloc` (a double free, a foreign pointer, an
//! interior pointer) must stop the process with a clear message instead of
//! corrupting the heap. A global allocator may not unwind, so it aborts; each
//! case runs in a child process (this test binary re-run with `--exact`).

#![cfg(not(loom))]

use gort_alloc::SpanAlloc;
use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;

const CHILD_ENV: &str = "GORT_ALLOC_BAD_FREE_CHILD";

fn child_case(case: &str) {
    let layout = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: each case deliberately breaks dealloc's contract; the allocator
    // must detect it and abort before anything is corrupted.
    unsafe {
        match case {
            "double" => {
                let p = SpanAlloc.alloc(layout);
                SpanAlloc.dealloc(p, layout);
                SpanAlloc.dealloc(p, layout);
            }
            "foreign" => {
                let mut x = [0u8; 64];
                SpanAlloc.dealloc(x.as_mut_ptr(), layout);
            }
            "interior" => {
                let p = SpanAlloc.alloc(layout);
                SpanAlloc.dealloc(p.add(8), layout);
            }
            _ => unreachable!(),
        }
    }
}

fn run_child(case: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .output()
        .expect("re-running the test binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The child side: does nothing unless the parent set the environment.
#[test]
fn child() {
    if let Ok(case) = std::env::var(CHILD_ENV) {
        child_case(&case);
        // Reaching this line means the misuse went unnoticed.
        std::process::exit(0);
    }
}

#[test]
fn misuse_aborts_with_a_clear_message() {
    let cases = [
        ("foreign", "not allocated by gort-alloc"),
        ("interior", "inside an allocation"),
        ("double", "double free"),
    ];
    // ("double": a 64-byte slot on its thread's local free list carries a
    // key, so the double free is found in release builds too.)
    for (case, msg) in cases {
        let (ok, stderr) = run_child(case);
        assert!(!ok, "{case}: the child survived; stderr: {stderr}");
        assert!(
            stderr.contains("gort-alloc: invalid free of 0x") && stderr.contains(msg),
            "{case}: unexpected stderr: {stderr}"
        );
    }
}
