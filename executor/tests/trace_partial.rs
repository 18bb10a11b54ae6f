//! A trace read while it is being written (as after `kill -9`) is usable:
//! the writer flushes whole lines at least every 200 ms, and the part
//! written so far is a JSON array once the missing `]` is supplied (which
//! Perfetto and chrome://tracing do themselves). Own test binary: the trace
//! is process-wide.

#![cfg(not(loom))]

mod diag_common;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use diag_common::{Json, parse};
use gort_executor::Builder;

const GENEROUS: Duration = Duration::from_secs(20);

/// The file goes whatever the outcome: a failed run must not leave a trace
/// that kept growing in the temporary directory.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = gort_executor::trace::stop();
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The first `limit` bytes of the file (the part a viewer would load first).
fn read_prefix(path: &PathBuf, limit: u64) -> String {
    let mut text = String::new();
    if let Ok(file) = std::fs::File::open(path) {
        let mut bytes = Vec::new();
        let _ = file.take(limit).read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

#[test]
fn a_trace_cut_short_while_running_still_parses() {
    let path = std::env::temp_dir().join(format!("gort-trace-partial-{}.json", std::process::id()));
    let rt = Builder::new().worker_threads(2).build().unwrap();
    gort_executor::trace::start(&path).expect("trace starts");
    let _cleanup = RemoveOnDrop(path.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    // A task that polls about a thousand times a second: enough events
    // for the writer's periodic flush, and a file that stays small (a
    // yield loop writes hundreds of megabytes a second).
    let worker = rt.spawn(async move {
        while !stop2.load(Relaxed) {
            gort_executor::time::sleep(Duration::from_millis(1)).await;
        }
    });
    // Without stopping the trace, wait for the writer to have flushed polls.
    let deadline = Instant::now() + GENEROUS;
    let events = loop {
        let text = read_prefix(&path, 1 << 20);
        // Keep whole lines only (a read may catch a line half-written).
        let whole = &text[..text.rfind(",\n").map_or(0, |i| i)];
        if whole.contains("\"cat\":\"poll\"") {
            let doc = format!("{whole}\n]");
            match parse(&doc) {
                Ok(Json::Arr(events)) => break events,
                other => panic!("the partial trace does not parse: {other:?}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "no poll flushed to the file in {GENEROUS:?}"
        );
        std::thread::yield_now();
    };
    assert!(events.iter().any(|e| e.str("cat") == Some("poll")));
    assert!(
        events
            .iter()
            .all(|e| e.str("ph").is_some() && e.num("ts").is_some())
    );
    stop.store(true, Relaxed);
    rt.block_on(worker).unwrap();
    drop(rt);
    gort_executor::trace::stop().expect("trace stops");
    let full = std::fs::read_to_string(&path).unwrap();
    assert!(
        matches!(parse(&full), Ok(Json::Arr(_))),
        "the stopped trace is a closed array"
    );
}
