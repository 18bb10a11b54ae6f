//! Running out of descriptors on accept is an error the caller can back off
//! from, not a panic, and the queued connection is still there afterwards.
//!
//! Alone in its own test binary: it lowers the process's RLIMIT_NOFILE.

mod common;

use common::{Runtime, within};
use gort_netpoll::net::TcpListener;

fn lowest_free_fd() -> i32 {
    // SAFETY: dup of stdin returns the lowest free descriptor number (or -1);
    // we close it at once and own nothing else through it.
    unsafe {
        let fd = libc::dup(0);
        assert!(fd >= 0, "dup: {}", std::io::Error::last_os_error());
        libc::close(fd);
        fd
    }
}

#[test]
#[cfg(target_os = "linux")]
fn accept_at_the_descriptor_limit_returns_emfile_then_recovers() {
    within(30, "accept under EMFILE", || {
        let rt = Runtime::new();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // Connect with std first: the connection waits in the backlog.
            let client = std::net::TcpStream::connect(addr).unwrap();

            // The limit becomes the lowest free descriptor number (EMFILE
            // means "no free number below the soft limit").
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
            let saved = lim;
            lim.rlim_cur = lowest_free_fd() as libc::rlim_t;
            // SAFETY: `lim` is a valid rlimit; lowering the soft limit is
            // always permitted.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);

            let err = listener.accept().await.expect_err("no descriptor left");
            // SAFETY: as above; restoring the saved soft limit.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &saved) }, 0);
            assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");

            // Back off done: the same connection is accepted now.
            let (s, peer) = listener.accept().await.expect("accept after the limit");
            assert_eq!(peer, client.local_addr().unwrap());
            drop(s);
        });
    });
}
