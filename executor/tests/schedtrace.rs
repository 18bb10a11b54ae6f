//! `GORT_DEBUG=schedtrace=<ms>` end to end: the test binary re-runs itself
//! with the variable set and reads the lines sysmon prints on stderr.

#![cfg(not(loom))]

use std::process::Command;
use std::time::Duration;

const CHILD_ENV: &str = "GORT_SCHEDTRACE_CHILD";

#[test]
fn schedtrace_prints_periodic_lines_on_stderr() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: run a runtime for ~120 ms with a 20 ms trace period.
        let rt = gort_executor::Builder::new()
            .worker_threads(2)
            .build()
            .expect("GORT_DEBUG parses");
        rt.block_on(gort_executor::time::sleep(Duration::from_millis(120)));
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "schedtrace_prints_periodic_lines_on_stderr",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .env(gort_executor::DEBUG_ENV, "schedtrace=20")
        .output()
        .expect("re-run the test binary");
    assert!(out.status.success(), "child failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let handshake = stderr
        .lines()
        .find(|l| l.contains("P status handshake: "))
        .unwrap_or_else(|| panic!("no line naming the P status handshake:\n{stderr}"));
    assert!(
        handshake.ends_with(")")
            && (handshake.contains("membarrier") || handshake.contains("fence")),
        "names membarrier or the fence fallback: {handshake:?}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("SCHED ")).collect();
    assert!(
        lines.len() >= 2,
        "expected a SCHED line every 20 ms over 120 ms, got {}:\n{stderr}",
        lines.len()
    );
    for l in &lines {
        assert!(
            l.contains(" gomaxprocs=2 ") && l.contains(" runqueue=") && l.ends_with(']'),
            "not Go's format: {l:?}"
        );
    }
    let times: Vec<u64> = lines
        .iter()
        .map(|l| l["SCHED ".len()..l.find("ms:").unwrap()].parse().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "increasing times: {times:?}"
    );
}

#[test]
fn a_bad_gort_debug_is_an_error() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let e = gort_executor::Builder::new()
            .worker_threads(1)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("GORT_DEBUG"), "{e}");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["a_bad_gort_debug_is_an_error", "--exact"])
        .env(CHILD_ENV, "1")
        .env(gort_executor::DEBUG_ENV, "schedtrace=often")
        .output()
        .expect("re-run the test binary");
    assert!(out.status.success(), "child failed: {out:?}");
}
