//! `task::Builder`: spawning with a name (shown by the task dump, the
//! execution trace and `tracing` spans).

use std::future::Future;

use super::JoinHandle;
use crate::context;
use crate::runtime::Handle;

/// Configures a task before spawning it.
///
/// ```
/// let rt = gort_executor::Runtime::new().unwrap();
/// rt.block_on(async {
///     let h = gort_executor::task::Builder::new().name("conn-42").spawn(async { 1 });
///     assert_eq!(h.await.unwrap(), 1);
/// });
/// ```
///
/// A name is kept in a side table of the runtime keyed by task id, so
/// unnamed tasks pay nothing for the feature; a named spawn and its
/// completion each take that table's lock once.
#[derive(Debug, Default, Clone)]
pub struct Builder<'a> {
    name: Option<&'a str>,
}

impl<'a> Builder<'a> {
    /// A builder for an unnamed task.
    pub fn new() -> Builder<'a> {
        Builder { name: None }
    }

    /// Names the task.
    pub fn name(self, name: &'a str) -> Builder<'a> {
        Builder { name: Some(name) }
    }

    /// Spawns `future` on the current runtime, as [`crate::spawn`].
    ///
    /// # Panics
    /// Outside a runtime, with a message naming the call site.
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let loc = std::panic::Location::caller();
        let mut future = Some(future);
        let spawned = context::with_current_handle(|h| {
            h.map(|h| self.spawn_with(h, future.take().expect("taken once"), loc))
        });
        match spawned {
            Some(join) => join,
            None => panic!(
                "gort::task::Builder::spawn called outside a gort runtime at {loc}: call it \
                 from a task, from inside Runtime::block_on, or use Builder::spawn_on"
            ),
        }
    }

    /// Spawns `future` on the runtime of `handle`.
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(handle, future, std::panic::Location::caller())
    }

    fn spawn_with<F>(
        self,
        handle: &Handle,
        future: F,
        at: &'static std::panic::Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.name {
            Some(name) => handle.spawn_named(future, name, at),
            None => handle.spawn_inner(future, at),
        }
    }
}
