//! `tracing` at TRACE, target `gort`: a `poll` span around every poll with
//! the task's id, name and spawn location, and a `spawn` event. Its own
//! test binary: it installs a global subscriber (the Ms' threads do not
//! see a thread-local one).

#![cfg(not(loom))]

mod diag_common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use gort_executor::{Builder, task};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use diag_common::Fields;

/// `poll` spans (their fields) and `spawn` events of target `gort`.
static SPANS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SPAWNS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

struct Capture;

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        if span.metadata().target() == "gort" && span.metadata().name() == "poll" {
            let mut f = Fields(String::new());
            span.record(&mut f);
            SPANS.lock().unwrap().push(f.0);
        }
        Id::from_u64(NEXT.fetch_add(1, Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        if event.metadata().target() == "gort" && f.0.contains("message=spawn") {
            SPAWNS.lock().unwrap().push(f.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn every_poll_has_a_span_with_the_task_name_and_spawn_site() {
    const YIELDS: usize = 200;
    tracing::subscriber::set_global_default(Capture).expect("first subscriber");
    let rt = Builder::new().worker_threads(2).build().unwrap();
    rt.block_on(async {
        task::Builder::new()
            .name("ticker")
            .spawn(async {
                for _ in 0..YIELDS {
                    task::yield_now().await;
                }
            })
            .await
            .unwrap();
    });
    drop(rt);
    let spans = SPANS.lock().unwrap().clone();
    let ticker: Vec<_> = spans
        .iter()
        .filter(|s| s.contains("task_name=\"ticker\""))
        .collect();
    // The subscriber was there before the runtime started: every poll,
    // the first and one per yield, has its span.
    assert_eq!(ticker.len(), YIELDS + 1, "{ticker:?}");
    // The spawn site is the `.spawn(` line right after the name.
    let line = 2 + include_str!("tracing_spans.rs")
        .lines()
        .position(|l| l.trim() == r#".name("ticker")"#)
        .expect("the ticker's spawn is in this file");
    let at = format!("tracing_spans.rs:{line}:");
    assert!(
        ticker.iter().all(|s| s.contains(&at)),
        "spawn site {at} missing: {:?}",
        ticker[0]
    );
    let spawns = SPAWNS.lock().unwrap().clone();
    assert!(
        spawns
            .iter()
            .any(|s| s.contains("task_name=\"ticker\"") && s.contains(&at)),
        "no spawn event for the ticker: {spawns:?}"
    );
}
