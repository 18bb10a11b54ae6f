//! sysmon end to end: a task blocking its thread does not stall the tasks
//! behind it (handoff), time-slice preemption through the budget,
//! `block_in_place`, and the `spawn_blocking` pool.

#![cfg(not(loom))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gort_netpoll::budget::INITIAL;

use gort_executor::task::{block_in_place, consume_budget, spawn_blocking};
use gort_executor::{Builder, JoinHandle, Runtime, spawn, time};

/// Bound for waits that normally take milliseconds (a loaded CI machine).
const GENEROUS: Duration = Duration::from_secs(20);
const TICKERS: usize = 50;

fn rt(n: usize) -> Runtime {
    Builder::new()
        .worker_threads(n)
        .build()
        .expect("runtime builds")
}

/// 50 tasks each counting its own 1 ms sleeps until `stop`.
fn start_tickers(rt: &Runtime, stop: &Arc<AtomicBool>) -> Arc<Vec<AtomicUsize>> {
    let ticks: Arc<Vec<AtomicUsize>> =
        Arc::new((0..TICKERS).map(|_| AtomicUsize::new(0)).collect());
    for i in 0..TICKERS {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        rt.spawn(async move {
            while !stop.load(SeqCst) {
                time::sleep(Duration::from_millis(1)).await;
                ticks[i].fetch_add(1, SeqCst);
            }
        });
    }
    ticks
}

fn snapshot(ticks: &[AtomicUsize]) -> Vec<usize> {
    ticks.iter().map(|t| t.load(SeqCst)).collect()
}

/// Waits (with `GENEROUS` as the bound) until every ticker ticked once.
fn wait_all_ticking(rt: &Runtime, ticks: &Arc<Vec<AtomicUsize>>) {
    let ticks = ticks.clone();
    rt.block_on(async move {
        let start = Instant::now();
        while ticks.iter().any(|t| t.load(SeqCst) == 0) {
            assert!(start.elapsed() < GENEROUS, "tickers never started");
            time::sleep(Duration::from_millis(1)).await;
        }
    });
}

/// Runs a task whose single poll blocks its thread for `block`, and returns
/// each ticker's ticks during the block.
fn ticks_during_block(workers: usize, block: Duration) -> Vec<usize> {
    let rt = rt(workers);
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = start_tickers(&rt, &stop);
    wait_all_ticking(&rt, &ticks);
    let t = ticks.clone();
    let during = rt.block_on(rt.spawn(async move {
        let before = snapshot(&t);
        std::thread::sleep(block);
        let after = snapshot(&t);
        before
            .iter()
            .zip(&after)
            .map(|(b, a)| a - b)
            .collect::<Vec<_>>()
    }));
    stop.store(true, SeqCst);
    during.expect("the blocking task completes")
}

fn assert_kept_ticking(during: &[usize], block: Duration, what: &str) {
    // Each ticker could tick ~block/1ms times; the handoff costs ~10 ms and
    // the machine may be loaded: ask for a tenth.
    let min_each = (block.as_millis() as usize / 10).max(1);
    let slowest = *during.iter().min().unwrap();
    let total: usize = during.iter().sum();
    assert!(
        slowest >= min_each,
        "{what}: while one task blocked its thread for {block:?}, the slowest of {TICKERS} \
         tickers ticked only {slowest} times (want >= {min_each}; total {total}): the blocked \
         M's P was not handed to another M"
    );
}

#[test]
fn tickers_keep_ticking_while_a_task_blocks_its_thread_one_worker() {
    let block = Duration::from_millis(500);
    let during = ticks_during_block(1, block);
    assert_kept_ticking(&during, block, "1 worker, thread::sleep in poll");
}

#[test]
fn tickers_keep_ticking_while_a_task_blocks_its_thread_two_workers() {
    let block = Duration::from_millis(500);
    let during = ticks_during_block(2, block);
    assert_kept_ticking(&during, block, "2 workers, thread::sleep in poll");
}

