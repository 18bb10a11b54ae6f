//! Loom model of page-map publication (`pagemap.rs`): a thread that looks
//! up an address while the mheap publishes an arena and a span either finds
//! nothing or finds the span with every identity field as written.

use crate::loom::sync::Arc;
use crate::loom::sync::atomic::Ordering;
use crate::loom::thread;
use crate::pagemap::{ARENA_SIZE, ArenaMeta, PageMap};
use crate::sizeclass::PAGE_SIZE;
use crate::span::{SMALL, Span};

#[test]
fn loom_published_span_is_seen_whole() {
    loom::model(|| {
        let map = Arc::new(PageMap::new());
        let base = ARENA_SIZE; // arena 1 of the loom-sized map
        let meta = ArenaMeta::new_boxed(base);
        let span: *mut Span = Box::into_raw(Box::<Span>::default());
        let span_addr = span as usize;

        let writer = {
            let map = map.clone();
            thread::spawn(move || {
                // SAFETY: `meta` is a fresh, leaked header for an aligned
                // arena inside the loom map; this thread is the only writer
                // (it plays the mheap lock holder).
                unsafe { map.register_arena(meta) };
                // SAFETY: the span struct is leaked, so it outlives the model.
                let s = unsafe { &*(span_addr as *const Span) };
                s.base.store(base, Ordering::Relaxed);
                s.npages.store(2, Ordering::Relaxed);
                s.elem_size.store(48, Ordering::Relaxed);
                s.nelems.store(2 * PAGE_SIZE / 48, Ordering::Relaxed);
                s.state.store(SMALL, Ordering::Relaxed);
                // SAFETY: the arena is registered above and the span's fields
                // are written; single writer as above.
                unsafe { map.set_range(base, 2, span_addr as *mut Span) };
            })
        };

        // An interior pointer in the span's second page.
        let found = map.lookup(base + PAGE_SIZE + 100);
        if !found.is_null() {
            // SAFETY: the page map only holds leaked span structs.
            let s = unsafe { &*found };
            assert_eq!(s.base.load(Ordering::Relaxed), base);
            assert_eq!(s.npages.load(Ordering::Relaxed), 2);
            assert_eq!(s.elem_size.load(Ordering::Relaxed), 48);
            assert_eq!(s.state.load(Ordering::Relaxed), SMALL);
        }
        writer.join().unwrap();
        assert_eq!(map.lookup(base + 5) as usize, span_addr);
        assert!(
            map.lookup(base + 2 * PAGE_SIZE).is_null(),
            "page past the span"
        );
        assert!(map.lookup(3 * ARENA_SIZE).is_null(), "unregistered arena");
    });
}
