//! `JoinHandle<T>`: the owned handle to a spawned task's output, and `JoinError`.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gort_netpoll::budget;

use super::Hint;
use super::id::Id;
use super::raw::RawTask;

/// An owned permission to await a spawned task's output.
///
/// Awaiting it yields `Ok(output)`, or a [`JoinError`] when the task panicked
/// or was aborted. Dropping it detaches the task: it keeps running and its
/// output is dropped when it completes. Each `Ready` spends one unit of the
/// poll budget (see [`crate::budget`]).
pub struct JoinHandle<T> {
    raw: RawTask,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves a `T` out of the task (on the polling thread),
// so it may be sent where `T` may.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` exposes only `is_finished`, `abort` and `id`, which
// touch the atomic state word and never the `T`.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// # Safety
    /// `raw` must carry the task's `JoinHandle` reference, for an output of type `T`.
    pub(crate) unsafe fn new(raw: RawTask) -> JoinHandle<T> {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    /// Cancels the task. A waiting or queued task has its future dropped by an
    /// M shortly; a task being polled is cancelled when that poll returns. The
    /// handle then yields [`JoinError::is_cancelled`], unless the task finished
    /// first. Idempotent.
    pub fn abort(&self) {
        if self.raw.header().state.transition_to_notified_and_cancel() {
            // A new Notified reference was made: hand it to the scheduler so
            // an M drops the future.
            self.raw.schedule(Hint::Wake);
        }
    }

    /// Whether the task has finished (returned, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.raw.id()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let coop = ready!(budget::poll_proceed(cx));
        let mut out: Poll<Result<T, JoinError>> = Poll::Pending;
        // SAFETY: we are the task's JoinHandle and `out` has the type the
        // task's vtable writes (T was fixed at spawn).
        unsafe {
            self.raw.try_read_output(
                (&mut out as *mut Poll<Result<T, JoinError>>).cast(),
                cx.waker(),
            )
        };
        if out.is_ready() {
            coop.made_progress();
        }
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // SAFETY: we are the JoinHandle and give up its reference here.
        unsafe { self.raw.drop_join_handle() }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.raw.id())
            .field("state", &self.raw.header().state)
            .finish()
    }
}

/// Why a task produced no output.
pub struct JoinError {
    repr: Repr,
    id: Id,
}

enum Repr {
    Cancelled,
    Panic(PanicPayload),
}

/// A panic payload that is `Sync` because nothing ever borrows it: it is only
/// moved out whole, by [`JoinError::into_panic`].
struct PanicPayload(Box<dyn Any + Send + 'static>);

// SAFETY: the only access through `&PanicPayload` is `message`, which calls
// `type_id` (reads no data) and then reads the payload only as a `&str` or a
// `String`, both `Sync`. The payload itself is only ever moved out whole.
unsafe impl Sync for PanicPayload {}

impl PanicPayload {
    fn message(&self) -> Option<&str> {
        if let Some(s) = self.0.downcast_ref::<&'static str>() {
            Some(s)
        } else {
            self.0.downcast_ref::<String>().map(String::as_str)
        }
    }
}

impl JoinError {
    pub(crate) fn cancelled(id: Id) -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
            id,
        }
    }

    pub(crate) fn panic(id: Id, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(PanicPayload(payload)),
            id,
        }
    }

    /// The task was aborted or the runtime shut down before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to resume with `std::panic::resume_unwind`.
    ///
    /// # Panics
    /// When the error is a cancellation; see [`JoinError::try_into_panic`].
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().expect(
            "gort: JoinError::into_panic called on a cancelled task's error (check is_panic first)",
        )
    }

    /// The panic payload, or the error back when it is a cancellation.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.0),
            Repr::Cancelled => Err(self),
        }
    }

    /// The id of the task that failed.
    pub fn id(&self) -> Id {
        self.id
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "task {} was cancelled", self.id),
            Repr::Panic(p) => match p.message() {
                Some(msg) => write!(f, "task {} panicked with message {msg:?}", self.id),
                None => write!(f, "task {} panicked", self.id),
            },
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "JoinError::Cancelled({:?})", self.id),
            Repr::Panic(p) => match p.message() {
                Some(msg) => write!(f, "JoinError::Panic({:?}, {msg:?}, ..)", self.id),
                None => write!(f, "JoinError::Panic({:?}, ..)", self.id),
            },
        }
    }
}

impl std::error::Error for JoinError {}
