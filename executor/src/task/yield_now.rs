//! `yield_now` and `unconstrained`: the two ways a task steers its own
//! scheduling.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gort_netpoll::budget;

/// Gives way to the other tasks of this P once: the task goes to the tail of
/// its P's local run queue (Go's `goyield`) and resumes when its turn comes.
///
/// The resumed `Ready` spends one unit of the poll budget, like every gort
/// leaf future.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.yielded {
            self.yielded = true;
            // Woken during its own poll: the harness sends the task to the
            // tail of the local run queue (Hint::Yield).
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let coop = ready!(budget::poll_proceed(cx));
        coop.made_progress();
        Poll::Ready(())
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`unconstrained`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Unconstrained<F> {
        #[pin]
        inner: F,
    }
}

/// Runs `inner` without a poll budget: gort's leaf futures inside it never
/// yield because of the budget. Use sparingly; a loop over an always-ready
/// source inside it holds its M until the loop ends.
pub fn unconstrained<F: Future>(inner: F) -> Unconstrained<F> {
    Unconstrained { inner }
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        budget::with_unconstrained(|| inner.poll(cx))
    }
}
