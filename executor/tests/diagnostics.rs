//! Metrics against known workloads, and the task dump.

#![cfg(not(loom))]

use std::time::{Duration, Instant};

mod diag_common;

use diag_common::spin;
use futures::channel::oneshot;
use gort_executor::{Builder, Runtime, spawn, task};

const GENEROUS: Duration = Duration::from_secs(20);

fn rt(n: usize) -> Runtime {
    Builder::new()
        .worker_threads(n)
        .build()
        .expect("runtime builds")
}

#[test]
fn n_spawns_give_n_spawned_and_n_completed() {
    const N: u64 = 1000;
    const YIELDS: u64 = 8;
    let rt = rt(2);
    let handle = rt.handle();
    let before = handle.metrics();
    assert_eq!(before.tasks_spawned, 0);
    assert_eq!(before.gomaxprocs, 2);
    rt.block_on(async {
        // Half from block_on, half from inside a task. The first half
        // yields: the schedule-latency samples are taken from a sampled
        // task's next wake and poll on one M, so they need tasks that are
        // woken again.
        let mut hs: Vec<_> = (0..N / 2)
            .map(|_| {
                spawn(async {
                    for _ in 0..YIELDS {
                        task::yield_now().await;
                    }
                })
            })
            .collect();
        let inner = spawn(async {
            let hs: Vec<_> = (0..N / 2 - 1).map(|_| spawn(async {})).collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        hs.push(inner);
        for h in hs {
            h.await.unwrap();
        }
    });
    // Shutdown waits for the Ms: every completion has been counted.
    drop(rt);
    let m = handle.metrics();
    assert_eq!(m.tasks_spawned, N, "spawned: {m:#?}");
    assert_eq!(m.tasks_completed, N, "completed: {m:#?}");
    assert_eq!(m.tasks_alive, 0);
    // Every task polled at least once, the yielding half once per yield
    // more: counted exactly (the Ms credit their last polls when they exit).
    let want = N + N / 2 * YIELDS;
    assert!(m.polls >= want, "polls {} < {want}", m.polls);
    // Sampling: about one poll in 64 is timed.
    let timed = m.poll_duration.count();
    assert!(
        timed >= m.polls / 128 && timed <= m.polls,
        "timed polls {timed} of {}",
        m.polls
    );
    assert!(m.schedule_latency.count() > 0, "no latency sample: {m:#?}");
}

#[test]
fn a_steal_forcing_workload_shows_steals() {
    let rt = rt(4);
    let handle = rt.handle();
    rt.block_on(async {
        // One task queues 64 busy tasks on its own P: idle Ms must steal them.
        spawn(async {
            let hs: Vec<_> = (0..64)
                .map(|_| spawn(async { spin(Duration::from_micros(500)) }))
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        })
        .await
        .unwrap();
    });
    let m = handle.metrics();
    assert!(m.steals > 0, "no steal: {m:#?}");
    assert!(m.tasks_stolen >= m.steals, "{m:#?}");
}

#[test]
fn tasks_by_state_and_queue_depths() {
    let rt = rt(2);
    let handle = rt.handle();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..10).map(|_| oneshot::channel::<()>()).unzip();
    let hs: Vec<_> = rxs
        .into_iter()
        .map(|rx| rt.spawn(async { rx.await.ok() }))
        .collect();
    let deadline = Instant::now() + GENEROUS;
    loop {
        let m = handle.metrics();
        if m.tasks_waiting == 10 {
            assert_eq!(m.tasks_alive, 10);
            assert_eq!(m.tasks_runnable, 0);
            assert_eq!(m.tasks_running, 0);
            assert_eq!(m.global_queue_depth, 0);
            assert_eq!(m.local_queue_depths, vec![0, 0]);
            assert_eq!(m.threads_total, 2);
            break;
        }
        assert!(Instant::now() < deadline, "tasks never all waiting: {m:#?}");
        std::thread::yield_now();
    }
    // From inside a task: that task is running.
    let running = rt.block_on(async {
        spawn(async { gort_executor::Handle::current().metrics().tasks_running })
            .await
            .unwrap()
    });
    assert!(running >= 1);
    drop(txs);
    rt.block_on(async {
        for h in hs {
            h.await.unwrap();
        }
    });
    // A task completes (leaves the count) just after waking its JoinHandle:
    // shutdown waits for the Ms, so every completion is counted after it.
    drop(rt);
    let text = handle.metrics().to_text();
    assert!(text.contains("/sched/goroutines:goroutines 0\n"), "{text}");
}

#[test]
fn dump_shows_a_task_blocked_on_a_channel_as_waiting_with_its_spawn_line() {
    let rt = rt(2);
    let handle = rt.handle();
    let (tx, rx) = oneshot::channel::<u32>();
    let b = task::Builder::new().name("conn-42");
    let (line, h) = (line!(), b.spawn_on(async { rx.await.unwrap() }, &handle));
    let deadline = Instant::now() + GENEROUS;
    let dump = loop {
        let dump = handle.dump();
        if dump.contains("\"conn-42\" [waiting") {
            break dump;
        }
        assert!(
            Instant::now() < deadline,
            "the task never shows as waiting:\n{dump}"
        );
        std::thread::yield_now();
    };
    let mut lines = dump.lines();
    let head = lines.by_ref().find(|l| l.contains("conn-42")).unwrap();
    assert!(head.starts_with("task ") && head.ends_with("]:"), "{head}");
    let at = lines.next().unwrap();
    assert!(
        at.trim_start()
            .starts_with(&format!("spawned at executor/tests/diagnostics.rs:{line}:")),
        "spawn line {line} not in {at:?}\n{dump}"
    );
    assert!(dump.starts_with("gort: 1 live tasks"), "{dump}");

    // A task dumping itself is running, on an M and a P.
    let own = rt.block_on(async {
        spawn(async { gort_executor::Handle::current().dump() })
            .await
            .unwrap()
    });
    assert!(
        own.lines()
            .any(|l| l.contains("[running") && l.contains(" M") && l.contains(" P")),
        "{own}"
    );
    tx.send(7).unwrap();
    assert_eq!(rt.block_on(h).unwrap(), 7);
    drop(rt); // every completion is counted once the Ms have exited
    assert!(handle.dump().starts_with("gort: 0 live tasks"));
}

/// The time in a task's state from its dump line (`[waiting, 1.2s]`,
/// `[runnable, 35us]`, `[waiting, 3 minutes]`) and the resolution it is
/// printed with (the dump truncates), None when the line has none.
fn time_in_state(dump: &str, name: &str) -> Option<(Duration, Duration)> {
    let line = dump.lines().find(|l| l.contains(&format!("{name:?} [")))?;
    let inner = line.split('[').nth(1)?.split(']').next()?;
    let t = inner.split(", ").nth(1)?;
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit() && c != '.')?);
    let n: f64 = n.parse().ok()?;
    let (scale, resolution) = match unit {
        "us" => (1e-6, 1e-6),
        "ms" => (1e-3, 1e-3),
        "s" => (1.0, 0.1),
        " minutes" => (60.0, 60.0),
        _ => return None,
    };
    Some((
        Duration::from_secs_f64(n * scale),
        Duration::from_secs_f64(resolution),
    ))
}

