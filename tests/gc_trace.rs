//! The execution trace shows the garbage collector's phases: a `collect()`
//! with a trace running puts its phase slices on the "GC" track, in order.

use std::time::Duration;

#[path = "../executor/tests/diag_common/mod.rs"]
mod diag_common;

use diag_common::Json;
use gort_alloc::Gc;

#[test]
fn a_collection_puts_its_phases_on_the_gc_track_in_order() {
    let path = std::env::temp_dir().join(format!("gort-gc-trace-{}.json", std::process::id()));
    gort::trace::start(&path).expect("trace starts");
    // A small heap: a few live objects and some garbage.
    let live: Vec<Gc<u64>> = (0..64).map(Gc::new).collect();
    drop((0..256u64).map(Gc::new).collect::<Vec<_>>());
    gort::collect();
    gort::trace::stop().expect("trace stops");
    drop(live);
    let text = std::fs::read_to_string(&path).expect("trace file");
    let _ = std::fs::remove_file(&path);
    let Json::Arr(events) = diag_common::parse(&text).expect("the trace is JSON") else {
        panic!("not a JSON array");
    };
    let gc_tid = events
        .iter()
        .find(|e| {
            e.str("ph") == Some("M")
                && e.str("name") == Some("thread_name")
                && e.get("args").and_then(|a| a.str("name")) == Some("GC")
        })
        .and_then(|e| e.num("tid"))
        .expect("a GC track");
    let gc: Vec<&Json> = events
        .iter()
        .filter(|e| e.num("tid") == Some(gc_tid) && e.str("ph") != Some("M"))
        .collect();
    // The last cycle that ended is ours (or a later one, which is complete
    // too: it began after ours ended, with the trace on).
    let cycle_of = |e: &Json| e.get("args").and_then(|a| a.num("cycle"));
    let last = gc
        .iter()
        .rev()
        .find(|e| e.str("name") == Some("GC cycle") && e.str("ph") == Some("E"))
        .and_then(|e| cycle_of(e))
        .unwrap_or_else(|| panic!("no GC cycle ended on the GC track:\n{text}"));
    let ours: Vec<_> = gc.iter().filter(|e| cycle_of(e) == Some(last)).collect();
    let seq: Vec<(&str, &str)> = ours
        .iter()
        .map(|e| (e.str("name").unwrap(), e.str("ph").unwrap()))
        .collect();
    assert_eq!(
        seq,
        [
            ("GC cycle", "B"),
            ("count", "B"),
            ("handshake", "i"),
            ("count", "E"),
            ("mark", "B"),
            ("mark", "E"),
            ("sweep", "B"),
            ("handshake", "i"),
            ("sweep", "E"),
            ("GC cycle", "E"),
        ],
        "the GC track of cycle {last}"
    );
    let ts: Vec<f64> = ours.iter().map(|e| e.num("ts").unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "times go back: {ts:?}");
    // A collection of a few hundred objects is quick; a generous bound.
    let span = Duration::from_secs_f64((ts[ts.len() - 1] - ts[0]) / 1e6);
    assert!(span < Duration::from_secs(10), "cycle took {span:?}");
}
