//! Frees a large amount of memory, calls `free_os_memory()`, and checks that
//! resident memory (from /proc/self/statm) falls to within 10% of what is
//! still live. One test per binary: resident memory is process-wide.

#![cfg(not(loom))]

use gort_alloc::{SpanAlloc, free_os_memory, resident_bytes, stats};
use std::alloc::{GlobalAlloc, Layout};

#[test]
fn free_os_memory_returns_freed_pages() {
    let baseline = resident_bytes().expect("/proc/self/statm is readable");
    // 256 MiB in a mix of small objects (several classes) and large ones,
    // allocated in order so the survivors (every object of the last 10%)
    // sit in their own spans.
    let mut objs: Vec<(*mut u8, Layout)> = Vec::new();
    let sizes = [48usize, 512, 1024, 4000, 30_000, 200_000, 1 << 20];
    let mut total = 0usize;
    let target = 256 << 20;
    let mut i = 0;
    while total < target {
        let layout = Layout::from_size_align(sizes[i % sizes.len()], 8).unwrap();
        // SAFETY: non-zero layout.
        let p = unsafe { SpanAlloc.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: `p` holds layout.size() bytes: touch them all.
        unsafe { p.write_bytes(0x5a, layout.size()) };
        objs.push((p, layout));
        total += layout.size();
        i += 1;
    }
    let peak = resident_bytes().unwrap();
    let keep_from = objs.len() * 9 / 10;
    let live: usize = objs[keep_from..].iter().map(|(_, l)| l.size()).sum();
    for &(p, l) in &objs[..keep_from] {
        // SAFETY: allocated above with `l`, freed once.
        unsafe { SpanAlloc.dealloc(p, l) };
    }
    let released = free_os_memory();
    let after = resident_bytes().unwrap();
    let s = stats();
    eprintln!(
        "baseline {} MiB, peak {} MiB, after {} MiB, live {} MiB, released {} MiB, heap_inuse {} MiB",
        baseline >> 20,
        peak >> 20,
        after >> 20,
        live >> 20,
        released >> 20,
        s.heap_inuse >> 20
    );
    assert!(peak - baseline >= target, "the workload was resident");
    let growth = after.saturating_sub(baseline);
    eprintln!(
        "resident growth after free_os_memory: {} KiB = {:.3} x live",
        growth >> 10,
        growth as f64 / live as f64
    );
    assert!(
        growth as f64 <= live as f64 * 1.10,
        "resident growth {growth} is more than 10% above live {live}"
    );
    assert!(s.heap_released as usize >= released);
    // The survivors are intact.
    for &(p, l) in &objs[keep_from..] {
        // SAFETY: live objects filled with 0x5a.
        unsafe {
            assert_eq!(*p, 0x5a);
            assert_eq!(*p.add(l.size() - 1), 0x5a);
            SpanAlloc.dealloc(p, l);
        }
    }
}