#[test]
fn dump_shows_how_long_a_task_has_been_waiting() {
    const HELD: Duration = Duration::from_millis(300);
    let rt = rt(2);
    let handle = rt.handle();
    let (tx, rx) = oneshot::channel::<u32>();
    let spawned = Instant::now();
    let h = task::Builder::new()
        .name("blocked")
        .spawn_on(async { rx.await.unwrap() }, &handle);
    // The event: the dump shows the task waiting; from then on it is.
    let deadline = Instant::now() + GENEROUS;
    let seen_waiting = loop {
        if handle.dump().contains("\"blocked\" [waiting, ") {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "the task never shows as waiting");
        std::thread::yield_now();
    };
    // Let the measured quantity grow (this sleep synchronises nothing).
    std::thread::sleep(HELD);
    let dump = handle.dump();
    let (shown, res) = time_in_state(&dump, "blocked").expect("a time in the waiting line");
    // Waiting since before `seen_waiting`, and not before the spawn.
    let (low, high) = (seen_waiting.elapsed(), spawned.elapsed());
    // Never shorter than the real wait; longer by at most a sysmon tick
    // and a clock unit (a generous second here: the machine is shared).
    assert!(
        shown + res >= low && low >= HELD,
        "shown {shown:?}, waiting for at least {low:?}:\n{dump}"
    );
    assert!(
        shown <= high + Duration::from_secs(1),
        "shown {shown:?} > {high:?}:\n{dump}"
    );
    tx.send(1).unwrap();
    assert_eq!(rt.block_on(h).unwrap(), 1);
}

