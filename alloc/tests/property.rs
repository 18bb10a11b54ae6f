//! Property test: random interleavings of alloc, free and realloc of random
//! sizes and alignments from several threads, some objects freed by another
//! thread than the one that allocated them, all checked against a model:
//! live allocations never overlap, every byte is writable and keeps what was
//! written, every pointer is aligned, and at the end everything is returned.

#![cfg(not(loom))]

use gort_alloc::{SpanAlloc, stats};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// xorshift64*: a tiny deterministic generator (seeded per thread).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The tests of this binary compare global counters: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A live allocation in the model.
struct Obj {
    ptr: usize,
    layout: Layout,
    tag: u8,
}

/// Every live range, to check overlap on insert.
type Ranges = Arc<Mutex<BTreeMap<usize, usize>>>;

fn random_layout(rng: &mut Rng) -> Layout {
    let size = match rng.below(10) {
        0..=5 => 1 + rng.below(256),
        6..=8 => 1 + rng.below(32 << 10),
        _ => 1 + rng.below(300 << 10),
    } as usize;
    let max_shift = if rng.below(20) == 0 { 15 } else { 5 };
    let align = 1usize << rng.below(max_shift);
    Layout::from_size_align(size, align).unwrap()
}

fn insert(ranges: &Ranges, o: &Obj) {
    let mut r = ranges.lock().unwrap();
    let end = o.ptr + o.layout.size();
    if let Some((&s, &e)) = r.range(..end).next_back() {
        assert!(
            e <= o.ptr || s >= end,
            "overlap: [{s:#x},{e:#x}) and [{:#x},{end:#x})",
            o.ptr
        );
    }
    r.insert(o.ptr, end);
}

fn check_and_free(ranges: &Ranges, o: Obj) {
    let p = o.ptr as *mut u8;
    // SAFETY: `o` is live with `layout`; it was filled with `tag`.
    let bytes = unsafe { std::slice::from_raw_parts(p, o.layout.size()) };
    assert!(
        bytes.iter().all(|b| *b == o.tag),
        "object {p:p} was overwritten"
    );
    ranges.lock().unwrap().remove(&o.ptr);
    // SAFETY: allocated by SpanAlloc with this layout, freed once.
    unsafe { SpanAlloc.dealloc(p, o.layout) };
}

fn alloc(ranges: &Ranges, rng: &mut Rng) -> Obj {
    let layout = random_layout(rng);
    // SAFETY: layouts have non-zero size.
    let p = unsafe { SpanAlloc.alloc(layout) };
    assert!(!p.is_null(), "allocation of {layout:?} failed");
    assert_eq!(p as usize % layout.align(), 0, "misaligned {layout:?}");
    let tag = rng.next() as u8;
    // SAFETY: `p` holds layout.size() bytes.
    unsafe { p.write_bytes(tag, layout.size()) };
    let o = Obj {
        ptr: p as usize,
        layout,
        tag,
    };
    insert(ranges, &o);
    o
}

#[test]
fn random_alloc_free_against_a_model() {
    const THREADS: usize = 4;
    const OPS: usize = 40_000;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = stats();
    let ranges: Ranges = Arc::default();
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<Obj>()).unzip();
    let mut handles = Vec::new();
    for (t, rx) in receivers.into_iter().enumerate() {
        let ranges = ranges.clone();
        let next = senders[(t + 1) % THREADS].clone();
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678));
            let mut live: Vec<Obj> = Vec::new();
            for _ in 0..OPS {
                // Objects handed over by the previous thread: remote frees.
                while let Ok(o) = rx.try_recv() {
                    live.push(o);
                }
                match rng.below(10) {
                    0..=4 => live.push(alloc(&ranges, &mut rng)),
                    5..=7 if !live.is_empty() => {
                        let i = rng.below(live.len() as u64) as usize;
                        check_and_free(&ranges, live.swap_remove(i));
                    }
                    8 if !live.is_empty() => {
                        let i = rng.below(live.len() as u64) as usize;
                        let _ = next.send(live.swap_remove(i));
                    }
                    9 if !live.is_empty() => {
                        // realloc keeps the prefix.
                        let i = rng.below(live.len() as u64) as usize;
                        let o = live.swap_remove(i);
                        ranges.lock().unwrap().remove(&o.ptr);
                        let new_size = random_layout(&mut rng).size();
                        // SAFETY: `o` is live with its layout.
                        let p = unsafe { SpanAlloc.realloc(o.ptr as *mut u8, o.layout, new_size) };
                        assert!(!p.is_null());
                        let layout = Layout::from_size_align(new_size, o.layout.align()).unwrap();
                        assert_eq!(p as usize % layout.align(), 0);
                        let keep = o.layout.size().min(new_size);
                        // SAFETY: `p` holds new_size bytes, the first `keep` copied.
                        let bytes = unsafe { std::slice::from_raw_parts(p, keep) };
                        assert!(bytes.iter().all(|b| *b == o.tag), "realloc lost data");
                        // SAFETY: as above.
                        unsafe { p.write_bytes(o.tag, new_size) };
                        let o = Obj {
                            ptr: p as usize,
                            layout,
                            tag: o.tag,
                        };
                        insert(&ranges, &o);
                        live.push(o);
                    }
                    _ => {}
                }
            }
            live
        }));
    }
    drop(senders);
    let mut leftovers = Vec::new();
    for h in handles {
        leftovers.extend(h.join().unwrap());
    }
    for o in leftovers {
        check_and_free(&ranges, o);
    }
    // Objects sent to a thread that had already finished stayed in its
    // channel and were dropped with it (Obj has no destructor): the model
    // still lists them, so free them from there.
    let stranded = ranges.lock().unwrap().clone();
    for (&p, &end) in &stranded {
        // SAFETY: a live object, never freed; SpanAlloc's dealloc only needs
        // the pointer.
        unsafe { SpanAlloc.dealloc(p as *mut u8, Layout::from_size_align(end - p, 1).unwrap()) };
    }
    let after = stats();
    assert_eq!(
        after.mallocs - before.mallocs,
        after.frees - before.frees,
        "every allocation was returned"
    );
    assert_eq!(after.heap_objects, before.heap_objects);
    assert!(after.mallocs - before.mallocs > (THREADS * OPS / 3) as u64);
}

#[test]
fn every_class_is_aligned_to_its_largest_power_of_two() {
    // Class sizes from Go's table: an object of exactly that size with the
    // largest power-of-two alignment dividing it must come back aligned.
    let sizes: [usize; 67] = [
        8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
        352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
        2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472,
        9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264,
        28672, 32768,
    ];
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for size in sizes {
        let align = (1usize << size.trailing_zeros()).min(8192);
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero layouts; each pointer freed once with its layout.
        unsafe {
            let ps: Vec<*mut u8> = (0..3).map(|_| SpanAlloc.alloc(layout)).collect();
            for &p in &ps {
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                p.write_bytes(1, size);
            }
            for p in ps {
                SpanAlloc.dealloc(p, layout);
            }
        }
    }
}
