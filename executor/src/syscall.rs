//! `block_in_place`: Go's `entersyscall` / `exitsyscall` for a blocking
//! section inside a task's poll.
//!
//! The M stays where it is (the closure runs on this thread, borrowing the
//! task's locals); only its P is offered up: the P's status word goes from
//! `POLLING` to `SYSCALL` (pstatus.rs), and sysmon hands the P to another M
//! once the section has lasted one sysmon tick (>= 20 us) while work waits
//! (sysmon.rs). On return:
//! 1. fast path (`exitsyscallfast`): the word is still `SYSCALL`; CAS it back
//!    to `POLLING` and carry on with the same P;
//! 2. slow path: the P was handed off; take any idle P and park it in its
//!    slot for the rest of the poll;
//! 3. slowest: no idle P; the poll finishes without a P (wakes go to the
//!    global queue) and the M then parks as a spare (m.rs,
//!    `Idle::acquire_or_stop`).
//!
//! Outside a gort M (a `block_on` thread, a blocking-pool thread, a plain
//! thread) there is no P to offer and the closure simply runs.

use crate::context;
use crate::m::MCore;
use crate::pstatus::PollToken;

/// Runs `f`, a blocking section, on this thread while the rest of this M's
/// P moves to another M if `f` takes long and other tasks wait (Go's
/// `entersyscall`/`exitsyscall`).
///
/// Use it for blocking work that must borrow the task's state; for work that
/// can be moved, `spawn_blocking` frees this thread entirely.
///
/// # Runtime shutdown
/// The section is part of its task's poll, and dropping the runtime waits
/// for every poll in progress: the drop returns once the section (and the
/// rest of that poll) has ended. `Runtime::shutdown_timeout` stops waiting
/// at its timeout; the section then still runs to its end on its detached
/// thread, which cancels its task when the poll returns. (`tests/sysmon.rs`,
/// `runtime_drop_waits_for_a_block_in_place_section_and_shutdown_timeout_does_not`.)
///
/// ```
/// let rt = gort_executor::Runtime::new().unwrap();
/// let n = rt.block_on(async {
///     gort_executor::spawn(async {
///         gort_executor::task::block_in_place(|| {
///             std::thread::sleep(std::time::Duration::from_millis(5));
///             7
///         })
///     })
///     .await
///     .unwrap()
/// });
/// assert_eq!(n, 7);
/// ```
pub fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    context::with_current_m(|m| {
        let Some(m) = m else { return f() };
        let Some(token) = m.polling() else {
            return f();
        };
        if !m.slot().enter_syscall(token) {
            // Sysmon already took the P during this poll: nothing to offer.
            return f();
        }
        let _exit = ExitSyscall { m, token };
        f()
    })
}

/// Runs `exitsyscall` when the section ends, also by unwinding, so the M
/// never keeps a stale claim on a P.
struct ExitSyscall<'a> {
    m: &'a MCore,
    token: PollToken,
}

impl Drop for ExitSyscall<'_> {
    fn drop(&mut self) {
        let shared = &self.m.handle.shared;
        if self.m.slot().exit_syscall(self.token) {
            return;
        }
        // Slow path: our P went to another M. Take any idle P for the rest
        // of the poll, else finish the poll without one.
        let curp = shared.idle.try_take_p().map(|p| {
            let id = p.id;
            let task = context::current_task_id().map_or(0, |t| t.as_u64());
            // The M's loop finds the new poll with `PSlot::current`.
            let _ = self.m.slot().enter(p, task);
            id
        });
        self.m.took_p_in_poll(curp);
    }
}