#[test]
fn block_in_place_hands_the_p_off() {
    // One worker: the tickers tick during the task's blocking section only
    // if sysmon hands its P to another M. The section lasts until every
    // ticker has ticked `WANT` times (bounded by `GENEROUS`) rather than a
    // fixed 300 ms: under load the OS kept the tickers' new M waiting for a
    // CPU for much of such a window (ticks during it were 300 minus that
    // M's run-queue wait in ms, /proc/self/task/*/schedstat, with CPU
    // spinners beside the test), and the fixed count of 30 failed once. A
    // missed handoff still fails: with one P, no ticker ticks at all. The
    // blocking threshold of a plain poll is out of reach, so only
    // `block_in_place`'s entersyscall can lose the P.
    const WANT: usize = 20;
    let rt = Builder::new()
        .worker_threads(1)
        .blocking_threshold(GENEROUS * 10)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = start_tickers(&rt, &stop);
    wait_all_ticking(&rt, &ticks);
    let t = ticks.clone();
    let outcome = rt.block_on(rt.spawn(async move {
        let before = snapshot(&t);
        block_in_place(|| {
            let start = Instant::now();
            loop {
                let slowest = snapshot(&t)
                    .iter()
                    .zip(&before)
                    .map(|(a, b)| a - b)
                    .min()
                    .unwrap();
                if slowest >= WANT {
                    return Ok(start.elapsed());
                }
                if start.elapsed() > GENEROUS {
                    return Err(slowest);
                }
                // The blocking work itself: this thread is asleep.
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    }));
    stop.store(true, SeqCst);
    if let Err(slowest) = outcome.expect("the blocking task completes") {
        panic!(
            "while one task blocked in block_in_place for {GENEROUS:?}, the slowest of \
             {TICKERS} tickers ticked only {slowest} times (want {WANT}): its P was not \
             handed to another M"
        );
    }
}

#[test]
fn block_in_place_returns_its_value_everywhere() {
    // Outside any runtime, on a block_on thread, and in a task (where the
    // closure may itself spawn).
    assert_eq!(block_in_place(|| 1), 1);
    let rt = rt(1);
    assert_eq!(rt.block_on(async { block_in_place(|| 2) }), 2);
    let v = rt.block_on(rt.spawn(async {
        let inner = block_in_place(|| spawn(async { 3 }));
        inner.await.unwrap() + block_in_place(|| 4)
    }));
    assert_eq!(v.unwrap(), 7);
}

#[test]
fn a_returning_blocked_m_continues_as_a_spare() {
    // After the handoff the blocked M returns and must find work again (an
    // idle P) or park; every task still completes, many times over.
    let rt = rt(1);
    let done = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        for round in 0..5 {
            let mut hs = Vec::new();
            for _ in 0..20 {
                let done = done.clone();
                hs.push(spawn(async move {
                    time::sleep(Duration::from_millis(1)).await;
                    done.fetch_add(1, SeqCst);
                }));
            }
            hs.push(spawn(async move {
                std::thread::sleep(Duration::from_millis(30 + round));
            }));
            for h in hs {
                h.await.unwrap();
            }
        }
    });
    assert_eq!(done.load(SeqCst), 100, "every task ran exactly once");
}

/// Wraps the hog of `spawn_budget_hog`: after each poll, records how many
/// budget units (`consume_budget` calls) the poll made, then resets the
/// count.
struct CountUnitsPerPoll<F> {
    inner: Pin<Box<F>>,
    units: Arc<AtomicUsize>,
    per_poll: Arc<Mutex<Vec<usize>>>,
}

impl<F: Future> Future for CountUnitsPerPoll<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = self.inner.as_mut().poll(cx);
        let n = self.units.swap(0, SeqCst);
        self.per_poll.lock().unwrap().push(n);
        out
    }
}

