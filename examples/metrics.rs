//! Runtime metrics under a load, printed once a second (Go's
//! `runtime/metrics` names where Go has one).
//!
//! ```text
//! cargo run --example metrics [SECONDS]        # default 5
//! GORT_TRACE=trace.json cargo run --example metrics 2   # plus an execution trace
//! ```
//!
//! The load: producers spawn short tasks at a steady rate, a few tasks
//! spin for a millisecond per poll (they show in the poll-duration p99 and
//! make idle Ms steal), and a pool of tasks waits on timers (they show as
//! waiting). Send SIGQUIT (Ctrl-\) with `GORT_DEBUG=sigquit=1` for a task
//! dump while it runs.

use std::time::{Duration, Instant};

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn main() {
    let secs: u64 = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 5,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: metrics [SECONDS]: {e}");
            std::process::exit(2);
        }
    };
    let rt = gort::Runtime::new().expect("runtime starts");
    rt.block_on(async move {
        // Waiting tasks: each sleeps in a loop.
        for i in 0..100 {
            gort::task::Builder::new()
                .name(&format!("sleeper-{i}"))
                .spawn(async move {
                    loop {
                        gort::time::sleep(Duration::from_millis(50 + i)).await;
                    }
                });
        }
        // Producers: bursts of short tasks, and an occasional long poll.
        for _ in 0..2 {
            gort::spawn(async {
                loop {
                    let hs: Vec<_> = (0..200)
                        .map(|i| {
                            gort::spawn(async move {
                                if i % 50 == 0 {
                                    spin(Duration::from_millis(1));
                                }
                                gort::task::yield_now().await;
                            })
                        })
                        .collect();
                    for h in hs {
                        let _ = h.await;
                    }
                    gort::time::sleep(Duration::from_millis(5)).await;
                }
            });
        }
        for s in 1..=secs {
            gort::time::sleep(Duration::from_secs(1)).await;
            println!("--- t={s}s");
            print!("{}", gort::runtime::metrics().to_text());
        }
        println!("--- task dump (first lines)");
        for line in gort::runtime::dump().lines().take(8) {
            println!("{line}");
        }
    });
}
