//! `GORT_DEBUG=sigquit=1`: SIGQUIT prints the task dump to stderr and the
//! program goes on. Own test binary: it sets the environment and redirects
//! the process's stderr.

#![cfg(all(unix, not(loom)))]

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

const GENEROUS: Duration = Duration::from_secs(20);

#[test]
fn sigquit_prints_the_dump_and_the_program_goes_on() {
    // SAFETY: this binary's only test; no other thread reads the environment yet.
    unsafe { std::env::set_var("GORT_DEBUG", "schedtrace=0,sigquit=1") };
    let rt = gort_executor::Builder::new()
        .worker_threads(2)
        .build()
        .unwrap();
    let (tx, rx) = oneshot::channel::<u32>();
    let line = line!() + 1;
    let h = rt.spawn(async { rx.await.unwrap() });
    let deadline = Instant::now() + GENEROUS;
    while !rt.handle().dump().contains("[waiting") {
        assert!(Instant::now() < deadline, "the task never waits");
        std::thread::yield_now();
    }

    // Route fd 2 into a pipe we read (the dump thread writes there).
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array for pipe to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: plain fd calls on descriptors we own; saved is restored below.
    let saved = unsafe { libc::dup(2) };
    // SAFETY: as above.
    assert!(unsafe { libc::dup2(fds[1], 2) } >= 0);
    // SAFETY: fds[0] is ours; the File owns it from here.
    let mut reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let (text_tx, text_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0
                || text_tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });

    // SAFETY: raising a signal whose handler gort installed.
    assert_eq!(unsafe { libc::raise(libc::SIGQUIT) }, 0);
    let deadline = Instant::now() + GENEROUS;
    let mut got = String::new();
    let want = format!("sigquit.rs:{line}:");
    while !(got.contains("SIGQUIT: gort task dump") && got.contains(&want)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match text_rx.recv_timeout(left) {
            Ok(s) => got.push_str(&s),
            Err(_) => break,
        }
    }
    // SAFETY: restore the original stderr and close our write end.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
        libc::close(fds[1]);
    }
    assert!(
        got.contains("SIGQUIT: gort task dump"),
        "no dump on stderr: {got:?}"
    );
    assert!(
        got.contains("[waiting") && got.contains(&want),
        "dump lacks the waiting task: {got}"
    );

    // The program goes on.
    tx.send(5).unwrap();
    assert_eq!(rt.block_on(h).unwrap(), 5);
}
