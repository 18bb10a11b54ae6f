//! loom model of the global run queue (`inject.rs`): concurrent
//! `push_batch`, `push`, `pop_batch`, `pop` and `close`.
//! Property: every item is popped, refused, dropped after close or left
//! queued (and dropped with the queue) exactly once.

use gort_netpoll::loom::sync::Arc;
use gort_netpoll::loom::thread;

use super::{Item, assert_exactly_once, drop_log};
use crate::inject::Inject;

#[test]
fn loom_inject_batches_and_close() {
    const N: usize = 5;
    loom::model(|| {
        let log = drop_log();
        let inject = Arc::new(Inject::<Item>::new());

        let producer = {
            let inject = inject.clone();
            let log = log.clone();
            thread::spawn(move || {
                inject.push_batch((0..2).map(|i| Item::new(i, &log)));
                // Refused after close: the item comes back; dropping it here
                // logs it like any other drop.
                if let Err(back) = inject.push(Item::new(2, &log)) {
                    assert!(inject.is_closed(), "push refused only after close");
                    drop(back);
                }
            })
        };
        let consumer = {
            let inject = inject.clone();
            thread::spawn(move || {
                let mut ids = Vec::new();
                inject.pop_batch(2, |it| ids.push(it.id()));
                assert!(inject.close(), "only this thread closes");
                ids
            })
        };

        inject.push_batch((3..N).map(|i| Item::new(i, &log)));
        let mut ids = Vec::new();
        if let Some(it) = inject.pop() {
            ids.push(it.id());
        }
        ids.extend(consumer.join().unwrap());
        producer.join().unwrap();
        assert!(inject.is_closed());
        while let Some(it) = inject.pop() {
            ids.push(it.id());
        }
        assert_eq!(inject.len(), 0);
        // Every popped id was dropped by now too; the rest were refused or
        // dropped by push_batch after close. All N dropped exactly once.
        drop(inject);
        let dropped = log.lock().unwrap().clone();
        for id in &ids {
            assert!(dropped.contains(id), "popped item {id} was not dropped");
        }
        assert_exactly_once(dropped, N, "dropped");
    });
}
