//! Timers, gort beside tokio in one run.
//!
//! 1. `million`: one million sleeps (1 to 50 ms, spread evenly) scheduled by
//!    100 tasks of 10,000 each and awaited together; the time until every
//!    one has fired. Lower is better; the floor is the 50 ms longest sleep.
//! 2. `precision`: 50 tasks loop on `sleep(1 ms)` for 2 s on an otherwise idle
//!    runtime; each wake-up's lateness past its deadline, p50/p99/max.
//!
//! Run: `cargo bench --bench timers`.

mod common;

use common::{BenchRt, Gort, Tokio, workers};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::time::{Duration, Instant};

fn million<R: BenchRt>(rt: &R) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..100u64)
            .map(|t| {
                R::spawn(async move {
                    let mut sleeps: FuturesUnordered<_> = (0..10_000u64)
                        .map(|i| R::sleep(Duration::from_millis(1 + (t * 10_000 + i) % 50)))
                        .collect();
                    while sleeps.next().await.is_some() {}
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
    start.elapsed()
}

fn precision<R: BenchRt>(rt: &R, secs: f64) -> (f64, f64, f64) {
    let lateness = rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                R::spawn(async move {
                    let mut late = Vec::with_capacity(2100);
                    let end = Instant::now() + Duration::from_secs_f64(secs);
                    while Instant::now() < end {
                        let deadline = Instant::now() + Duration::from_millis(1);
                        R::sleep(Duration::from_millis(1)).await;
                        late.push(Instant::now().saturating_duration_since(deadline));
                    }
                    late
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await);
        }
        all
    });
    let mut us: Vec<f64> = lateness.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| us[((us.len() as f64 * p) as usize).min(us.len() - 1)];
    (pct(0.5), pct(0.99), *us.last().unwrap())
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs one
    // round of each to check the benchmark still works.
    let full = std::env::args().any(|a| a == "--bench");
    let (runs, precision_runs, secs) = if full { (5, 3, 2.0) } else { (1, 1, 0.2) };
    let gort = Gort::build(workers());
    let tokio = Tokio::build(workers());
    let (mut g, mut t) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        g.push(million(&gort));
        t.push(million(&tokio));
    }
    let (g, t) = (median(g), median(t));
    println!(
        "million sleeps (median of {runs}): gort {g:?}  tokio {t:?}  gort/tokio {:.2}",
        g.as_secs_f64() / t.as_secs_f64()
    );

    let (mut g, mut t) = (Vec::new(), Vec::new());
    for _ in 0..precision_runs {
        g.push(precision(&gort, secs));
        t.push(precision(&tokio, secs));
    }
    let pick =
        |v: &Vec<(f64, f64, f64)>, i: usize| median(v.iter().map(|x| [x.0, x.1, x.2][i]).collect());
    println!("sleep(1 ms) lateness, 50 tasks, {secs} s, median of {precision_runs} runs:");
    println!("| runtime | p50 µs | p99 µs | max µs |\n|---|---|---|---|");
    println!(
        "| gort | {:.0} | {:.0} | {:.0} |",
        pick(&g, 0),
        pick(&g, 1),
        pick(&g, 2)
    );
    println!(
        "| tokio | {:.0} | {:.0} | {:.0} |",
        pick(&t, 0),
        pick(&t, 1),
        pick(&t, 2)
    );
}
