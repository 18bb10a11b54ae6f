//! A 4-ary min-heap: the shape of Go's per-P timer heap (`timers.heap`).
//!
//! A 4-ary heap is half as tall as a binary one, so `push` (sift up, the
//! common operation: most timers are added and dropped, few fire) touches
//! half as many levels, and sift-down compares four children that share a
//! cache line or two. Go chose it for the same reason (`siftupTimer`).
//! Equal keys pop in no particular order; callers make keys unique.

/// Children per node.
const ARITY: usize = 4;

/// A min-heap ordered by `T: Ord`.
#[derive(Debug)]
pub(crate) struct QuadHeap<T> {
    items: Vec<T>,
}

impl<T: Ord> QuadHeap<T> {
    pub(crate) const fn new() -> QuadHeap<T> {
        QuadHeap { items: Vec::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The smallest item.
    pub(crate) fn peek(&self) -> Option<&T> {
        self.items.first()
    }

    /// Adds `item` in O(log4 n).
    pub(crate) fn push(&mut self, item: T) {
        self.items.push(item);
        self.sift_up(self.items.len() - 1);
    }

    /// Removes the smallest item in O(4 log4 n).
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.items.is_empty() {
            return None;
        }
        let top = self.items.swap_remove(0);
        if !self.items.is_empty() {
            self.sift_down(0);
        }
        Some(top)
    }

    /// Keeps the items for which `keep` is true and restores the heap in
    /// O(n). Returns how many were removed. Releases spare capacity when
    /// the heap shrank to under a quarter of it.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&T) -> bool) -> usize {
        let before = self.items.len();
        self.items.retain(keep);
        let removed = before - self.items.len();
        if removed > 0 {
            // Floyd's bottom-up build: sift down every internal node.
            for i in (0..self.items.len() / ARITY + 1).rev() {
                self.sift_down(i);
            }
        }
        if self.items.capacity() > 4 * self.items.len().max(16) {
            self.items.shrink_to(2 * self.items.len());
        }
        removed
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.items[i] >= self.items[parent] {
                break;
            }
            self.items.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.items.len();
        loop {
            let first = i * ARITY + 1;
            if first >= n {
                return;
            }
            let last = (first + ARITY).min(n);
            let mut min = first;
            for c in first + 1..last {
                if self.items[c] < self.items[min] {
                    min = c;
                }
            }
            if self.items[min] >= self.items[i] {
                return;
            }
            self.items.swap(i, min);
            i = min;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::QuadHeap;

    /// A small deterministic generator (no dependency for test data).
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn pops_in_order() {
        let mut seed = 7;
        let mut heap = QuadHeap::new();
        let mut values: Vec<u64> = (0..1000).map(|_| lcg(&mut seed) % 500).collect();
        for &v in &values {
            heap.push(v);
        }
        values.sort_unstable();
        let popped: Vec<u64> = std::iter::from_fn(|| heap.pop()).collect();
        assert_eq!(popped, values);
    }

    #[test]
    fn retain_restores_heap_order() {
        let mut seed = 11;
        let mut heap = QuadHeap::new();
        for _ in 0..1000 {
            heap.push(lcg(&mut seed) % 10_000);
        }
        let removed = heap.retain(|v| v % 3 != 0);
        assert!(removed > 0);
        let popped: Vec<u64> = std::iter::from_fn(|| heap.pop()).collect();
        assert_eq!(popped.len(), 1000 - removed);
        assert!(
            popped.windows(2).all(|w| w[0] <= w[1]),
            "heap order after retain"
        );
        assert!(popped.iter().all(|v| v % 3 != 0));
    }
}
