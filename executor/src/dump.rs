//! The task dump (Go's goroutine dump, `SIGQUIT` / `runtime.Stack(all)`).
//!
//! [`Handle::dump`] lists every live task of a runtime: id, name, state in
//! Go's words, time in that state, spawn location, and for a running task
//! the M and P polling it. The list is walked shard by shard under each
//! shard's lock (list.rs), so a dump of a runtime with a million tasks holds
//! each lock for a fraction of them and never stops the Ms.
//!
//! Time in state, as Go prints it (`[waiting, 1.2s]`, `[runnable, 35us]`,
//! `[syscall, 12ms, M1 P0]`, `[waiting, 3 minutes]`):
//! - runnable and waiting: since the stamp the task's state word carries
//!   (task/state.rs, bits 32..64), written by the transition into the state
//!   from the coarse clock (metrics/since.rs). The cell does not grow for it
//!   (its size is asserted in tests/task_unit.rs): the stamp takes the top
//!   half of the reference count. The time shown is never shorter than the
//!   real one and longer by at most one sysmon tick (10 ms) and 65 us.
//! - running and syscall: the M and P polling it and, when sysmon has
//!   watched that poll, how long it has run (sysmon's resolution: one of its
//!   ticks, 20 us to 10 ms).
//!
//! With `GORT_DEBUG=sigquit=1` (read when a runtime starts) a `SIGQUIT`
//! prints the dump of every runtime of the process to stderr and the
//! program goes on. The signal handler only writes one byte to a pipe (an
//! async-signal-safe `write`; no allocation, no lock); a dedicated thread
//! reads the pipe and prints.

use std::fmt::Write as _;
use std::time::Duration;

use crate::metrics::{self, since};
use crate::pstatus;
use crate::runtime::Handle;
use crate::task::state::GStatus;

impl Handle {
    /// The goroutine-style dump of this runtime's live tasks, one paragraph
    /// per task (see the module doc of `gort::runtime::dump`).
    pub fn dump(&self) -> String {
        let shared = &self.shared;
        let nprocs = shared.idle.nprocs();
        // Which P (and M) each running task is polled on, from the status
        // slots (pstatus.rs), read before the walk.
        let polling = metrics::polls_in_progress(shared);
        let mut out = String::new();
        let mut n = 0usize;
        shared.owned.for_each(|task| {
            n += 1;
            let id = task.id().as_u64();
            let snapshot = task.header().state.load();
            let status = snapshot.g_status();
            let on = polling.iter().find(|poll| poll.task == id);
            let word = match status {
                GStatus::Running
                    if on.is_some_and(|poll| pstatus::status(poll.word) == pstatus::SYSCALL) =>
                {
                    "syscall"
                }
                GStatus::Runnable => "runnable",
                GStatus::Running => "running",
                GStatus::Waiting => "waiting",
                GStatus::Syscall => "syscall",
                GStatus::Idle => "idle",
                GStatus::Dead => "dead",
            };
            let _ = write!(out, "task {id}");
            if let Some(name) = metrics::name(id) {
                let _ = write!(out, " {name:?}");
            }
            let _ = write!(out, " [{word}");
            if matches!(status, GStatus::Runnable | GStatus::Waiting) {
                let _ = write!(out, ", {}", human(since::elapsed_since(snapshot.stamp())));
            }
            if let (GStatus::Running, Some(poll)) = (status, on) {
                let now = shared.sysmon.start.elapsed();
                if let Some(ran) = shared.diag.poll_age(poll.slot, poll.word, now) {
                    let _ = write!(out, ", {}", human(ran));
                }
                let _ = write!(out, ", M{} P{}", poll.m, poll.p);
            }
            let _ = writeln!(out, "]:\n\tspawned at {}", task.spawned_at());
        });
        format!(
            "gort: {n} live tasks ({nprocs} Ps, {} in the global queue)\n\n{out}",
            shared.inject.len()
        )
    }
}

/// `1.5s`, `320ms`, `12us`, or Go's `3 minutes` past a minute.
fn human(d: Duration) -> String {
    if d.as_secs() >= 60 {
        format!("{} minutes", d.as_secs() / 60)
    } else if d.as_secs() >= 1 {
        format!("{:.1}s", d.as_secs_f64())
    } else if d.as_millis() >= 1 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// Registers a started runtime for the SIGQUIT dump and installs the
/// handler on first use, when its `GORT_DEBUG` has `sigquit=1` (parsed with
/// the other settings, sysmon.rs).
pub(crate) fn on_runtime_start(handle: &Handle) {
    #[cfg(all(unix, not(loom)))]
    if handle.shared.config.debug.sigquit {
        sigquit::register(handle);
    }
    #[cfg(any(not(unix), loom))]
    let _ = handle;
}

#[cfg(all(unix, not(loom)))]
mod sigquit {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::sync::{OnceLock, Weak};

    use gort_netpoll::loom::sync::atomic::{AtomicI32, Ordering::Relaxed};
    use gort_netpoll::loom::sync::{Arc, Mutex};

    use crate::runtime::Handle;
    use crate::scheduler::Shared;

    /// Runtimes to dump; dead ones are skipped and pruned.
    static RUNTIMES: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());
    /// Write end of the self-pipe, -1 until installed.
    static PIPE_W: AtomicI32 = AtomicI32::new(-1);
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

    pub(super) fn register(handle: &Handle) {
        let installed = INSTALLED.get_or_init(install);
        if let Err(e) = installed {
            eprintln!("gort: GORT_DEBUG=sigquit=1: cannot install the SIGQUIT handler: {e}");
            return;
        }
        let mut rts = RUNTIMES.lock().unwrap();
        rts.retain(|w| w.strong_count() > 0);
        rts.push(Arc::downgrade(&handle.shared));
    }

    extern "C" fn on_sigquit(_sig: libc::c_int) {
        let fd = PIPE_W.load(Relaxed);
        if fd >= 0 {
            let byte = 1u8;
            // SAFETY: `write` is async-signal-safe; `fd` is the pipe's write
            // end, open for the life of the process (install never closes
            // it); the buffer is one live byte on this stack. A full pipe
            // (EAGAIN, non-blocking) means a dump is already pending.
            unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
        }
    }

    fn install() -> Result<(), String> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        // The read end blocks: the dump thread sleeps in read.
        // SAFETY: fds[0] is the read end pipe2 just opened.
        unsafe {
            let flags = libc::fcntl(fds[0], libc::F_GETFL);
            libc::fcntl(fds[0], libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
        // SAFETY: fds[0] is open and owned by nobody else; the File takes it.
        let mut reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        PIPE_W.store(fds[1], Relaxed);
        std::thread::Builder::new()
            .name("gort-sigquit".into())
            .spawn(move || {
                let mut byte = [0u8; 1];
                while let Ok(1) = reader.read(&mut byte) {
                    let rts: Vec<_> = RUNTIMES.lock().unwrap().clone();
                    let mut text = String::from("SIGQUIT: gort task dump\n");
                    for shared in rts.iter().filter_map(Weak::upgrade) {
                        text.push_str(&Handle { shared }.dump());
                        text.push('\n');
                    }
                    // Not eprint!: it panics on a closed stderr, and a test
                    // harness would capture it.
                    let _ = std::io::stderr().lock().write_all(text.as_bytes());
                }
            })
            .map_err(|e| e.to_string())?;
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
        // the handler only does an async-signal-safe write (on_sigquit).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigquit as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGQUIT, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
        }
        Ok(())
    }
}
