//! Size classes: Go's table of 67 object sizes (class 0 means "large").
//!
//! A small request (at most [`MAX_SMALL_SIZE`] bytes) is rounded up to the
//! smallest class whose size fits it and is a multiple of its alignment; a
//! span of that class is `CLASS_NPAGES[c]` pages cut into `CLASS_NELEMS[c]`
//! equal slots. The sizes are Go's (`runtime/sizeclasses.go`); the pages per
//! span are computed here with Go's rule from `mksizeclasses.go`: the
//! smallest run of pages whose tail (the bytes left after the last whole
//! slot) is at most 1/8 of the run. `tests::waste_is_bounded` proves the
//! resulting bounds: tail waste at most 12.5% and, for every request size,
//! rounding plus tail waste under 50% (the worst case, as in Go, is a 9-byte
//! request in a 16-byte slot).
//!
//! Slots start at `span_base + i * size` with a page-aligned base, so a slot
//! is aligned to `align` whenever `size % align == 0` (for `align` up to the
//! page size); [`class_for`] only picks such classes.

/// log2 of the page size.
pub(crate) const PAGE_SHIFT: usize = 13;
/// The page: 8 KiB, the unit in which the mheap hands out memory.
pub(crate) const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// The largest small object; anything bigger gets a span of its own.
pub(crate) const MAX_SMALL_SIZE: usize = 32 << 10;
/// Number of classes, counting class 0 (large objects).
pub(crate) const NUM_CLASSES: usize = 68;
/// The most slots any small span has (8 KiB of 8-byte slots); sizes the bitmaps.
pub(crate) const MAX_SPAN_ELEMS: usize = 1024;

/// Object size of each class, from Go's `class_to_size`.
pub(crate) const CLASS_SIZE: [u32; NUM_CLASSES] = [
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
    352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
    2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
];

/// Pages per span of each class (Go's rule: tail waste at most 1/8).
pub(crate) const CLASS_NPAGES: [u8; NUM_CLASSES] = {
    let mut out = [0u8; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        let size = CLASS_SIZE[c] as usize;
        let mut bytes = PAGE_SIZE;
        while bytes % size > bytes / 8 {
            bytes += PAGE_SIZE;
        }
        out[c] = (bytes / PAGE_SIZE) as u8;
        c += 1;
    }
    out
};

/// Slots per span of each class.
pub(crate) const CLASS_NELEMS: [u16; NUM_CLASSES] = {
    let mut out = [0u16; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        out[c] = (CLASS_NPAGES[c] as usize * PAGE_SIZE / CLASS_SIZE[c] as usize) as u16;
        c += 1;
    }
    out
};

/// Go's `divMul`: `offset / size == (offset * CLASS_DIV_MAGIC[c]) >> 32` for
/// every offset inside a span of class `c` (checked by `tests::div_magic_exact`),
/// which spares the free path a 64-bit division.
pub(crate) const CLASS_DIV_MAGIC: [u32; NUM_CLASSES] = {
    let mut out = [0u32; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        out[c] = (u32::MAX / CLASS_SIZE[c]).wrapping_add(1);
        c += 1;
    }
    out
};

/// Class of every size up to 1024 in steps of 8: index `(size + 7) / 8`.
const SIZE_TO_CLASS8: [u8; 1024 / 8 + 1] = {
    let mut out = [0u8; 1024 / 8 + 1];
    let mut i = 0;
    let mut c = 1;
    while i < out.len() {
        let size = i * 8;
        while (CLASS_SIZE[c] as usize) < size {
            c += 1;
        }
        out[i] = c as u8;
        i += 1;
    }
    out
};

/// Class of every size from 1024 to 32 KiB in steps of 128: index
/// `(size - 1024 + 127) / 128`.
const SIZE_TO_CLASS128: [u8; (MAX_SMALL_SIZE - 1024) / 128 + 1] = {
    let mut out = [0u8; (MAX_SMALL_SIZE - 1024) / 128 + 1];
    let mut i = 0;
    let mut c = 1;
    while i < out.len() {
        let size = 1024 + i * 128;
        while (CLASS_SIZE[c] as usize) < size {
            c += 1;
        }
        out[i] = c as u8;
        i += 1;
    }
    out
};

/// The smallest class holding `size` bytes (`1..=MAX_SMALL_SIZE`).
#[inline]
fn size_to_class(size: usize) -> usize {
    if size <= 1024 {
        SIZE_TO_CLASS8[size.div_ceil(8)] as usize
    } else {
        SIZE_TO_CLASS128[(size - 1024).div_ceil(128)] as usize
    }
}

