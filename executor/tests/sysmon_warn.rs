//! The handoff warning: each P taken from a long poll emits a `tracing`
//! warning (target `gort`) naming the task id, where it was spawned and how
//! long it blocked. Its own test binary: it installs a global subscriber
//! (sysmon's thread does not see a thread-local one).

#![cfg(not(loom))]

mod diag_common;

use std::sync::Mutex;
use std::time::Duration;

use gort_executor::{Builder, spawn};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use diag_common::Fields;

/// Every event of target `gort`, as `name=value` pairs.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() == "gort" {
            let mut f = Fields(String::new());
            event.record(&mut f);
            EVENTS.lock().unwrap().push(f.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn field<'a>(event: &'a str, name: &str) -> &'a str {
    let start = event
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {event:?}"))
        + name.len()
        + 1;
    let rest = &event[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        &quoted[..quoted.find('"').unwrap()]
    } else {
        &rest[..rest.find(' ').unwrap_or(rest.len())]
    }
}

#[test]
fn handoff_warns_with_task_id_spawn_site_and_duration() {
    tracing::subscriber::set_global_default(Capture).expect("first subscriber");
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let (id, line) = rt.block_on(async {
        // The blocker runs first; the waiter sits in the runq behind it, so
        // sysmon sees work waiting and hands the P off.
        let line = line!() + 1;
        let blocker = spawn(async { std::thread::sleep(Duration::from_millis(100)) });
        let waiter = spawn(async {});
        let id = blocker.id();
        waiter.await.unwrap();
        blocker.await.unwrap();
        (id, line)
    });
    let events = EVENTS.lock().unwrap().clone();
    let warn = events
        .iter()
        .find(|e| e.contains("blocked its thread"))
        .unwrap_or_else(|| panic!("no handoff warning among {events:?}"));
    assert_eq!(field(warn, "task_id"), id.to_string(), "{warn}");
    let at = field(warn, "spawned_at");
    assert!(
        at.contains("sysmon_warn.rs") && at.contains(&format!(":{line}:")),
        "spawned_at should be this file, line {line}: {warn}"
    );
    let ms: f64 = field(warn, "blocked_ms").parse().unwrap();
    assert!(ms >= 10.0, "blocked at least the 10 ms threshold: {warn}");
}
