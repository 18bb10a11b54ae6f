//! The scavenger (Go's `bgscavenge`): returns free pages to the OS.
//!
//! - Background: a thread started with the heap's first arena wakes every
//!   `TICK` and releases (`madvise(MADV_DONTNEED)`) pages that have stayed
//!   free for a whole tick, at most `PAGES_PER_TICK` per tick. Releasing
//!   16 MiB costs well under a millisecond, so the pace stays near Go's 1%
//!   of one CPU even when it works every tick.
//! - Memory limit (`set_memory_limit`, env `GORT_MEMLIMIT`, Go's
//!   `GOMEMLIMIT`): while mapped-and-unreleased memory is above it, the
//!   scavenger releases every free page, young or not, and ticks at
//!   `LIMIT_TICK`; the mheap also scavenges synchronously when growing
//!   past it. The limit is soft: live memory above it is never refused.
//! - `free_os_memory()` (Go's `debug.FreeOSMemory`) releases every free page
//!   at once. gort-alloc frees eagerly, so unlike Go no collection is needed.
//!
//! The thread is a raw pthread: `std::thread::spawn` allocates through the
//! global allocator, which may be this arena (and may be in the middle of
//! growing it).

use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::mheap::HEAP;
use crate::sizeclass::PAGE_SIZE;
use std::time::Duration;

/// Background pace.
#[cfg_attr(loom, allow(dead_code, reason = "no scavenger thread under loom"))]
const TICK: Duration = Duration::from_secs(1);
/// Pace while above the memory limit.
#[cfg_attr(loom, allow(dead_code, reason = "no scavenger thread under loom"))]
const LIMIT_TICK: Duration = Duration::from_millis(10);
/// Most pages released per background tick (16 MiB).
#[cfg_attr(loom, allow(dead_code, reason = "no scavenger thread under loom"))]
const PAGES_PER_TICK: usize = 2048;

crate::loom::global! {
    static STARTED: AtomicBool = AtomicBool::new(false);
}

/// Returns every free page to the OS now; returns the bytes released.
pub fn free_os_memory() -> usize {
    HEAP.release_spare_spans();
    HEAP.scavenge(usize::MAX, false) * PAGE_SIZE
}

/// Sets the soft memory limit in bytes (`usize::MAX`: none, the default) and
/// returns the previous one. Above the limit the scavenger releases free
/// pages eagerly; allocation is never refused because of it. The collector
/// starts cycles before the heap reaches it.
pub fn set_memory_limit(bytes: usize) -> usize {
    let old = HEAP.memory_limit.swap(bytes, Ordering::Relaxed);
    if over_limit() {
        HEAP.release_spare_spans();
        HEAP.scavenge(usize::MAX, false);
    }
    // The collector's pacer starts cycles before the limit (gc/pacer.rs).
    #[cfg(not(loom))]
    crate::gc::pacer::limit_changed();
    old
}

/// The current soft memory limit in bytes (`usize::MAX`: none).
pub fn memory_limit() -> usize {
    HEAP.memory_limit.load(Ordering::Relaxed)
}

fn over_limit() -> bool {
    let sys = HEAP.sys_pages.load(Ordering::Relaxed);
    let released = HEAP.released_pages.load(Ordering::Relaxed);
    (sys - released.min(sys)) * PAGE_SIZE > HEAP.memory_limit.load(Ordering::Relaxed)
}

/// Parses a `GORT_MEMLIMIT` value: bytes, optionally with a `B`, `KiB`,
/// `MiB`, `GiB` or `TiB` suffix (Go's `GOMEMLIMIT` syntax), or `off`.
pub fn parse_memory_limit(s: &str) -> Result<usize, &'static str> {
    let s = s.trim();
    if s == "off" {
        return Ok(usize::MAX);
    }
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err("GORT_MEMLIMIT must start with a number of bytes");
    }
    let n: usize = s[..digits]
        .parse()
        .map_err(|_| "GORT_MEMLIMIT number is too large")?;
    let unit: usize = match &s[digits..] {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err("GORT_MEMLIMIT suffix must be one of B, KiB, MiB, GiB, TiB"),
    };
    n.checked_mul(unit)
        .ok_or("GORT_MEMLIMIT is larger than the address space")
}

/// Reads `GORT_MEMLIMIT` without allocating; a bad value is reported on
/// stderr and ignored.
fn apply_env_limit() {
    // SAFETY: getenv with a NUL-terminated name; the result is read at once.
    let v = unsafe { libc::getenv(c"GORT_MEMLIMIT".as_ptr()) };
    if v.is_null() {
        return;
    }
    // SAFETY: getenv returned a NUL-terminated string owned by the environment.
    let bytes = unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes();
    let parsed = std::str::from_utf8(bytes)
        .map_err(|_| "GORT_MEMLIMIT is not UTF-8")
        .and_then(parse_memory_limit);
    match parsed {
        Ok(limit) => {
            HEAP.memory_limit.store(limit, Ordering::Relaxed);
        }
        Err(msg) => {
            let prefix = b"gort-alloc: ignoring GORT_MEMLIMIT: ";
            // SAFETY: writing our own buffers to stderr.
            unsafe {
                libc::write(2, prefix.as_ptr().cast(), prefix.len());
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::write(2, b"\n".as_ptr().cast(), 1);
            }
        }
    }
}

