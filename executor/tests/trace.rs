//! The execution trace of a small run: valid JSON with the trace-event
//! format's fields, per-track order, P slices nesting the polls, steals as
//! flow pairs. Its own test binary: the trace is process-wide.

#![cfg(not(loom))]

mod diag_common;

use std::collections::HashMap;
use std::time::Duration;

use diag_common::{Json, parse, spin};
use gort_executor::{Builder, task};

#[test]
fn trace_of_a_small_run_is_valid_and_ordered() {
    let path = std::env::temp_dir().join(format!("gort-trace-test-{}.json", std::process::id()));
    let rt = Builder::new().worker_threads(4).build().unwrap();
    gort_executor::trace::start(&path).expect("trace starts");
    assert!(
        gort_executor::trace::start(&path).is_err(),
        "a second start while running must be refused"
    );
    let spawn_line = line!() + 6;
    rt.block_on(async {
        let parent = gort_executor::spawn(async {
            let mut hs = Vec::new();
            for i in 0..64 {
                let name = format!("worker-{i}");
                hs.push(task::Builder::new().name(&name).spawn(async {
                    for _ in 0..3 {
                        spin(Duration::from_micros(300));
                        task::yield_now().await;
                    }
                }));
            }
            for h in hs {
                h.await.unwrap();
            }
        });
        parent.await.unwrap();
    });
    let steals = rt.handle().metrics().steals;
    drop(rt);
    let written = gort_executor::trace::stop().expect("trace stops");
    assert!(
        gort_executor::trace::stop().is_err(),
        "stop twice must fail"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let doc = parse(&text).unwrap_or_else(|e| panic!("trace is not JSON: {e}"));
    let Json::Arr(events) = doc else {
        panic!("trace is not a JSON array")
    };
    assert!(written > 0 && events.len() as u64 >= written);
    if let Err(e) = diag_common::validate_trace_events(&events) {
        panic!("trace breaks the trace-event format: {e}");
    }

    // Fields of the trace-event format, per phase.
    let mut per_track: HashMap<(u64, u64), Vec<&Json>> = HashMap::new();
    let mut flows: HashMap<u64, Vec<&str>> = HashMap::new();
    for e in &events {
        let ph = e.str("ph").expect("every event has ph");
        let name = e.str("name").expect("every event has name");
        let pid = e.num("pid").expect("every event has pid") as u64;
        let tid = e.num("tid").expect("every event has tid") as u64;
        let ts = e.num("ts").expect("every event has ts");
        assert!(ts >= 0.0, "negative ts in {e:?}");
        match ph {
            "M" => continue,
            "X" => assert!(
                e.num("dur").is_some_and(|d| d >= 0.0),
                "X without dur: {e:?}"
            ),
            "B" | "E" => assert!(
                name.starts_with('P') || name == "park",
                "B/E are P or park slices: {e:?}"
            ),
            "i" => assert_eq!(e.str("s"), Some("t")),
            "s" | "f" => {
                let id = e.num("id").expect("flow events have an id") as u64;
                if ph == "f" {
                    assert_eq!(
                        e.str("bp"),
                        Some("e"),
                        "flow end binds to the enclosing slice"
                    );
                }
                flows.entry(id).or_default().push(ph);
            }
            other => panic!("unexpected phase {other}: {e:?}"),
        }
        per_track.entry((pid, tid)).or_default().push(e);
    }

    // Per track: file order is time order, P slices are balanced (a trace
    // started or stopped mid-hold may cut one), each poll lies inside the
    // slice of the P it names.
    let mut polls = 0;
    let mut named_with_line = 0;
    for ((pid, tid), evs) in &per_track {
        let mut last = f64::MIN;
        let mut open_p: Option<String> = None;
        for e in evs {
            let ts = e.num("ts").unwrap();
            // M tracks (pid 1) are written by their M alone, in order; the
            // P tracks (pid 2) gather steals from several Ms' buffers and are
            // sorted by the viewer.
            assert!(
                *pid != 1 || ts >= last,
                "track {pid}/{tid} goes back in time at {e:?}"
            );
            last = ts;
            match e.str("ph").unwrap() {
                // A park lies outside every P slice; P slices do not nest.
                "B" if e.str("name") == Some("park") => {
                    assert!(open_p.is_none(), "M{tid} parks holding {open_p:?}");
                }
                "B" => {
                    assert!(open_p.is_none(), "nested P slices on M{tid}: {e:?}");
                    open_p = Some(e.str("name").unwrap().to_string());
                }
                "E" if e.str("name") == Some("park") => {}
                "E" => {
                    if let Some(p) = open_p.take() {
                        assert_eq!(Some(p.as_str()), e.str("name"), "E closes another P");
                    }
                }
                "X" if e.str("cat") == Some("poll") => {
                    polls += 1;
                    let args = e.get("args").expect("polls carry args");
                    let p = args.num("p").unwrap() as u64;
                    assert_eq!(
                        open_p.as_deref(),
                        Some(format!("P{p}").as_str()),
                        "poll outside its P slice: {e:?}"
                    );
                    let task = args.num("task").unwrap() as u64;
                    assert!(e.str("name").unwrap().starts_with(&format!("task {task}")));
                    let at = args.str("spawned_at").unwrap();
                    if args.str("name").unwrap().starts_with("worker-") {
                        assert!(
                            at.ends_with(&format!("trace.rs:{spawn_line}:57"))
                                || at.contains(&format!("trace.rs:{spawn_line}:")),
                            "spawn location {at}"
                        );
                        named_with_line += 1;
                    }
                }
                _ => {}
            }
        }
    }
    // 64 workers polled 4 times each, the parent and their wakes.
    assert!(polls >= 64 * 4, "only {polls} poll slices");
    assert!(
        named_with_line >= 64 * 4,
        "only {named_with_line} named polls"
    );
    for (id, phs) in &flows {
        assert_eq!(
            phs,
            &vec!["s", "f"],
            "flow {id} is not one start then one end"
        );
    }
    assert_eq!(flows.len() as u64, steals, "one flow arrow per steal");
}
