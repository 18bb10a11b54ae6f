//! The heavy half of an asymmetric fence: Linux `membarrier(2)`.
//!
//! `MEMBARRIER_CMD_PRIVATE_EXPEDITED` makes every thread of this process
//! that is running on a CPU execute a full memory barrier before the call
//! returns (threads not running pass through a context switch, itself a
//! barrier). A protocol whose hot side runs often and whose cold side runs
//! rarely can then give the hot side a compiler-only fence and the cold side
//! this call: together they order a store before a later load of another
//! location on both sides, as two `fence(SeqCst)` would (pstatus.rs uses it
//! for sysmon's retake against the owner M's polls).
//!
//! The process must register once before the command works; registration
//! is attempted on first use and its result kept for the life of the
//! process. Where it fails (not Linux, a kernel before 4.14, a seccomp
//! filter that refuses the syscall) `available` is false and callers use
//! symmetric `fence(SeqCst)`s instead. Under loom it is always false: loom
//! cannot model a barrier executed by other threads, and the symmetric
//! fences are what its models check.
//!
//! gort-alloc's GC has its own copy of these few lines (`gc/barrier.rs`):
//! the executor may not depend on the allocator, and the allocator stands
//! alone.

use std::sync::OnceLock;

/// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (linux/membarrier.h).
#[cfg(all(target_os = "linux", not(loom)))]
const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
/// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED` (linux/membarrier.h).
#[cfg(all(target_os = "linux", not(loom)))]
const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Whether `all_threads` works in this process (registers on first call).
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(register)
}

/// Registers the process for expedited membarriers and checks the command
/// itself once; true if both succeed.
fn register() -> bool {
    #[cfg(all(target_os = "linux", not(loom)))]
    {
        // SAFETY: membarrier takes two integer arguments (and a CPU id we
        // pass as 0) and touches no memory of ours; failure is reported by
        // the return value.
        let registered =
            unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) } == 0;
        // SAFETY: as above.
        registered && unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) } == 0
    }
    #[cfg(not(all(target_os = "linux", not(loom))))]
    {
        false
    }
}

/// Makes every running thread of the process execute a full memory barrier.
///
/// Call only after `available` returned true. A failure after a successful
/// registration would silently break the protocols that rely on it (two Ms
/// on one P), so it aborts with a message instead.
pub(crate) fn all_threads() {
    #[cfg(all(target_os = "linux", not(loom)))]
    {
        // SAFETY: as in `register`.
        let result = unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) };
        if result != 0 {
            eprintln!(
                "gort: membarrier(PRIVATE_EXPEDITED) failed after registration ({}); aborting",
                std::io::Error::last_os_error()
            );
            std::process::abort();
        }
    }
}

/// How the P status handshake's heavy side is done, for schedtrace.
pub(crate) fn describe() -> &'static str {
    if available() {
        "membarrier (owner M: compiler fence only)"
    } else {
        "fence (membarrier unavailable: SeqCst fence on both sides)"
    }
}

#[cfg(all(test, not(loom), target_os = "linux"))]
mod tests {
    #[test]
    fn registers_on_linux_and_the_barrier_returns() {
        // Every kernel this project supports (>= 4.14) has the command; a
        // seccomp sandbox may refuse it, in which case the fallback is used.
        if super::available() {
            super::all_threads();
            assert!(super::describe().starts_with("membarrier"));
        } else {
            assert!(super::describe().starts_with("fence"));
        }
    }
}
