//! Loom model of a mutator allocating in a GC span while the collector
//! sweeps it (`heap_api.rs`: `take_slot` against `gc_sweep_span`).
//! Property: nothing allocated during the sweep is reported dead or freed,
//! and the one unmarked object is reported dead exactly once.

use crate::heap_api::{GC_SWEEP, gc_sweep_span, take_slot};
use crate::loom::sync::atomic::Ordering;
use crate::loom::thread;
use crate::mheap::HEAP;
use crate::span::{FreeCursor, SMALL, Span, SpanRef};
use std::ptr::NonNull;

#[test]
fn loom_allocation_during_sweep_survives() {
    loom::model(|| {
        let s = Box::leak(Box::<Span>::default());
        let slots: &'static mut [u64; 6] = Box::leak(Box::new([0; 6]));
        s.spanclass.store(5, Ordering::Relaxed); // class 2 (16 B), GC
        s.base.store(slots.as_mut_ptr() as usize, Ordering::Relaxed);
        s.elem_size.store(16, Ordering::Relaxed);
        s.nelems.store(3, Ordering::Relaxed);
        s.div_magic
            .store(crate::sizeclass::CLASS_DIV_MAGIC[2], Ordering::Relaxed);
        s.state.store(SMALL, Ordering::Relaxed);
        // Cached by a mutator, so the sweep keeps it (no mheap in the model).
        s.owner.store(1, Ordering::Relaxed);
        // Slot 0 live (marked), slot 1 garbage (unmarked), slot 2 free.
        s.alloc_bits[0].store(0b011, Ordering::Relaxed);
        s.gcmark_bits[0].store(0b001, Ordering::Relaxed);
        s.local.with_mut(|l| {
            // SAFETY: the span is not shared yet.
            unsafe {
                (*l).nalloc = 2;
                (*l).cursor = FreeCursor::rewind(&s.alloc_bits);
            }
        });
        // The sweep phase of this cycle: the span is unswept (h - 2).
        let h = HEAP.sweepgen.load(Ordering::Relaxed) + 2;
        HEAP.sweepgen.store(h, Ordering::Relaxed);
        HEAP.gc_phase.store(GC_SWEEP, Ordering::Relaxed);
        s.sweepgen.store(h - 2, Ordering::Relaxed);
        // SAFETY: the struct is leaked, so it lives for the whole model.
        let span = unsafe { SpanRef::from_ptr(NonNull::from(&*s)) };

        let mutator = thread::spawn(move || take_slot(span, false).map(|p| p as usize));

        let mut dead = Vec::new();
        gc_sweep_span(span, |p| dead.push(p as usize));
        let new = mutator.join().unwrap().expect("a free slot exists");

        let base = slots.as_ptr() as usize;
        assert_eq!(dead, vec![base + 16], "only the unmarked object is dead");
        assert_ne!(new, base, "the live object's slot is not reused");
        let idx = (new - base) / 16;
        assert!(
            span.is_allocated(idx),
            "the object born during the sweep is kept"
        );
        assert!(span.is_allocated(0), "the marked object is kept");
        // The new object is either in the dead object's old slot (allocated
        // after the sweep freed it) or in slot 2 (before or after).
        assert!(idx == 1 || idx == 2);
        assert_eq!(span.span().sweepgen.load(Ordering::Relaxed), h);
        // SAFETY: every thread is joined.
        let nalloc = span.span().local.with(|l| unsafe { (*l).nalloc });
        assert_eq!(nalloc, 2, "live count after the sweep and one allocation");
    });
}
