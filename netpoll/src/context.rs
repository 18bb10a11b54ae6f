//! Which driver a new socket registers with.
//!
//! The executor calls [`enter`] on each of its threads (and around anything
//! that may create sockets) with its driver's [`Handle`]; socket constructors
//! read it back through [`Handle::current`] / [`Handle::try_current`]. Guards
//! nest: an inner `enter` (a second runtime used from inside the first)
//! restores the outer handle when its guard drops.

use std::cell::RefCell;
use std::io;
use std::marker::PhantomData;

use crate::poller::Handle;

/// The message of the error returned outside any runtime.
pub(crate) const NO_RUNTIME_MSG: &str = "must be called from within a gort runtime";

thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Makes `handle` the calling thread's current driver until the returned
/// guard drops; the previous one (if any) is then restored.
pub fn enter(handle: Handle) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(handle)));
    EnterGuard {
        prev,
        _not_send: PhantomData,
    }
}

/// Restores the previous current driver on drop. Must be dropped on the
/// thread that created it (it is `!Send`), innermost first.
#[must_use = "the handle is current only while the guard lives"]
#[derive(Debug)]
pub struct EnterGuard {
    prev: Option<Handle>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

impl Handle {
    /// The current thread's driver.
    ///
    /// # Panics
    /// Outside any runtime ("must be called from within a gort runtime").
    /// Use [`Handle::try_current`] to get an error instead.
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(h) => h,
            Err(_) => panic!("{NO_RUNTIME_MSG}"),
        }
    }

    /// The current thread's driver, or an error of kind `Other` saying
    /// "must be called from within a gort runtime".
    pub fn try_current() -> io::Result<Handle> {
        CURRENT
            .try_with(|c| c.borrow().clone())
            .ok()
            .flatten()
            .ok_or_else(|| io::Error::other(NO_RUNTIME_MSG))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Driver;
    use crate::loom::sync::Arc;

    #[test]
    fn outside_a_runtime_is_a_clear_error() {
        let err = Handle::try_current().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert_eq!(err.to_string(), NO_RUNTIME_MSG);
    }

    #[test]
    fn enter_nests_and_restores() {
        let a = Driver::new().unwrap();
        let b = Driver::new().unwrap();
        let ga = enter(a.handle());
        assert!(Arc::ptr_eq(&Handle::current().shared, &a.handle().shared));
        {
            let _gb = enter(b.handle());
            assert!(Arc::ptr_eq(&Handle::current().shared, &b.handle().shared));
        }
        assert!(Arc::ptr_eq(&Handle::current().shared, &a.handle().shared));
        drop(ga);
        assert!(Handle::try_current().is_err());
    }
}
