//! `SpanAlloc` as this test binary's `#[global_allocator]`, through a real
//! workload: threads passing strings and collections to each other (remote
//! frees), maps that grow and shrink, sorting, formatting, and the test
//! harness itself, for a few seconds.

#![cfg(not(loom))]

use gort_alloc::{SpanAlloc, stats};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: SpanAlloc = SpanAlloc;

fn word(i: u64) -> String {
    format!("w{}-{}", i % 977, "x".repeat((i % 61) as usize))
}

#[test]
fn collections_and_threads_under_span_alloc() {
    let start = Instant::now();
    let before = stats();
    let deadline = Duration::from_secs(3);
    let (tx, rx) = mpsc::sync_channel::<Vec<String>>(64);
    let producers: Vec<_> = (0..3u64)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut i = t * 1_000_000;
                let mut sent = 0u64;
                while start.elapsed() < deadline {
                    let batch: Vec<String> = (0..50).map(|k| word(i + k)).collect();
                    i += 50;
                    if tx.send(batch).is_err() {
                        break;
                    }
                    sent += 50;
                    // Local churn: a map that grows, then shrinks.
                    let mut m: HashMap<u64, Vec<u8>> = HashMap::new();
                    for k in 0..200 {
                        m.insert(k, vec![k as u8; (k * 7 % 3000) as usize]);
                    }
                    m.retain(|k, v| k % 3 == 0 && v.len() < 2500);
                    assert!(
                        m.values()
                            .all(|v| v.iter().all(|b| *b == v.first().copied().unwrap_or(0)))
                    );
                }
                sent
            })
        })
        .collect();
    drop(tx);
    // The consumer frees what producers allocated: remote frees.
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut recent: VecDeque<String> = VecDeque::new();
    let mut received = 0u64;
    for batch in rx {
        for w in batch {
            received += 1;
            *counts.entry(w.clone()).or_default() += 1;
            recent.push_back(w);
            if recent.len() > 10_000 {
                recent.pop_front();
            }
        }
    }
    let sent: u64 = producers.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sent, received, "every string arrived");
    assert_eq!(counts.values().sum::<u64>(), received);
    let mut sorted: Vec<&String> = recent.iter().collect();
    sorted.sort();
    assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
    let big: Vec<u64> = (0..2_000_000).collect(); // a large object
    assert_eq!(big.iter().sum::<u64>(), 1_999_999 * 2_000_000 / 2);
    let after = stats();
    assert!(received > 10_000, "workload too small: {received}");
    assert!(
        after.mallocs - before.mallocs > received,
        "SpanAlloc served the workload"
    );
    assert!(after.heap_sys >= after.heap_inuse && after.heap_inuse >= after.heap_alloc);
    eprintln!(
        "global allocator workload: {received} strings, {} mallocs, heap_inuse {} KiB",
        after.mallocs - before.mallocs,
        after.heap_inuse >> 10
    );
}

#[test]
fn many_short_lived_threads_flush_their_caches() {
    let before = stats();
    for round in 0..20 {
        let hs: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    (0..500)
                        .map(|i| format!("{round}-{t}-{i}"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap().len(), 500);
        }
    }
    let after = stats();
    // 160 threads each cached spans; their exits flushed them, so the heap
    // did not grow by 160 threads' worth of cached spans.
    assert!(
        after.heap_inuse < before.heap_inuse + (64 << 20),
        "heap_inuse grew from {} to {}",
        before.heap_inuse,
        after.heap_inuse
    );
}
