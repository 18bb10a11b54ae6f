//! Memory per idle task: 100,000 tasks each awaiting a oneshot that never
//! fires; resident memory grown, divided by the count.
//!
//! Each runtime is measured in a fresh child process (this binary run again
//! with `--child NAME`) so one runtime's freed-but-kept heap cannot hide
//! another's growth. The figure includes everything a user pays per waiting
//! task: the task allocation, the scheduler's bookkeeping, and the oneshot
//! (the same `futures` oneshot for every runtime, so the differences are the
//! runtimes'). smol is measured beside gort and tokio because the issue sets
//! smol's figure as the bar.
//!
//! Run: `cargo bench --bench idle_task_memory`.

mod common;

use common::{BenchRt, Gort, Tokio, workers};
use futures::channel::oneshot;
use std::process::Command;

const TASKS: usize = 100_000;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always valid.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

/// Spawns TASKS waiting tasks with `spawn`, waits until all have been polled
/// once, and returns the resident growth per task.
fn measure(spawn: impl Fn(oneshot::Receiver<()>, std::sync::mpsc::SyncSender<()>)) -> f64 {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(TASKS);
    // Warm up: threads started, first allocations made.
    let mut senders = Vec::with_capacity(TASKS + 1);
    let (tx, rx) = oneshot::channel();
    senders.push(tx);
    spawn(rx, ready_tx.clone());
    ready_rx.recv().unwrap();

    let before = rss_bytes();
    for _ in 0..TASKS {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        spawn(rx, ready_tx.clone());
    }
    for _ in 0..TASKS {
        ready_rx.recv().unwrap();
    }
    let after = rss_bytes();
    let per_task = (after.saturating_sub(before)) as f64 / TASKS as f64;
    std::mem::forget(senders); // never fire, never cancel: the tasks stay idle
    per_task
}

async fn waiting_task(rx: oneshot::Receiver<()>, ready: std::sync::mpsc::SyncSender<()>) {
    ready.send(()).unwrap();
    let _ = rx.await;
}

fn child(name: &str) -> f64 {
    match name {
        "gort" => {
            let rt = Gort::build(workers());
            measure(|rx, ready| drop(rt.spawn_on(waiting_task(rx, ready))))
        }
        "tokio" => {
            let rt = Tokio::build(workers());
            measure(|rx, ready| drop(rt.spawn_on(waiting_task(rx, ready))))
        }
        "smol" => {
            let ex: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
            for _ in 0..workers() {
                std::thread::spawn(move || smol::block_on(ex.run(std::future::pending::<()>())));
            }
            measure(|rx, ready| ex.spawn(waiting_task(rx, ready)).detach())
        }
        other => panic!("unknown runtime {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        println!("{}", child(&args[pos + 1]));
        std::process::exit(0); // skip runtime shutdown: 100k tasks would be dropped for nothing
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes --bench; under `cargo test --all-targets` one run
    // each checks that the benchmark still works.
    let runs = if args.iter().any(|a| a == "--bench") {
        5
    } else {
        1
    };
    let exe = std::env::current_exe().unwrap();
    println!(
        "idle task memory: {TASKS} tasks awaiting a oneshot, {runs} runs each, bytes per task (median)"
    );
    let mut medians = Vec::new();
    for name in ["gort", "tokio", "smol"] {
        let mut samples: Vec<f64> = (0..runs)
            .map(|_| {
                let out = Command::new(&exe)
                    .args(["--child", name])
                    .output()
                    .expect("run child");
                assert!(
                    out.status.success(),
                    "{name} child failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<f64>()
                    .unwrap()
            })
            .collect();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = samples[samples.len() / 2];
        println!("{name:>6}: {median:7.1} B/task   (runs: {samples:.0?})");
        medians.push((name, median));
    }
    let gort = medians[0].1;
    for (name, m) in &medians[1..] {
        println!("gort/{name} = {:.2}", gort / m);
    }
}
