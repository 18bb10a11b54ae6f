//! What the OS knows of an M's thread that sysmon cannot see in the M's own
//! words: how much CPU it has had and whether it is asleep in the kernel.
//!
//! # Purpose
//! Sysmon zeroes the budget of a poll that overruns its time slice and then
//! gives it `PREEMPT_GRACE` (1 ms) to yield before it hands the P off
//! (sysmon.rs). Wall time alone cannot tell the three reasons a poll may
//! still be running after that:
//! - it runs and ignores its budget (a loop on a future that is not gort's):
//!   its thread's CPU clock advanced by the grace;
//! - it is blocked in the kernel (a sleep, a syscall, a lock): the thread is
//!   not runnable;
//! - the OS has not let it run (a loaded machine): the thread is runnable
//!   but its CPU clock hardly moved. It will yield as soon as it runs;
//!   handing its P to a new M only adds a thread to an oversubscribed
//!   machine. Before this file, that was most handoffs under load (a third
//!   M in the echo benchmark, docs/BENCHMARKS.md).
//!
//! # States
//! `MThread::word` (an `AtomicU64`): 0 until the M's thread records itself;
//! then bits 0..32 its Linux thread id and bits 32..64 its CPU-time clock
//! id (`pthread_getcpuclockid`) as a `u32`. Written once, by the M's thread
//! at its start (`record_current`), before it polls anything.
//!
//! # Ownership and orderings
//! Written by the M's thread, read by sysmon. Relaxed: a reader that sees 0
//! just has no OS view of that M this tick (the caller falls back to wall
//! time); the ids themselves carry no other data.
//!
//! # Rejected alternatives
//! - `/proc/self/task/TID/schedstat` for the run-queue wait: the kernel adds
//!   a wait to it only when the thread gets a CPU, so a thread waiting right
//!   now looks as if it had run.
//! - The CPU time in `/proc/.../stat`: clock ticks (10 ms), coarser than the
//!   grace. `clock_gettime` on the thread's clock is exact.
//!
//! Elsewhere than Linux (and under loom) nothing is recorded and sysmon uses
//! the wall clock alone, as it did before.
//!
//! # Checked by
//! The unit tests below, and `tests/sysmon.rs`'
//! `a_preempted_poll_yields_instead_of_losing_its_p`, which counts handoffs
//! of a budget-yielding hog while CPU spinners load the machine.

use std::time::Duration;

use gort_netpoll::loom::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// An M's thread as the OS names it (see the module doc).
pub(crate) struct MThread {
    word: AtomicU64,
}

/// One read of an `MThread`: the ids to ask the OS about.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OsIds {
    #[cfg_attr(not(all(target_os = "linux", not(loom))), allow(dead_code))]
    tid: u32,
    #[cfg_attr(not(all(target_os = "linux", not(loom))), allow(dead_code))]
    clock: u32,
}

impl MThread {
    pub(crate) fn new() -> MThread {
        MThread {
            word: AtomicU64::new(0),
        }
    }

    /// Called by the M's own thread, once, before it polls: records its ids.
    pub(crate) fn record_current(&self) {
        if let Some(ids) = current_ids() {
            let word = u64::from(ids.tid) | (u64::from(ids.clock) << 32);
            self.word.store(word, Relaxed);
        }
    }

    /// The ids, once the thread recorded them.
    pub(crate) fn ids(&self) -> Option<OsIds> {
        let word = self.word.load(Relaxed);
        (word != 0).then_some(OsIds {
            tid: word as u32,
            clock: (word >> 32) as u32,
        })
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
fn current_ids() -> Option<OsIds> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `pthread_self` is this live thread; `clock` is a valid place
    // for the result, written only on success (the return value says).
    if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } != 0 {
        return None;
    }
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    Some(OsIds {
        tid: u32::try_from(tid).ok()?,
        clock: clock as u32,
    })
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn current_ids() -> Option<OsIds> {
    None
}

impl OsIds {
    /// CPU time the thread has used, exact to the nanosecond (the kernel
    /// brings a running thread's count up to date for the call).
    #[cfg(all(target_os = "linux", not(loom)))]
    pub(crate) fn cpu_time(self) -> Option<Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid place for the result. A clock id of a
        // thread that has exited makes the call fail (EINVAL), not misbehave.
        if unsafe { libc::clock_gettime(self.clock as libc::clockid_t, &mut ts) } != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(ts.tv_sec).ok()?,
            u32::try_from(ts.tv_nsec).ok()?,
        ))
    }

    #[cfg(not(all(target_os = "linux", not(loom))))]
    pub(crate) fn cpu_time(self) -> Option<Duration> {
        None
    }

    /// Whether the thread is running or waiting for a CPU (`R` in
    /// `/proc/self/task/TID/stat`), rather than asleep in the kernel.
    /// `None` when the file cannot be read.
    #[cfg(all(target_os = "linux", not(loom)))]
    pub(crate) fn is_runnable(self) -> Option<bool> {
        let path = format!("/proc/self/task/{}/stat", self.tid);
        let stat = std::fs::read_to_string(path).ok()?;
        state_of_stat(&stat).map(|s| s == 'R')
    }

    #[cfg(not(all(target_os = "linux", not(loom))))]
    pub(crate) fn is_runnable(self) -> Option<bool> {
        None
    }
}

/// The state letter of a `/proc/.../stat` line: the first field after the
/// command name, which is in parentheses and may itself hold `)` or spaces.
#[cfg_attr(not(all(target_os = "linux", not(loom))), allow(dead_code))]
fn state_of_stat(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_the_state_after_an_awkward_command_name() {
        assert_eq!(state_of_stat("42 (gort-m-0) R 1 2 3"), Some('R'));
        assert_eq!(state_of_stat("42 (a) b (c)) S 1 2"), Some('S'));
        assert_eq!(state_of_stat("42 (x"), None);
        assert_eq!(state_of_stat("42 (x)"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sees_a_sleeping_thread_and_a_spinning_one() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        use std::time::Instant;

        let spin = Arc::new(AtomicBool::new(true));
        let (tx, rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let s = spin.clone();
        let spinner = std::thread::spawn(move || {
            let me = MThread::new();
            me.record_current();
            tx.send(me.ids().expect("Linux records the ids")).unwrap();
            while s.load(SeqCst) {
                std::hint::spin_loop();
            }
            // Now asleep in the kernel until released.
            let _ = release_rx.recv();
        });
        let ids = rx.recv().unwrap();
        let t0 = ids.cpu_time().expect("the thread's CPU clock");
        let start = Instant::now();
        while ids.cpu_time().unwrap() < t0 + Duration::from_millis(5) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "a spinning thread's CPU clock did not advance 5 ms in 20 s"
            );
            std::thread::yield_now();
        }
        assert_eq!(ids.is_runnable(), Some(true), "a spinning thread is R");
        spin.store(false, SeqCst);
        let start = Instant::now();
        while ids.is_runnable() != Some(false) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "a thread blocked in recv never showed as asleep"
            );
            std::thread::yield_now();
        }
        release_tx.send(()).unwrap();
        spinner.join().unwrap();
    }
}