/// Starts the background scavenger once (called when the heap first grows,
/// with the mheap lock held: it only reads the environment and creates a
/// thread, neither of which allocates through the global allocator).
pub(crate) fn ensure_started() {
    if crate::loom::IS_LOOM || STARTED.swap(true, Ordering::Relaxed) {
        return;
    }
    apply_env_limit();
    #[cfg(not(loom))]
    spawn();
}

#[cfg(not(loom))]
fn spawn() {
    extern "C" fn run(_: *mut libc::c_void) -> *mut libc::c_void {
        loop {
            // Spares are for bursts between ticks; a tick returns them.
            HEAP.release_spare_spans();
            if over_limit() {
                HEAP.scavenge(usize::MAX, false);
                std::thread::sleep(LIMIT_TICK);
            } else {
                HEAP.scavenge(PAGES_PER_TICK, true);
                std::thread::sleep(TICK);
            }
        }
    }
    let mut tid: libc::pthread_t = 0;
    // SAFETY: `run` has the signature pthread expects and ignores its
    // argument; default attributes; the thread is detached below.
    let rc = unsafe { libc::pthread_create(&mut tid, std::ptr::null(), run, std::ptr::null_mut()) };
    if rc == 0 {
        // SAFETY: `tid` is the thread just created, never joined.
        unsafe { libc::pthread_detach(tid) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    use crate::global::{free, malloc};

    /// The tests below share the one heap and its memory limit: while
    /// `memory_limit_and_free_os_memory_release_at_once` has the limit at
    /// 1 byte, any allocation releases every free page, which would
    /// release another test's fresh run under its feet. They take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A freed 512 KiB object: its 64 pages are free and not yet idle.
    fn freed_run() -> usize {
        let p = malloc(512 << 10, 8);
        assert!(!p.is_null());
        // SAFETY: `p` holds 512 KiB; touch it so there is something to release.
        unsafe { p.write_bytes(1, 512 << 10) };
        free(p).unwrap();
        p as usize
    }

    #[test]
    fn pages_are_released_only_after_a_whole_pass_free() {
        let _serial = serial();
        let p = freed_run();
        let (free_now, released, _) = HEAP.page_state(p);
        assert!(free_now && !released);
        // First pass: too young; it becomes idle.
        HEAP.scavenge(usize::MAX, true);
        let (free_now, released, idle) = HEAP.page_state(p);
        if free_now && !released {
            // (Another test may have reused and freed the run meanwhile.)
            assert!(idle, "a free page is marked idle by a pass");
            HEAP.scavenge(usize::MAX, true);
            let (free_now, released, _) = HEAP.page_state(p);
            assert!(
                !free_now || released,
                "an idle page is released by the next pass"
            );
        }
    }

    #[test]
    fn memory_limit_and_free_os_memory_release_at_once() {
        let _serial = serial();
        let p = freed_run();
        let old = set_memory_limit(1);
        let (free_now, released, _) = HEAP.page_state(p);
        assert!(
            !free_now || released,
            "over the limit, free pages go back at once"
        );
        assert_eq!(set_memory_limit(old), 1);
        assert_eq!(memory_limit(), old);
        let q = freed_run();
        assert!(free_os_memory() > 0 || HEAP.page_state(q).1);
        let (free_now, released, _) = HEAP.page_state(q);
        assert!(!free_now || released);
    }

    #[test]
    fn background_scavenger_releases_idle_pages() {
        let _serial = serial();
        let p = freed_run();
        // Two ticks of the background thread (1 s each); allow 20 s on a
        // loaded machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (free_now, released, _) = HEAP.page_state(p);
            if !free_now || released {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "background scavenger released nothing in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn memlimit_syntax() {
        assert_eq!(parse_memory_limit("1024"), Ok(1024));
        assert_eq!(parse_memory_limit("64MiB"), Ok(64 << 20));
        assert_eq!(parse_memory_limit(" 2GiB "), Ok(2 << 30));
        assert_eq!(parse_memory_limit("off"), Ok(usize::MAX));
        assert!(parse_memory_limit("MiB").is_err());
        assert!(parse_memory_limit("12XB").is_err());
        assert!(parse_memory_limit("99999999999999999999999").is_err());
        assert!(parse_memory_limit("17179869184TiB").is_err());
    }
}
