//! The poller's table of registrations, indexed by generation-tagged tokens.
//!
//! A mio `Token` is `generation << INDEX_BITS | index`. A slot's generation
//! is bumped every time the slot is freed, so an event still queued in the
//! kernel (or in this poll's batch) for a socket that was closed and whose
//! slot was reused carries the old generation and is dropped instead of
//! waking the new socket.
//!
//! The table lives under the driver's `Mutex` (see `poller.rs`): sockets take
//! it to insert and remove, the poller takes it once per batch of events. It
//! is never touched on a socket's read/write path.

use std::io;

use crate::loom::sync::Arc;
use crate::registration::PollDesc;

/// Low bits of a token: the slot index. 2^24 slots is 16 M sockets.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// The highest index handed out; above it the token could collide with the
/// reserved tokens at the top of the range.
const MAX_INDEX: usize = INDEX_MASK - 2;

/// Tokens the poller keeps for itself; the slab never produces them because
/// their index part exceeds [`MAX_INDEX`].
pub(crate) const TOKEN_WAKER: usize = usize::MAX;
/// Token of the deadline timer (`deadline.rs`).
pub(crate) const TOKEN_TIMER: usize = usize::MAX - 1;

#[derive(Debug)]
struct Slot {
    generation: usize,
    desc: Option<Arc<PollDesc>>,
}

/// Registrations by token; slots are reused through a free list.
#[derive(Debug, Default)]
pub(crate) struct Slab {
    slots: Vec<Slot>,
    free: Vec<usize>,
    len: usize,
}

impl Slab {
    /// Allocates a slot and a fresh [`PollDesc`] whose token names it.
    pub(crate) fn insert(&mut self) -> io::Result<Arc<PollDesc>> {
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() <= MAX_INDEX => {
                self.slots.push(Slot {
                    generation: 0,
                    desc: None,
                });
                self.slots.len() - 1
            }
            None => {
                return Err(io::Error::other(format!(
                    "gort netpoll: more than {MAX_INDEX} sockets registered with one runtime"
                )));
            }
        };
        let slot = &mut self.slots[index];
        let token = (slot.generation << INDEX_BITS) | index;
        let desc = Arc::new(PollDesc::new(token));
        slot.desc = Some(desc.clone());
        self.len += 1;
        Ok(desc)
    }

    /// The live descriptor for `token`, or `None` if the token is stale.
    pub(crate) fn get(&self, token: usize) -> Option<&Arc<PollDesc>> {
        let slot = self.slots.get(token & INDEX_MASK)?;
        let desc = slot.desc.as_ref()?;
        (desc.token() == token).then_some(desc)
    }

    /// Frees the slot of `token` (if still live) and bumps its generation.
    pub(crate) fn remove(&mut self, token: usize) {
        let index = token & INDEX_MASK;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.desc.as_ref().is_some_and(|d| d.token() == token) {
            slot.desc = None;
            slot.generation = (slot.generation + 1) & (usize::MAX >> INDEX_BITS);
            self.free.push(index);
            self.len -= 1;
        }
    }

    /// Empties the table, returning every live descriptor.
    pub(crate) fn drain(&mut self) -> Vec<Arc<PollDesc>> {
        let live = self
            .slots
            .iter_mut()
            .filter_map(|s| s.desc.take())
            .collect();
        self.slots.clear();
        self.free.clear();
        self.len = 0;
        live
    }

    /// Number of live registrations.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn stale_token_is_not_found_after_reuse() {
        let mut slab = Slab::default();
        let a = slab.insert().unwrap();
        let old = a.token();
        slab.remove(old);
        let b = slab.insert().unwrap();
        assert_eq!(
            old & INDEX_MASK,
            b.token() & INDEX_MASK,
            "slot should be reused"
        );
        assert_ne!(old, b.token(), "reused slot must carry a new generation");
        assert!(slab.get(old).is_none(), "stale token must not resolve");
        assert!(slab.get(b.token()).is_some());
        slab.remove(old); // stale remove must not free the new registration
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn reserved_tokens_never_resolve() {
        let mut slab = Slab::default();
        for _ in 0..4 {
            slab.insert().unwrap();
        }
        assert!(slab.get(TOKEN_WAKER).is_none());
        assert!(slab.get(TOKEN_TIMER).is_none());
    }
}
