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

/// Hands out zeroed, never-freed blocks of `size` bytes (aligned to 64),
/// carved from 256 KiB chunks mapped on demand: Go's `fixalloc` without a
/// free list, for metadata that is reused in place (per-thread stats blocks).
///
/// Not thread-safe by itself: every caller holds the lock of the structure
/// that owns the `FixAlloc`.
#[cfg_attr(loom, allow(dead_code, reason = "loom builds metadata with Box"))]
pub(crate) struct FixAlloc {
    size: usize,
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
            chunk: ptr::null_mut(),
            chunk_left: 0,
        }
    }

    /// A zeroed block, or `None` when the OS refuses a new chunk.
    pub(crate) fn alloc(&mut self) -> Option<*mut u8> {
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
    fn pools_hand_out_distinct_zeroed_blocks_and_release_free_pages() {
        let mut f = FixAlloc::new(100);
        let a = f.alloc().unwrap();
        let b = f.alloc().unwrap();
        assert_eq!(b as usize - a as usize, 128);
        let mut pool = SpanPool::new();
        let blocks: Vec<*mut u8> = (0..64).map(|_| pool.alloc().unwrap()).collect();
        for (i, &p) in blocks.iter().enumerate() {
            assert_eq!(p as usize - blocks[0] as usize, i * SPAN_BLOCK);
            // SAFETY: each block is live and SPAN_BLOCK bytes long.
            unsafe { p.write_bytes(0xee, SPAN_BLOCK) };
        }
        // Free the first 16 (two OS pages) and one block of the third page.
        for &p in blocks[..16].iter().chain(&blocks[20..21]) {
            // SAFETY: allocated above, freed once.
            unsafe { pool.free(p) };
        }
        assert_eq!(pool.release(), 2 * OS_PAGE);
        assert_eq!(pool.release(), 0, "released pages are not released twice");
        let again = pool.alloc().unwrap();
        assert_eq!(again, blocks[0], "lowest free block first");
        // SAFETY: `again` is a live block.
        let bytes = unsafe { std::slice::from_raw_parts(again, SPAN_BLOCK) };
        assert!(bytes.iter().all(|b| *b == 0), "a reused block is zeroed");
        assert!(resident_bytes().unwrap() > 0);
    }
}

/// Bytes per span struct in the `SpanPool` (eight per 4 KiB OS page).
pub(crate) const SPAN_BLOCK: usize = 512;
/// Span structs the pool can hold: 1 Mi, a 512 MiB virtual reservation, enough
/// for 8 GiB of heap in one-page spans (more with larger spans).
const POOL_BLOCKS: usize = 1 << 20;
const OS_PAGE: usize = 4096;
const BLOCKS_PER_OS_PAGE: usize = OS_PAGE / SPAN_BLOCK;

/// The span structs' allocator: fixed 512-byte blocks in one reserved
/// region, with a bitmap of blocks in use instead of an intrusive free list,
/// so that `release` can hand back every OS page whose eight blocks are all
/// free (a heap that shrinks leaves no span-struct residue behind). A page
/// touched again after release reads as zeros, which is a valid `Span`.
///
/// Not thread-safe by itself: only used under the mheap lock.
#[cfg_attr(loom, allow(dead_code, reason = "loom builds span structs with Box"))]
pub(crate) struct SpanPool {
    region: *mut u8,
    /// One bit per block: in use.
    used: *mut u64,
    /// One bit per OS page: released to the OS and not reused since.
    released: *mut u64,
    /// No free block below this index.
    hint: usize,
    /// No block at or above this index was ever used.
    high: usize,
}

// SAFETY: the pool is only reached under the mheap lock; its pointers are
// mappings it owns forever.
unsafe impl Send for SpanPool {}

#[cfg_attr(loom, allow(dead_code))]
impl SpanPool {
    /// An empty pool; the region is reserved on first use.
    pub(crate) const fn new() -> SpanPool {
        SpanPool {
            region: ptr::null_mut(),
            used: ptr::null_mut(),
            released: ptr::null_mut(),
            hint: 0,
            high: 0,
        }
    }

    /// A zeroed block, or `None` when the pool is exhausted or the OS refuses.
    pub(crate) fn alloc(&mut self) -> Option<*mut u8> {
        if self.region.is_null() {
            self.region = map(POOL_BLOCKS * SPAN_BLOCK)?;
            self.used = map(POOL_BLOCKS / 8)?.cast();
            self.released = map(POOL_BLOCKS / BLOCKS_PER_OS_PAGE / 8)?.cast();
        }
        let mut w = self.hint / 64;
        // SAFETY: `used` maps POOL_BLOCKS bits; `w` stays below that many words.
        let words = unsafe { std::slice::from_raw_parts_mut(self.used, POOL_BLOCKS / 64) };
        while w < words.len() && words[w] == u64::MAX {
            w += 1;
        }
        if w == words.len() {
            return None;
        }
        let idx = w * 64 + (!words[w]).trailing_zeros() as usize;
        words[w] |= 1 << (idx % 64);
        self.hint = idx;
        self.high = self.high.max(idx + 1);
        let page = idx / BLOCKS_PER_OS_PAGE;
        // SAFETY: `released` maps one bit per OS page of the region.
        unsafe { *self.released.add(page / 64) &= !(1 << (page % 64)) };
        // SAFETY: the block lies inside the region; nothing else uses it
        // (its bit was clear).
        let p = unsafe { self.region.add(idx * SPAN_BLOCK) };
        // SAFETY: as above; a recycled block is zeroed to a fresh Span.
        unsafe { p.write_bytes(0, SPAN_BLOCK) };
        Some(p)
    }

    /// Returns a block.
    ///
    /// # Safety
    /// `p` came from `alloc` and is not freed twice; stale readers may still
    /// read it (it stays mapped, and zero or recycled bytes are a valid Span).
    pub(crate) unsafe fn free(&mut self, p: *mut u8) {
        let idx = (p as usize - self.region as usize) / SPAN_BLOCK;
        // SAFETY: idx is inside the pool, so its word is inside `used`.
        unsafe { *self.used.add(idx / 64) &= !(1 << (idx % 64)) };
        self.hint = self.hint.min(idx);
    }

    /// Releases every OS page whose blocks are all free; returns bytes released.
    pub(crate) fn release(&mut self) -> usize {
        if self.region.is_null() {
            return 0;
        }
        let pages = self.high.div_ceil(BLOCKS_PER_OS_PAGE);
        let mut done = 0;
        let mut run_start = None;
        for page in 0..=pages {
            let free = page < pages && {
                // SAFETY: one byte of `used` covers the 8 blocks of a page.
                let byte = unsafe { *self.used.cast::<u8>().add(page) };
                // SAFETY: `released` has a bit per page of the region.
                let rel = unsafe { *self.released.add(page / 64) } & (1 << (page % 64)) != 0;
                byte == 0 && !rel
            };
            match (free, run_start) {
                (true, None) => run_start = Some(page),
                (false, Some(s)) => {
                    // SAFETY: pages [s, page) hold only free blocks, which
                    // nobody may rely on the contents of (zero is valid).
                    unsafe { release(self.region.add(s * OS_PAGE), (page - s) * OS_PAGE) };
                    for q in s..page {
                        // SAFETY: as above for `released`.
                        unsafe { *self.released.add(q / 64) |= 1 << (q % 64) };
                    }
                    done += (page - s) * OS_PAGE;
                    run_start = None;
                }
                _ => {}
            }
        }
        done
    }
}
