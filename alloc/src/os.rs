//! The arena's only contact with the operating system: reserve, release and
//! return pages (mmap, munmap, madvise), and a fixed-size allocator for the
//! arena's own metadata (spans, arena headers, per-thread stats blocks).
//!
//! Nothing here allocates through Rust's global allocator: gort-alloc may
//! *be* the global allocator, and a metadata allocation that re-entered it
//! would deadlock on the mheap lock or alias the calling thread's mcache.

use std::ptr;

/// Maps `len` bytes of fresh, zeroed, read-write memory, or returns `None`
/// when the OS refuses (`ENOMEM`, an impossible length).
pub(crate) fn map(len: usize) -> Option<*mut u8> {
    if len == 0 || len > isize::MAX as usize {
        return None;
    }
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory; the result is checked for
    // MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        Some(p.cast())
    }
}

/// Maps `len` bytes aligned to `align` (a power of two, a multiple of the OS
/// page): over-reserves by `align` and unmaps the unaligned head and tail.
pub(crate) fn map_aligned(len: usize, align: usize) -> Option<*mut u8> {
    let total = len.checked_add(align)?;
    let raw = map(total)? as usize;
    let start = (raw + align - 1) & !(align - 1);
    let head = start - raw;
    let tail = total - head - len;
    // SAFETY: [raw, raw + head) and [start + len, raw + total) lie inside the
    // mapping made just above and nothing refers to them.
    unsafe {
        if head > 0 {
            unmap(raw as *mut u8, head);
        }
        if tail > 0 {
            unmap((start + len) as *mut u8, tail);
        }
    }
    Some(start as *mut u8)
}

/// Unmaps `[p, p + len)`.
///
/// # Safety
/// The range was mapped by [`map`] and nothing refers to it any more.
pub(crate) unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe {
        libc::munmap(p.cast(), len);
    }
}

/// Returns the physical pages behind `[p, p + len)` to the OS. The range stays
/// mapped; touching it again faults in zeroed pages.
///
/// # Safety
/// The range is inside a mapping made by [`map`] and holds no live data.
pub(crate) unsafe fn release(p: *mut u8, len: usize) {
    if crate::loom::IS_LOOM {
        return;
    }
    // SAFETY: the caller guarantees the range is ours and free; MADV_DONTNEED
    // on a private anonymous mapping only discards contents.
    unsafe {
        libc::madvise(p.cast(), len, libc::MADV_DONTNEED);
    }
}

/// Bytes the OS reports resident for this process (from /proc/self/statm),
/// or `None` when it cannot be read. Reads with raw syscalls, so it is safe to
/// call while `SpanAlloc` is the global allocator.
pub fn resident_bytes() -> Option<usize> {
    let path = c"/proc/self/statm";
    // SAFETY: `path` is NUL-terminated; the fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 128];
    // SAFETY: `buf` is writable for its whole length and `fd` is open.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    if n <= 0 {
        return None;
    }
    // statm: "size resident shared text lib data dt", in OS pages.
    let text = &buf[..n as usize];
    let mut fields = text.split(|b| *b == b' ');
    fields.next()?;
    let resident = fields.next()?;
    let mut pages = 0usize;
    for &b in resident {
        if !b.is_ascii_digit() {
            return None;
        }
        pages = pages * 10 + (b - b'0') as usize;
    }
    // SAFETY: sysconf has no preconditions.
    let os_page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * os_page.max(4096) as usize)
}

/// Hands out zeroed, never-unmapped blocks of `size` bytes (aligned to 64),
/// carved from 256 KiB chunks mapped on demand, with a free list of returned
/// blocks threaded through their first word. Go's `fixalloc`.
///
/// Not thread-safe by itself: every caller holds the lock of the structure
/// that owns the `FixAlloc` (the mheap lock for spans).
#[cfg_attr(loom, allow(dead_code, reason = "loom builds metadata with Box"))]
pub(crate) struct FixAlloc {
    size: usize,
    free: *mut u8,
    chunk: *mut u8,
    chunk_left: usize,
}

// SAFETY: a FixAlloc is only reached through its owner's lock (see the type
// doc); the raw pointers it holds refer to memory that is never unmapped.
unsafe impl Send for FixAlloc {}

#[cfg_attr(loom, allow(dead_code))]
const FIX_CHUNK: usize = 256 << 10;

#[cfg_attr(loom, allow(dead_code))]
impl FixAlloc {
    /// An empty allocator of `size`-byte blocks (`size` at most 256 KiB).
    pub(crate) const fn new(size: usize) -> FixAlloc {
        FixAlloc {
            size: (size + 63) & !63,
            free: ptr::null_mut(),
            chunk: ptr::null_mut(),
            chunk_left: 0,
        }
    }

    /// A zeroed block, or `None` when the OS refuses a new chunk.
    pub(crate) fn alloc(&mut self) -> Option<*mut u8> {
        if !self.free.is_null() {
            let p = self.free;
            // SAFETY: blocks on the free list were returned by `free`, which
            // stored the next link in their first word; they are ours alone.
            unsafe {
                self.free = p.cast::<*mut u8>().read();
                p.write_bytes(0, self.size);
            }
            return Some(p);
        }
        if self.chunk_left < self.size {
            self.chunk = map(FIX_CHUNK)?;
            self.chunk_left = FIX_CHUNK;
        }
        let p = self.chunk;
        // SAFETY: chunk_left >= size, so the block and the advanced pointer
        // stay inside the chunk mapped above (fresh mappings are zeroed).
        self.chunk = unsafe { self.chunk.add(self.size) };
        self.chunk_left -= self.size;
        Some(p)
    }

    /// Returns a block for reuse.
    ///
    /// # Safety
    /// `p` came from this allocator's `alloc` and nothing refers to it; it is
    /// never unmapped, so stale readers see a valid (reused) block.
    pub(crate) unsafe fn free(&mut self, p: *mut u8) {
        // SAFETY: the caller hands the block back; its first word is ours.
        unsafe { p.cast::<*mut u8>().write(self.free) };
        self.free = p;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn aligned_maps_are_aligned_and_refusals_are_none() {
        let p = map_aligned(1 << 20, 1 << 22).unwrap();
        assert_eq!(p as usize % (1 << 22), 0);
        // SAFETY: mapped just above, unused.
        unsafe { unmap(p, 1 << 20) };
        assert!(map(usize::MAX - 4095).is_none());
        assert!(map(0).is_none());
    }

    #[test]
    fn fixalloc_reuses_and_zeroes() {
        let mut f = FixAlloc::new(100);
        let a = f.alloc().unwrap();
        let b = f.alloc().unwrap();
        assert_eq!(b as usize - a as usize, 128);
        // SAFETY: `a` is a live 128-byte block from `f`.
        unsafe {
            a.write_bytes(7, 128);
            f.free(a);
        }
        let c = f.alloc().unwrap();
        assert_eq!(c, a);
        // SAFETY: `c` is a live zeroed block of 128 bytes.
        let block = unsafe { std::slice::from_raw_parts(c, 128) };
        assert!(block.iter().all(|b| *b == 0));
        assert!(resident_bytes().unwrap() > 0);
    }
}
