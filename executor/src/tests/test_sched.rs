//! A one-queue scheduler for exercising the task layer without Ms or Ps.

use std::collections::VecDeque;
use std::future::Future;

use gort_netpoll::loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use gort_netpoll::loom::sync::{Arc, Mutex};

use crate::task::list::OwnedTasks;
use crate::task::raw::Header;
use crate::task::{Hint, Id, JoinHandle, Notified, Schedule};

pub(crate) struct Inner {
    pub(crate) queue: Mutex<VecDeque<Notified>>,
    pub(crate) owned: OwnedTasks,
    /// Scheduler copies dropped: one per freed task cell.
    pub(crate) cells_freed: AtomicUsize,
}

/// The scheduler stored in each test task; its drop counts freed cells.
pub(crate) struct TestSched(pub(crate) Arc<Inner>, bool);

impl TestSched {
    pub(crate) fn new() -> TestSched {
        TestSched(
            Arc::new(Inner {
                queue: Mutex::new(VecDeque::new()),
                owned: OwnedTasks::new(1),
                cells_freed: AtomicUsize::new(0),
            }),
            false,
        )
    }

    /// Spawns without queueing: returns the first `Notified`.
    pub(crate) fn spawn<F>(&self, fut: F) -> (JoinHandle<F::Output>, Option<Notified>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.owned.bind(
            fut,
            TestSched(self.0.clone(), true),
            Id::next(),
            std::panic::Location::caller(),
        )
    }

    pub(crate) fn pop(&self) -> Option<Notified> {
        self.0.queue.lock().unwrap().pop_front()
    }

    /// Runs queued tasks until the queue is empty.
    pub(crate) fn drain(&self) {
        while let Some(t) = self.pop() {
            t.run();
        }
    }

    pub(crate) fn cells_freed(&self) -> usize {
        self.0.cells_freed.load(SeqCst)
    }
}

impl Drop for TestSched {
    fn drop(&mut self) {
        if self.1 {
            self.0.cells_freed.fetch_add(1, SeqCst);
        }
    }
}

impl Schedule for TestSched {
    fn schedule(&self, task: Notified, _hint: Hint) {
        self.0.queue.lock().unwrap().push_back(task);
    }

    fn release(&self, task: &Header) -> bool {
        self.0.owned.remove(task)
    }
}

/// Counts drops of a value (a future or an output).
pub(crate) struct DropCount(pub(crate) Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}