/// Spawns a hog that spins for `unit` before each budget unit
/// (`consume_budget`) until `stop`. Returns its handle and the number of
/// units each of its polls made.
fn spawn_budget_hog(
    rt: &Runtime,
    unit: Duration,
    stop: &Arc<AtomicBool>,
) -> (JoinHandle<()>, Arc<Mutex<Vec<usize>>>) {
    let units = Arc::new(AtomicUsize::new(0));
    let per_poll = Arc::new(Mutex::new(Vec::new()));
    let (s, u) = (stop.clone(), units.clone());
    let hog = rt.spawn(CountUnitsPerPoll {
        inner: Box::pin(async move {
            while !s.load(SeqCst) {
                let t = Instant::now();
                while t.elapsed() < unit {
                    std::hint::spin_loop();
                }
                u.fetch_add(1, SeqCst);
                consume_budget().await;
            }
        }),
        units,
        per_poll: per_poll.clone(),
    });
    (hog, per_poll)
}

#[test]
fn time_slice_overrun_yields_at_the_next_leaf() {
    // Handoff disabled in practice (1 s threshold): only preemption can cut
    // the hog's poll short. Each unit of its budget takes 2 ms, so a poll
    // sysmon does not preempt spends all `INITIAL` (128) units, 256 ms; a
    // preempted one ends at the first unit after 10 ms plus one sysmon tick,
    // ~6 units.
    //
    // The checks count units, not wall time: on a loaded machine (two cores,
    // a workspace build beside the tests) the OS left the hog's M, or
    // sysmon, or both without a CPU for 70-130 ms at a time (measured:
    // docs/BENCHMARKS.md, "The flaky time-slice test"), which stretched a
    // correctly preempted poll past any wall-clock bound but left its unit
    // count far below 128. A missed preemption still shows as a poll of
    // exactly 128 units: the poll ran until its own budget was spent.
    let rt = Builder::new()
        .worker_threads(1)
        .blocking_threshold(Duration::from_secs(1))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (hog, per_poll) = spawn_budget_hog(&rt, Duration::from_millis(2), &stop);
    let mut waits = rt
        .block_on(rt.spawn(async {
            let mut waits = Vec::new();
            for _ in 0..30 {
                let t = Instant::now();
                time::sleep(Duration::from_millis(1)).await;
                waits.push(t.elapsed());
            }
            waits
        }))
        .unwrap();
    stop.store(true, SeqCst);
    rt.block_on(hog).unwrap();
    let per_poll = per_poll.lock().unwrap().clone();
    // The last poll ended on `stop`, not on the budget: leave it out.
    let polls = &per_poll[..per_poll.len().saturating_sub(1)];
    let most = polls.iter().copied().max().unwrap_or(0);
    assert!(
        most < usize::from(INITIAL),
        "a poll of the budget-spending hog ran {most} units, its whole budget ({INITIAL}): \
         sysmon's time-slice preemption (10 ms) did not make it yield (units per poll: {polls:?})"
    );
    // Wall clock, robust to a few starved stretches: the median wait of the
    // 1 ms sleeper (unpreempted it would be >= 512 ms: two hog polls run
    // before it, the hog being queued first).
    waits.sort();
    let median = waits[waits.len() / 2];
    assert!(
        median < Duration::from_millis(100),
        "the median 1 ms sleep beside a budget-spending hog took {median:?} (all: {waits:?}): \
         sysmon's time-slice preemption (10 ms) did not make the hog yield"
    );
}

