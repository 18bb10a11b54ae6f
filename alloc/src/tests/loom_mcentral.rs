//! Loom models of the mcentral protocol (`mcentral.rs`): remote frees racing
//! the owner's harvest and uncache. Property: every slot is freed exactly
//! once into `alloc_bits`, and the span goes back to the mheap exactly once,
//! exactly when its last object is freed.

use crate::loom::sync::Arc;
use crate::loom::sync::atomic::Ordering;
use crate::loom::thread;
use crate::mcentral::{MCentral, Release};
use crate::span::{LIST_NONE, SMALL, Span, SpanRef};
use std::ptr::NonNull;

const OWNER: usize = 7;

/// A cached span of `nelems` slots, all allocated, owned by `OWNER`.
fn cached_span(nelems: usize) -> SpanRef {
    let s = Box::leak(Box::<Span>::default());
    s.spanclass.store(2, Ordering::Relaxed); // class 1, normal
    s.nelems.store(nelems, Ordering::Relaxed);
    s.elem_size.store(8, Ordering::Relaxed);
    s.div_magic
        .store(crate::sizeclass::CLASS_DIV_MAGIC[1], Ordering::Relaxed);
    // Real memory for the slots: remote frees write a link into the object.
    let slots: &'static mut [u64; 4] = Box::leak(Box::new([0; 4]));
    s.base.store(slots.as_mut_ptr() as usize, Ordering::Relaxed);
    s.state.store(SMALL, Ordering::Relaxed);
    s.owner.store(OWNER, Ordering::Relaxed);
    s.alloc_bits[0].store((1 << nelems) - 1, Ordering::Relaxed);
    // SAFETY: the struct is leaked, so it lives for the whole model.
    unsafe { SpanRef::from_ptr(NonNull::from(s)) }
}

fn to_heap(r: Release) -> usize {
    match r {
        Release::Keep => 0,
        Release::ToHeap(_) => 1,
    }
}

#[test]
fn loom_remote_frees_race_harvest_and_uncache() {
    loom::model(|| {
        let central = Arc::new(MCentral::new());
        let span = cached_span(2);

        let remote = {
            let central = central.clone();
            thread::spawn(move || {
                let a = to_heap(central.free_remote(span, 0).expect("first free of slot 0"));
                let b = to_heap(central.free_remote(span, 1).expect("first free of slot 1"));
                if cfg!(debug_assertions) {
                    // Release builds skip the O(n) remote-list walk.
                    let again = central.free_remote(span, 1).err();
                    assert_eq!(again, Some(crate::FreeError::DoubleFree));
                }
                a + b
            })
        };

        // The owner: exhausted its span, folds in remote frees, gives it up.
        let harvested = central.harvest(span);
        let mine = to_heap(central.uncache_span(span, 2 - harvested));
        let theirs = remote.join().unwrap();

        // An empty span either went to the mheap or was kept as a spare.
        let spare = usize::from(central.take_empty() == Some(span));
        assert_eq!(mine + theirs + spare, 1, "empty span retired exactly once");
        assert_eq!(
            span.span().alloc_bits[0].load(Ordering::Relaxed),
            0,
            "both slots free"
        );
        assert_eq!(span.span().owner.load(Ordering::Relaxed), 0);
        // SAFETY: every thread is joined; nothing else touches the cell.
        let list = span.span().central.with(|c| unsafe { (*c).list });
        assert_eq!(list, LIST_NONE, "an empty span is on no list");
        assert!(central.cache_span(OWNER).is_none(), "no span left to cache");
    });
}

#[test]
fn loom_remote_free_of_a_full_central_span_moves_it_to_partial() {
    loom::model(|| {
        let central = Arc::new(MCentral::new());
        let span = cached_span(3);

        let remote = {
            let central = central.clone();
            thread::spawn(move || to_heap(central.free_remote(span, 2).unwrap()))
        };
        let mine = to_heap(central.uncache_span(span, 3));
        assert_eq!(mine + remote.join().unwrap(), 0, "two objects stay live");

        // Whichever order ran, slot 2 is free and the span is cachable again.
        let (again, nalloc) = central
            .cache_span(OWNER)
            .expect("span is on the partial list");
        assert_eq!(again, span);
        assert_eq!(nalloc, 2);
        assert_eq!(span.span().alloc_bits[0].load(Ordering::Relaxed), 0b011);
    });
}