#[test]
fn dump_shows_how_long_a_task_has_been_runnable_behind_a_hog() {
    const HOG: Duration = Duration::from_millis(200);
    // One P, and no handoff of it while the hog spins: the queued task
    // stays runnable for the whole of the hog's poll.
    let rt = Builder::new()
        .worker_threads(1)
        .blocking_threshold(Duration::from_secs(3600))
        .build()
        .unwrap();
    let dump = rt.block_on(async {
        spawn(async {
            let queued = task::Builder::new().name("queued").spawn(async {});
            let t0 = Instant::now();
            spin(HOG);
            let dump = gort_executor::Handle::current().dump();
            (dump, t0.elapsed(), queued)
        })
        .await
        .unwrap()
    });
    let (dump, hogged, queued) = dump;
    let (shown, res) = time_in_state(&dump, "queued").expect("a time in the runnable line");
    assert!(dump.contains("\"queued\" [runnable, "), "{dump}");
    assert!(
        shown + res >= hogged,
        "shown {shown:?} < hogged {hogged:?}:\n{dump}"
    );
    assert!(
        shown <= hogged + Duration::from_secs(1),
        "shown {shown:?} far above {hogged:?}:\n{dump}"
    );
    rt.block_on(queued).unwrap();
}

#[test]
fn dump_shows_how_long_a_running_task_has_been_in_its_poll() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let rt = rt(2);
    let handle = rt.handle();
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    // One poll that does not return until released: it holds its M.
    let h = task::Builder::new().name("busy").spawn_on(
        async move {
            let deadline = Instant::now() + GENEROUS;
            while !r.load(Relaxed) && Instant::now() < deadline {
                std::hint::spin_loop();
            }
        },
        &handle,
    );
    // Whatever happens below, the poll ends (else dropping the runtime
    // would wait for it).
    struct Release(Arc<AtomicBool>);
    impl Drop for Release {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }
    let _release = Release(release.clone());
    // sysmon notes the poll at its next tick (at most 2 ms apart while a P
    // is busy); the dump then prints the time since:
    // `task N "busy" [running, 3ms, M1 P0]:`.
    let deadline = Instant::now() + GENEROUS;
    let parts = loop {
        let dump = handle.dump();
        let line = dump.lines().find(|l| l.contains("\"busy\" [running"));
        if let Some(l) = line {
            let inner = l.split('[').nth(1).unwrap().trim_end_matches("]:");
            let parts: Vec<String> = inner.split(", ").map(str::to_string).collect();
            if parts.len() == 3 {
                break parts;
            }
        }
        assert!(Instant::now() < deadline, "no running time in:\n{dump}");
        std::thread::yield_now();
    };
    assert!(
        parts[1].ends_with("us") || parts[1].ends_with("ms"),
        "{parts:?}"
    );
    assert!(
        parts[2].starts_with('M') && parts[2].contains(" P"),
        "{parts:?}"
    );
    release.store(true, Relaxed);
    rt.block_on(h).unwrap();
}

#[test]
fn a_poll_that_blocks_its_thread_counts_a_handoff() {
    let rt = Builder::new()
        .worker_threads(1)
        .blocking_threshold(Duration::from_millis(5))
        .build()
        .unwrap();
    let handle = rt.handle();
    rt.block_on(async {
        spawn(async {
            // Work queued behind a poll that blocks its M (the blocking is
            // the behaviour under test): sysmon hands the P to another M.
            let queued: Vec<_> = (0..8).map(|_| spawn(async {})).collect();
            std::thread::sleep(Duration::from_millis(200));
            for h in queued {
                h.await.unwrap();
            }
        })
        .await
        .unwrap();
    });
    let m = handle.metrics();
    assert!(m.handoffs >= 1, "no handoff counted: {m:#?}");
}
