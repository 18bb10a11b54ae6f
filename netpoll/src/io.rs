//! A mio source registered with a driver: the socket side of `pollDesc`.
//!
//! [`PollEvented`] owns one mio socket and its [`PollDesc`]. Every socket type
//! in [`crate::net`] is a thin wrapper over it. Its [`PollEvented::poll_io`]
//! is the one read/write path of the crate:
//!
//! 1. spend one unit of [`budget`](crate::budget) (yield if none is left);
//! 2. wait for the direction's readiness (`PollDesc::poll_ready`);
//! 3. run the syscall; on `WouldBlock` clear exactly the readiness seen in
//!    step 2 (`PollDesc::clear_readiness`) and go back to 2; otherwise keep
//!    the unit spent and return the result. A short stream read or write
//!    also clears it (`PollDesc::clear_drained`), so the next operation parks
//!    without first spending a syscall on `WouldBlock`.
//!
//! No lock and no allocation on this path: step 2 is one atomic load when the
//! socket is ready, and a waker registration (two CASes) when it is not.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll, ready};

use crate::budget;
use crate::loom::sync::Arc;
use crate::poller::{Handle, shutdown_error};
use crate::registration::{Direction, PollDesc};

/// A mio socket registered with a [`Handle`]'s driver for read and write
/// readiness; deregistered when dropped or taken back with `into_inner`.
#[derive(Debug)]
pub(crate) struct PollEvented<E: mio::event::Source> {
    /// `Some` from construction until `into_inner` or drop.
    io: Option<E>,
    desc: Arc<PollDesc>,
    handle: Handle,
}

impl<E: mio::event::Source> PollEvented<E> {
    /// Registers `io` with the current thread's driver (see `context.rs`).
    pub(crate) fn new(io: E) -> io::Result<PollEvented<E>> {
        PollEvented::new_with(io, Handle::try_current()?)
    }

    /// Registers `io` with `handle`'s driver.
    pub(crate) fn new_with(mut io: E, handle: Handle) -> io::Result<PollEvented<E>> {
        let desc = handle.register(&mut io)?;
        Ok(PollEvented {
            io: Some(io),
            desc,
            handle,
        })
    }

    /// The mio socket.
    pub(crate) fn io(&self) -> &E {
        self.io
            .as_ref()
            .expect("gort netpoll: PollEvented used after into_inner")
    }

    /// The driver this socket is registered with.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Deregisters and returns the mio socket.
    pub(crate) fn into_inner(mut self) -> E {
        let mut io = self
            .io
            .take()
            .expect("gort netpoll: PollEvented used after into_inner");
        self.handle.deregister(&self.desc, &mut io);
        io
    }

    /// Runs `op` once `dir` is ready, retrying after `WouldBlock`; spends one
    /// unit of budget when it returns `Ready`.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        op: impl FnMut(&E) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_drain(cx, dir, op, |_| false)
    }

    /// [`poll_io`](Self::poll_io), where `drained(&result)` says the syscall
    /// proved the kernel buffer empty (a read) or full (a write): readiness is
    /// then cleared now, saving the `WouldBlock` syscall the next operation
    /// would otherwise spend to learn it. Safe for the same reason as the
    /// `WouldBlock` clear: an edge that arrived since the readiness was read
    /// has bumped the tick, and the clear leaves it alone.
    fn poll_io_drain<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&E) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        let coop = ready!(budget::poll_proceed(cx));
        loop {
            let ev = ready!(self.desc.poll_ready(cx, dir));
            if ev.is_shutdown() {
                coop.made_progress();
                return Poll::Ready(Err(shutdown_error()));
            }
            match op(self.io()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.desc.clear_readiness(ev);
                }
                res => {
                    if matches!(&res, Ok(r) if drained(r)) {
                        self.desc.clear_drained(ev);
                    }
                    coop.made_progress();
                    return Poll::Ready(res);
                }
            }
        }
    }

    /// `Ready(Ok)` once `dir` is ready (or `Err` if the driver is gone),
    /// without doing any I/O; spends one unit of budget when ready.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        let coop = ready!(budget::poll_proceed(cx));
        let ev = ready!(self.desc.poll_ready(cx, dir));
        coop.made_progress();
        if ev.is_shutdown() {
            Poll::Ready(Err(shutdown_error()))
        } else {
            Poll::Ready(Ok(()))
        }
    }

    /// Waits until `dir` is ready (see [`poll_ready`](Self::poll_ready)).
    pub(crate) async fn ready(&self, dir: Direction) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(cx, dir)).await
    }

    /// Runs `op` now if `dir` looks ready, else returns `WouldBlock` without
    /// a syscall; a `WouldBlock` from `op` clears the readiness it ran on.
    pub(crate) fn try_io<R>(
        &self,
        dir: Direction,
        op: impl FnOnce(&E) -> io::Result<R>,
    ) -> io::Result<R> {
        let Some(ev) = self.desc.ready_now(dir) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        if ev.is_shutdown() {
            return Err(shutdown_error());
        }
        let res = op(self.io());
        if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.desc.clear_readiness(ev);
        }
        res
    }

    /// Runs `op` once `dir` is ready, as an async fn.
    pub(crate) async fn async_io<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut(&E) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_io(cx, dir, &mut op)).await
    }
}

/// The byte-stream operations shared by TCP and Unix streams.
impl<E> PollEvented<E>
where
    E: mio::event::Source,
    for<'a> &'a E: io::Read + io::Write,
{
    /// `AsyncRead::poll_read` for a stream.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        // A short read (but not EOF) emptied the receive buffer.
        self.poll_io_drain(
            cx,
            Direction::Read,
            |mut io| io::Read::read(&mut io, buf),
            |&n| n > 0 && n < len,
        )
    }

    /// `AsyncWrite::poll_write` for a stream.
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // A short write filled the send buffer.
        self.poll_io_drain(
            cx,
            Direction::Write,
            |mut io| io::Write::write(&mut io, buf),
            |&n| n > 0 && n < buf.len(),
        )
    }

    /// `AsyncWrite::poll_write_vectored` for a stream (one `writev`).
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Direction::Write, |mut io| {
            io::Write::write_vectored(&mut io, bufs)
        })
    }

    /// `try_read`: reads now if the socket looks readable, else `WouldBlock`.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_io(Direction::Read, |mut io| io::Read::read(&mut io, buf))
    }

    /// `try_write`: writes now if the socket looks writable, else `WouldBlock`.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_io(Direction::Write, |mut io| io::Write::write(&mut io, buf))
    }
}

impl<E: mio::event::Source> Drop for PollEvented<E> {
    fn drop(&mut self) {
        if let Some(mut io) = self.io.take() {
            self.handle.deregister(&self.desc, &mut io);
        }
    }
}

/// Treats "connection still in progress" as `WouldBlock` so a connecting
/// socket waits for its next writable edge: the pending error (from
/// `take_error`) if the connect failed, `Ok` once a peer address exists.
pub(crate) fn connect_finished(
    take_error: io::Result<Option<io::Error>>,
    peer: io::Result<impl Sized>,
) -> io::Result<()> {
    if let Some(e) = take_error? {
        return Err(e);
    }
    match peer {
        Ok(_) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::NotConnected
                || e.raw_os_error() == Some(libc::EINPROGRESS) =>
        {
            Err(io::ErrorKind::WouldBlock.into())
        }
        Err(e) => Err(e),
    }
}