#[test]
fn a_preempted_poll_yields_instead_of_losing_its_p() {
    // One worker, default thresholds: the time slice and the blocking
    // threshold are both 10 ms. The hog spends its budget 200 us per unit,
    // so an unpreempted poll would last 128 units (25.6 ms); preempted at
    // 10 ms it yields at its next unit, within 200 us. A sleeper's expired
    // timer is the work that waits on the P meanwhile. Sysmon must let the
    // preempted poll return (PREEMPT_GRACE) instead of handing the P to a
    // new M at the preemption's tick, as it did before: then about every
    // preempted poll was a handoff, and a second M started for a task that
    // was about to yield.
    const UNIT: Duration = Duration::from_micros(200);
    const POLLS: usize = 20;
    let rt = rt(1);
    let stop = Arc::new(AtomicBool::new(false));
    let (hog, per_poll) = spawn_budget_hog(&rt, UNIT, &stop);
    let s = stop.clone();
    let sleeper = rt.spawn(async move {
        while !s.load(SeqCst) {
            time::sleep(Duration::from_millis(1)).await;
        }
    });
    let start = Instant::now();
    while per_poll.lock().unwrap().len() < POLLS {
        assert!(
            start.elapsed() < GENEROUS,
            "the hog was polled only {} times in {GENEROUS:?}",
            per_poll.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let metrics = rt.handle().metrics();
    stop.store(true, SeqCst);
    rt.block_on(hog).unwrap();
    rt.block_on(sleeper).unwrap();
    let polls = per_poll.lock().unwrap().clone();
    // The hog awaits nothing else: a poll that did not spend its whole
    // budget was cut short by the time slice (the last one ended on `stop`).
    let preempted = polls[..polls.len() - 1]
        .iter()
        .filter(|&&n| n < usize::from(INITIAL))
        .count();
    assert!(
        preempted >= POLLS / 2,
        "only {preempted} of the hog's polls were cut short by the time slice (units per \
         poll: {polls:?}): the test did not exercise preemption"
    );
    // Before the fix every preempted poll was handed off (20 of 20, quiet
    // machine); now none is on a quiet machine. Sysmon still hands off a
    // poll whose M the OS kept from a CPU for a whole blocking threshold
    // after the preemption (osthread.rs): with four CPU spinners beside
    // the test that was 0-7 of 20. Allow half.
    assert!(
        metrics.handoffs as usize * 2 <= preempted,
        "{} handoffs for {preempted} preempted polls (units per poll: {polls:?}; \
         threads={}): sysmon handed off the P of polls that were about to yield on \
         their zeroed budget",
        metrics.handoffs,
        metrics.threads_total
    );
}

#[test]
fn spawn_blocking_returns_values_and_panics() {
    let rt = rt(1);
    let v = rt.block_on(async { spawn_blocking(|| 6 * 7).await });
    assert_eq!(v.unwrap(), 42);
    let e = rt
        .block_on(async { spawn_blocking(|| -> u8 { panic!("boom in the pool") }).await })
        .unwrap_err();
    assert!(e.is_panic(), "a panic reaches the JoinHandle: {e:?}");
    // The pool survives the panic.
    let v = rt.block_on(rt.handle().spawn_blocking(|| "still here"));
    assert_eq!(v.unwrap(), "still here");
}

#[test]
fn spawn_blocking_runs_beside_tasks_and_respects_the_cap() {
    let rt = Builder::new()
        .worker_threads(1)
        .max_blocking_threads(2)
        .build()
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..6)
        .map(|i| {
            let (running, peak) = (running.clone(), peak.clone());
            rt.handle().spawn_blocking(move || {
                let now = running.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, SeqCst);
                i
            })
        })
        .collect();
    // Tasks run while the pool is busy.
    assert_eq!(rt.block_on(spawn_on(&rt, async { 5 })), 5);
    let sum: usize = rt.block_on(async {
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 15, "all six closures ran once");
    assert!(
        peak.load(SeqCst) <= 2,
        "max_blocking_threads(2) but {} ran at once",
        peak.load(SeqCst)
    );
    assert!(rt.handle().num_blocking_threads() <= 2);
}

fn spawn_on<T: Send + 'static>(
    rt: &Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> impl std::future::Future<Output = T> {
    let h = rt.spawn(f);
    async move { h.await.unwrap() }
}

#[test]
fn idle_blocking_threads_retire() {
    let rt = Builder::new()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(50))
        .build()
        .unwrap();
    let h = rt.handle();
    // Counted inside the closure: its thread cannot retire while it runs.
    // (Counted after `block_on` returned, as before, the test failed once
    // under load: the test thread waited for a CPU longer than the 50 ms
    // keep-alive, and the thread had already retired. Reproduced by
    // sleeping 60 ms at that point.)
    let h2 = h.clone();
    let threads = rt.block_on(h.spawn_blocking(move || h2.num_blocking_threads()));
    assert_eq!(threads.unwrap(), 1, "one thread runs the closure");
    let start = Instant::now();
    while h.num_blocking_threads() > 0 {
        assert!(
            start.elapsed() < GENEROUS,
            "an idle blocking thread did not retire {GENEROUS:?} after a 50 ms keep-alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A new closure starts a new thread.
    assert_eq!(rt.block_on(h.spawn_blocking(|| 2)).unwrap(), 2);
}

#[test]
fn bad_sysmon_configuration_is_an_error() {
    let e = Builder::new()
        .worker_threads(1)
        .blocking_threshold(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("blocking_threshold"), "{e}");
    let e = Builder::new()
        .worker_threads(1)
        .max_blocking_threads(0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("max_blocking_threads"), "{e}");
}

#[test]
fn sysmon_polls_the_network_when_every_m_is_busy() {
    // One P kept busy by a task that always yields: its M always finds local
    // work and never reaches findrunnable's netpoll; no idle M holds the
    // netpoller role. Only sysmon's periodic netpoll can wake the reader.
    let rt = rt(1);
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let (reader, hog_gave_up) = rt.block_on(async {
        let sock = gort_netpoll::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let d = done.clone();
        let hog = spawn(async move {
            let start = Instant::now();
            while !d.load(SeqCst) {
                if start.elapsed() > Duration::from_secs(5) {
                    return true;
                }
                gort_executor::task::yield_now().await;
            }
            false
        });
        let d = done.clone();
        let reader = spawn(async move {
            let mut buf = [0u8; 16];
            let n = sock.recv(&mut buf).await.unwrap();
            d.store(true, SeqCst);
            (buf[..n].to_vec(), start.elapsed())
        });
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            tx.send_to(b"ping", addr).unwrap();
        });
        (reader.await.unwrap(), hog.await.unwrap())
    });
    let (msg, took) = reader;
    assert_eq!(msg, b"ping");
    // Sent after 50 ms; sysmon polls every 10 ms. Without it the datagram
    // waits for the scheduler's occasional netpoll (seconds here).
    assert!(
        !hog_gave_up && took < Duration::from_secs(1),
        "the datagram was seen {took:?} after start (sent at 50 ms): sysmon did not poll \
         the network while every M was busy"
    );
}

