//! gort's leaf futures spend the poll budget: after 128 Readies in one poll,
//! the next returns Pending (and wakes its task).

#![cfg(not(loom))]

use gort_executor::{Builder, budget, task};
use tokio_test::task::spawn as mock;

#[test]
fn join_handles_yield_after_128_readies() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let handles: Vec<_> = (0..200).map(|i| rt.spawn(async move { i })).collect();
    // Wait for all to finish without consuming them.
    rt.block_on(async {
        while !handles.iter().all(|h| h.is_finished()) {
            task::yield_now().await;
        }
    });
    let mut mocks: Vec<_> = handles.into_iter().map(mock).collect();
    budget::budget(|| {
        for (i, m) in mocks.iter_mut().take(budget::INITIAL as usize).enumerate() {
            assert!(
                m.poll().is_ready(),
                "JoinHandle {i} should be Ready within the budget"
            );
        }
        let last = &mut mocks[budget::INITIAL as usize];
        assert!(last.poll().is_pending(), "the 129th Ready must yield");
        assert!(last.is_woken(), "a yielding leaf wakes its task");
    });
    // Outside a budget the same handle is Ready.
    assert!(mocks[budget::INITIAL as usize].poll().is_ready());
}

#[test]
fn yield_now_resumes_spend_budget() {
    let mut ys: Vec<_> = (0..=budget::INITIAL as usize)
        .map(|_| mock(task::yield_now()))
        .collect();
    budget::budget(|| {
        for y in ys.iter_mut() {
            assert!(y.poll().is_pending(), "first poll of yield_now yields");
            assert!(y.is_woken());
        }
        for (i, y) in ys.iter_mut().take(budget::INITIAL as usize).enumerate() {
            assert!(
                y.poll().is_ready(),
                "resumed yield_now {i} is Ready within budget"
            );
        }
        assert!(
            ys[budget::INITIAL as usize].poll().is_pending(),
            "the 129th Ready must yield"
        );
    });
}
