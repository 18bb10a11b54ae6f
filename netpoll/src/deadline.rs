//! Sub-millisecond poll deadlines.
//!
//! `epoll_wait` and `kevent` through mio take a timeout that mio rounds *up*
//! to whole milliseconds, so a poll meant to end at a 1 ms timer could end
//! up to 1 ms late; the runtime's timers need p99 lateness under 0.3 ms.
//!
//! On Linux (and Android) the poller therefore keeps one `timerfd`
//! (`CLOCK_MONOTONIC`, the clock behind `std::time::Instant` there) in its
//! own mio `Poll` under [`TOKEN_TIMER`](crate::slab::TOKEN_TIMER). Before a
//! poll with a deadline it is armed with the remaining time in nanoseconds;
//! its expiry is an ordinary event that ends the `epoll_wait`. mio's rounded
//! timeout is still passed as a backstop, so a failed arm costs precision,
//! never a hang.
//!
//! Rejected alternatives:
//! - `epoll_pwait2` (Linux 5.11+, nanosecond timeout): mio does not expose it
//!   and calling it would mean bypassing mio's `Poll` for the wait.
//! - Polling with a zero timeout and spinning until the deadline: burns a core.
//!
//! Elsewhere [`DeadlineTimer`] does nothing and deadlines round up to 1 ms.

use std::io;
use std::time::Duration;

/// The poller's precise-deadline source; a no-op where timerfd is missing.
#[derive(Debug)]
pub(crate) struct DeadlineTimer {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: std::os::fd::OwnedFd,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    _none: (),
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl DeadlineTimer {
    /// Creates the timerfd and registers it with `registry`.
    pub(crate) fn new(registry: &mio::Registry) -> io::Result<DeadlineTimer> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

        // SAFETY: timerfd_create takes no pointers; the result is checked.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd returned by timerfd_create just above
        // and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            mio::Token(crate::slab::TOKEN_TIMER),
            mio::Interest::READABLE,
        )?;
        Ok(DeadlineTimer { fd })
    }

    /// Arms the timer to expire `after` from now (one-shot).
    pub(crate) fn arm(&self, after: Duration) -> io::Result<()> {
        // A zero it_value would disarm the timer: keep at least 1 ns.
        self.settime(after.max(Duration::from_nanos(1)))
    }

    /// Stops a pending expiry (before a poll with no deadline, so a timer
    /// left from an earlier poll does not end it early).
    pub(crate) fn disarm(&self) -> io::Result<()> {
        self.settime(Duration::ZERO)
    }

    fn settime(&self, after: Duration) -> io::Result<()> {
        use std::os::fd::AsRawFd;

        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `self.fd` is a live timerfd (owned by self); `spec` is a
        // valid itimerspec on our stack and the old-value pointer may be null.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes an expiry so the counter does not grow; called when the
    /// timer's token shows up in a poll.
    pub(crate) fn acknowledge(&self) {
        use std::os::fd::AsRawFd;

        let mut expirations = 0u64;
        // SAFETY: `self.fd` is a live timerfd; the buffer is a u64 on our
        // stack, the size timerfd reads require. A failure (EAGAIN when
        // already drained) is harmless and ignored.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut expirations as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl DeadlineTimer {
    /// No precise timer on this platform.
    pub(crate) fn new(_registry: &mio::Registry) -> io::Result<DeadlineTimer> {
        Ok(DeadlineTimer { _none: () })
    }

    /// Deadlines round up to whole milliseconds here.
    pub(crate) fn arm(&self, _after: Duration) -> io::Result<()> {
        Ok(())
    }

    /// Nothing to consume.
    pub(crate) fn acknowledge(&self) {}

    /// Nothing to stop.
    pub(crate) fn disarm(&self) -> io::Result<()> {
        Ok(())
    }
}