#[test]
fn shutdown_completes_with_a_handed_off_m_and_a_busy_blocking_thread() {
    let rt = rt(1);
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = start_tickers(&rt, &stop);
    wait_all_ticking(&rt, &ticks);
    // A poll blocked past the handoff, and a blocking closure still running.
    rt.spawn(async { std::thread::sleep(Duration::from_millis(200)) });
    let pool = rt
        .handle()
        .spawn_blocking(|| std::thread::sleep(Duration::from_millis(300)));
    let before = snapshot(&ticks);
    let t = Instant::now();
    while snapshot(&ticks) == before {
        assert!(
            t.elapsed() < GENEROUS,
            "tickers stalled behind the blocked poll"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    drop(rt);
    // Drop waits for the blocked poll (like any poll in progress), not for
    // the blocking pool's closure.
    assert!(
        start.elapsed() < GENEROUS,
        "dropping the runtime took {:?}",
        start.elapsed()
    );
    drop(pool);
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

#[test]
fn runtime_drop_leaves_a_running_blocking_closure_to_finish_and_cancels_queued_ones() {
    let rt = Builder::new()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let captured_dropped = Arc::new(AtomicBool::new(false));
    let output_dropped = Arc::new(AtomicBool::new(false));
    let (captured, out) = (DropFlag(captured_dropped.clone()), output_dropped.clone());
    let running = rt.handle().spawn_blocking(move || {
        let _captured = captured;
        started_tx.send(()).unwrap();
        let _ = release_rx.recv();
        (7, DropFlag(out))
    });
    started_rx
        .recv_timeout(GENEROUS)
        .expect("the blocking closure starts");
    // The pool's only thread is busy: this one waits in the queue.
    let queued_dropped = Arc::new(AtomicBool::new(false));
    let queued_ran = Arc::new(AtomicBool::new(false));
    let (q, ran) = (DropFlag(queued_dropped.clone()), queued_ran.clone());
    let queued = rt.handle().spawn_blocking(move || {
        let _q = q;
        ran.store(true, SeqCst);
    });
    // Drop the runtime on another thread: it must return while the closure
    // is still blocked (it would otherwise never return: nothing else
    // releases the closure).
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(rt);
        dropped_tx.send(()).unwrap();
    });
    let dropped = dropped_rx.recv_timeout(GENEROUS);
    let still_captured = !captured_dropped.load(SeqCst);
    release_tx.send(()).unwrap();
    assert!(
        dropped.is_ok(),
        "dropping the runtime waited {GENEROUS:?} for a blocking closure still running"
    );
    assert!(
        still_captured,
        "the running closure's state was dropped under it"
    );
    // The running closure finishes after the drop and its handle gets the
    // result; nothing it owned outlives it.
    let (v, result) = futures::executor::block_on(running)
        .expect("a closure running at shutdown completes with its value");
    assert_eq!(v, 7);
    assert!(
        captured_dropped.load(SeqCst),
        "the closure's state was dropped"
    );
    drop(result);
    assert!(output_dropped.load(SeqCst));
    // The queued one never ran: cancelled, its state dropped.
    let e = futures::executor::block_on(queued).unwrap_err();
    assert!(e.is_cancelled(), "a queued closure is cancelled: {e:?}");
    assert!(
        !queued_ran.load(SeqCst),
        "a queued closure ran after the drop"
    );
    assert!(
        queued_dropped.load(SeqCst),
        "the queued closure's state was leaked"
    );
}

#[test]
fn runtime_drop_waits_for_a_block_in_place_section_and_shutdown_timeout_does_not() {
    for bounded in [false, true] {
        let rt = rt(1);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let _task = rt.spawn(async move {
            block_in_place(|| {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv();
            });
            f.store(true, SeqCst);
        });
        started_rx
            .recv_timeout(GENEROUS)
            .expect("the blocking section starts");
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if bounded {
                rt.shutdown_timeout(Duration::from_millis(10));
            } else {
                drop(rt);
            }
            dropped_tx.send(()).unwrap();
        });
        if bounded {
            let r = dropped_rx.recv_timeout(GENEROUS);
            assert!(
                r.is_ok(),
                "shutdown_timeout(10 ms) waited {GENEROUS:?} for a block_in_place section"
            );
            assert!(!finished.load(SeqCst), "the section was never released");
            release_tx.send(()).unwrap();
        } else {
            // Like any poll in progress, the section is waited for: the drop
            // cannot return before it is released.
            let early = dropped_rx.recv_timeout(Duration::from_millis(50));
            assert!(
                early.is_err(),
                "dropping the runtime returned while a block_in_place section still ran"
            );
            release_tx.send(()).unwrap();
            dropped_rx
                .recv_timeout(GENEROUS)
                .expect("the drop returns once the section ends");
        }
        // Either way the section runs to its end and its task's poll with it.
        let start = Instant::now();
        while !finished.load(SeqCst) {
            assert!(
                start.elapsed() < GENEROUS,
                "the task never resumed after its section (bounded: {bounded})"
            );
            std::thread::yield_now();
        }
    }
}
