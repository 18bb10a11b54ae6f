//! The GC-facing API: allocation, lookup, marking, allocate-black and sweep.

use super::GC_TEST_LOCK;
use crate::heap_api::*;
use std::alloc::Layout;
use std::collections::HashSet;

fn lock() -> std::sync::MutexGuard<'static, ()> {
    GC_TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn spans_of(objs: &[*mut u8]) -> Vec<SpanRef> {
    let mut v: Vec<SpanRef> = Vec::new();
    for &p in objs {
        let s = span_of(p).expect("GC object has a span");
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

#[test]
fn lookup_finds_span_and_slot_of_interior_pointers() {
    let _g = lock();
    let layout = Layout::from_size_align(40, 8).unwrap();
    let objs: Vec<*mut u8> = (0..300)
        .map(|_| gc_alloc(layout).unwrap().as_ptr())
        .collect();
    for &p in &objs {
        // SAFETY: p is a live 40-byte GC object (48-byte slot).
        unsafe { p.write_bytes(0xab, 40) };
        let s = span_of(p).unwrap();
        assert!(s.is_gc());
        assert_eq!(s.elem_size(), 48);
        assert_eq!(s.nelems(), 8192 / 48);
        for off in [0, 1, 39, 47] {
            // SAFETY: stays inside the 48-byte slot.
            let idx = s.index_of(unsafe { p.add(off) });
            assert_eq!(s.base_of(idx), p, "interior offset {off}");
            assert!(s.is_allocated(idx));
        }
    }
    assert!(
        span_of(&layout as *const Layout as *const u8).is_none(),
        "a stack address has no span"
    );
    let mut seen = HashSet::new();
    for_each_gc_span(|s| {
        seen.insert(s);
    });
    for s in spans_of(&objs) {
        assert!(seen.contains(&s), "for_each_gc_span missed a span");
    }
    // Leave nothing behind for other tests: a full cycle with no marks.
    gc_begin_mark();
    gc_begin_sweep();
    let mut freed = 0;
    let mine: HashSet<usize> = objs.iter().map(|p| *p as usize).collect();
    for s in spans_of(&objs) {
        gc_sweep_span(s, |p| freed += usize::from(mine.contains(&(p as usize))));
    }
    gc_end_cycle();
    assert_eq!(freed, objs.len());
}

#[test]
fn sweep_frees_exactly_the_unmarked_and_keeps_black_allocations() {
    let _g = lock();
    let layout = Layout::from_size_align(100, 16).unwrap();
    let objs: Vec<*mut u8> = (0..500)
        .map(|_| gc_alloc(layout).unwrap().as_ptr())
        .collect();
    for &p in &objs {
        assert_eq!(p as usize % 16, 0);
    }
    let live_before = gc_heap_live_bytes();
    gc_begin_mark();
    for (i, &p) in objs.iter().enumerate() {
        if i % 2 == 0 {
            let s = span_of(p).unwrap();
            assert!(s.mark(s.index_of(p)), "first mark is new");
            assert!(!s.mark(s.index_of(p)), "second mark is not");
        }
    }
    // Born during marking: black.
    let black: Vec<*mut u8> = (0..50)
        .map(|_| gc_alloc(layout).unwrap().as_ptr())
        .collect();
    for &p in &black {
        let s = span_of(p).unwrap();
        assert!(
            s.is_marked(s.index_of(p)),
            "allocation during mark must be black"
        );
    }
    gc_begin_sweep();
    let mut all = objs.clone();
    all.extend(&black);
    let mine: HashSet<usize> = all.iter().map(|p| *p as usize).collect();
    let mut dead = HashSet::new();
    for s in spans_of(&all) {
        gc_sweep_span(s, |p| {
            if mine.contains(&(p as usize)) {
                assert!(dead.insert(p as usize), "dead called twice for {p:p}");
            }
        });
        // A second sweep in the same cycle does nothing.
        gc_sweep_span(s, |p| assert!(!mine.contains(&(p as usize)), "swept twice"));
    }
    // Swept spans allocate white.
    let white = gc_alloc(layout).unwrap().as_ptr();
    let ws = span_of(white).unwrap();
    assert!(!ws.is_marked(ws.index_of(white)));
    gc_end_cycle();
    let want: HashSet<usize> = objs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, p)| *p as usize)
        .collect();
    assert_eq!(dead, want);
    for (i, &p) in objs.iter().enumerate() {
        let s = span_of(p).unwrap();
        let idx = s.index_of(p);
        assert_eq!(s.is_allocated(idx), i % 2 == 0, "object {i}");
        assert!(!s.is_marked(idx), "marks are cleared by the sweep");
    }
    assert!(
        gc_heap_live_bytes() + 250 * 112 <= live_before + 51 * 112 + 112 * 1000,
        "live bytes fell"
    );
    // Clean up: sweep everything of ours.
    gc_begin_mark();
    gc_begin_sweep();
    let mut rest = objs.clone();
    rest.extend(&black);
    rest.push(white);
    for s in spans_of(&rest) {
        gc_sweep_span(s, |_| {});
    }
    gc_end_cycle();
}

#[test]
fn large_gc_objects_are_swept_and_returned() {
    let _g = lock();
    let layout = Layout::from_size_align(100 << 10, 64).unwrap();
    let keep = gc_alloc(layout).unwrap().as_ptr();
    let drop_me = gc_alloc(layout).unwrap().as_ptr();
    let big_align = gc_alloc(Layout::from_size_align(40 << 10, 64 << 10).unwrap())
        .unwrap()
        .as_ptr();
    assert_eq!(big_align as usize % (64 << 10), 0);
    // SAFETY: each object is live and as large as its layout.
    unsafe {
        keep.write_bytes(1, 100 << 10);
        drop_me.write_bytes(2, 100 << 10);
        big_align.write_bytes(3, 40 << 10);
    }
    let ks = span_of(keep).unwrap();
    // SAFETY: interior pointer of a live object.
    assert_eq!(ks.index_of(unsafe { keep.add(90_000) }), 0);
    assert_eq!(ks.base_of(0), keep);
    assert_eq!(span_of(big_align).unwrap().base_of(0), big_align);
    gc_begin_mark();
    ks.mark(0);
    gc_begin_sweep();
    let mut dead = Vec::new();
    for p in [keep, drop_me, big_align] {
        gc_sweep_span(span_of(p).unwrap(), |d| dead.push(d as usize));
    }
    gc_end_cycle();
    assert_eq!(dead, vec![drop_me as usize, big_align as usize]);
    assert!(span_of(drop_me).is_none_or(|s| s.base_of(0) != drop_me || !s.is_gc()));
    assert!(ks.is_allocated(0) && !ks.is_marked(0));
    gc_begin_mark();
    gc_begin_sweep();
    gc_sweep_span(ks, |_| {});
    gc_end_cycle();
}

#[test]
fn gc_alloc_marked_is_black_outside_a_cycle() {
    let _g = lock();
    let p = gc_alloc_marked(Layout::new::<u64>()).unwrap().as_ptr();
    let s = span_of(p).unwrap();
    assert!(s.is_marked(s.index_of(p)));
    assert!(
        gc_alloc(Layout::from_size_align(isize::MAX as usize - 8192, 8).unwrap()).is_none(),
        "impossible size is None"
    );
    gc_begin_mark();
    gc_begin_sweep();
    gc_sweep_span(s, |_| {});
    gc_end_cycle();
}