/// The class serving `size` bytes aligned to `align` (a power of two), or
/// `None` when the request must be a large object (its own span).
#[inline]
pub(crate) fn class_for(size: usize, align: usize) -> Option<usize> {
    if size <= 1024 && align <= 8 {
        // The common case: one table load (size 0 maps to class 1).
        return Some(SIZE_TO_CLASS8[size.div_ceil(8)] as usize);
    }
    if size > MAX_SMALL_SIZE || align > PAGE_SIZE {
        return None;
    }
    let c = size_to_class(size.max(1));
    // Every class is a multiple of 8: the common case needs no search.
    if align <= 8 {
        return Some(c);
    }
    (c..NUM_CLASSES).find(|&c| CLASS_SIZE[c] as usize & (align - 1) == 0)
}

/// Span class: a size class and whether its spans hold GC objects, packed as
/// `class << 1 | gc` (Go packs `noscan` the same way). GC objects and
/// `SpanAlloc` objects never share a span, so the collector can enumerate
/// exactly its own spans.
pub(crate) const NUM_SPAN_CLASSES: usize = NUM_CLASSES * 2;

/// Packs a size class and the GC flag into a span class.
#[inline]
pub(crate) const fn span_class(class: usize, gc: bool) -> usize {
    class << 1 | gc as usize
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_bounded() {
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1] as usize, MAX_SMALL_SIZE);
        for c in 1..NUM_CLASSES {
            assert!(
                CLASS_SIZE[c] > CLASS_SIZE[c - 1],
                "class {c} not increasing"
            );
            assert_eq!(CLASS_SIZE[c] % 8, 0, "class {c} not 8-byte aligned");
            assert!(
                CLASS_NPAGES[c] >= 1 && CLASS_NPAGES[c] <= 10,
                "class {c} pages"
            );
            let n = CLASS_NELEMS[c] as usize;
            assert!((1..=MAX_SPAN_ELEMS).contains(&n), "class {c} has {n} slots");
        }
    }

    #[test]
    fn waste_is_bounded() {
        let mut worst = 0.0f64;
        for c in 1..NUM_CLASSES {
            let span = CLASS_NPAGES[c] as usize * PAGE_SIZE;
            let size = CLASS_SIZE[c] as usize;
            let tail = span - CLASS_NELEMS[c] as usize * size;
            assert!(tail * 8 <= span, "class {c}: tail {tail} of {span}");
            // The smallest request landing in this class wastes the most
            // (class 1 is the 8-byte minimum: a 1-byte request is not waste
            // the table can avoid).
            if c == 1 {
                continue;
            }
            let min_req = CLASS_SIZE[c - 1] as usize + 1;
            let used = min_req * CLASS_NELEMS[c] as usize;
            let waste = 1.0 - used as f64 / span as f64;
            worst = worst.max(waste);
            assert!(waste < 0.5, "class {c}: {:.1}% waste", waste * 100.0);
        }
        assert!(worst > 0.3, "the 9-byte case should be the worst: {worst}");
    }

    #[test]
    fn class_for_every_size_and_alignment() {
        for size in 1..=MAX_SMALL_SIZE {
            let c = class_for(size, 1).unwrap();
            assert!(CLASS_SIZE[c] as usize >= size);
            assert!(
                c == 1 || (CLASS_SIZE[c - 1] as usize) < size,
                "size {size} not tight"
            );
            let mut align = 1;
            while align <= PAGE_SIZE {
                if let Some(c) = class_for(size, align) {
                    assert!(CLASS_SIZE[c] as usize >= size);
                    assert_eq!(CLASS_SIZE[c] as usize % align, 0);
                } else {
                    assert!(size > MAX_SMALL_SIZE - align, "size {size} align {align}");
                }
                align *= 2;
            }
        }
        assert_eq!(class_for(MAX_SMALL_SIZE + 1, 8), None);
        assert_eq!(class_for(8, PAGE_SIZE * 2), None);
    }

    #[test]
    fn div_magic_exact() {
        for c in 1..NUM_CLASSES {
            let size = CLASS_SIZE[c] as usize;
            for idx in 0..CLASS_NELEMS[c] as usize {
                for off in [0, size / 2, size - 1] {
                    let offset = idx * size + off;
                    let q = (offset as u64 * CLASS_DIV_MAGIC[c] as u64) >> 32;
                    assert_eq!(q as usize, idx, "class {c} offset {offset}");
                }
            }
        }
    }
}
