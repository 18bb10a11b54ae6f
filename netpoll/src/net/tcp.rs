//! `TcpListener` and `TcpStream`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};

use super::split::{self, OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use super::{each_addr, no_addresses};
use crate::io::{PollEvented, connect_finished};
use crate::poller::Handle;
use crate::registration::Direction;

/// A TCP socket listening for connections.
///
/// Bound with `SO_REUSEADDR`, non-blocking and close-on-exec (mio's
/// defaults, matching std and tokio).
pub struct TcpListener {
    io: PollEvented<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr`, trying each address it resolves to in turn.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let handle = Handle::try_current()?;
        each_addr(addr, |a| {
            let listener = mio::net::TcpListener::bind(a)?;
            Ok(TcpListener {
                io: PollEvented::new_with(listener, handle.clone())?,
            })
        })
    }

    /// Waits for a connection. Running out of descriptors (EMFILE/ENFILE) is
    /// returned as an error; the connection stays queued for a later retry.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self
            .io
            .async_io(Direction::Read, mio::net::TcpListener::accept)
            .await?;
        Ok((self.adopt(stream)?, addr))
    }

    /// Polls for a connection (the poll form of [`accept`](Self::accept)).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self
            .io
            .poll_io(cx, Direction::Read, mio::net::TcpListener::accept)
        {
            Poll::Ready(Ok((stream, addr))) => Poll::Ready(self.adopt(stream).map(|s| (s, addr))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Registers an accepted stream with the listener's own driver.
    fn adopt(&self, stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: PollEvented::new_with(stream, self.io.handle().clone())?,
        })
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.io().local_addr()
    }

    /// Wraps a std listener (made non-blocking here) and registers it with
    /// the current runtime.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            io: PollEvented::new(mio::net::TcpListener::from_std(listener))?,
        })
    }

    /// Deregisters the listener and returns it as a std listener, still in
    /// non-blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Ok(self.io.into_inner().into())
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.io().fmt(f)
    }
}

/// A TCP connection.
pub struct TcpStream {
    pub(super) io: PollEvented<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, trying each address it resolves to in turn.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let handle = Handle::try_current()?;
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_addr(a, &handle).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    async fn connect_addr(addr: SocketAddr, handle: &Handle) -> io::Result<TcpStream> {
        let stream = mio::net::TcpStream::connect(addr)?;
        let io = PollEvented::new_with(stream, handle.clone())?;
        io.async_io(Direction::Write, |s| {
            connect_finished(s.take_error(), s.peer_addr())
        })
        .await?;
        Ok(TcpStream { io })
    }

    fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: PollEvented::new(stream)?,
        })
    }

    /// Wraps a connected std stream (made non-blocking here) and registers it
    /// with the current runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    /// Deregisters the stream and returns it as a std stream, still in
    /// non-blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        Ok(self.io.into_inner().into())
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.io().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.io().local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm when `true`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.io().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.io().nodelay()
    }

    stream_methods!();

    /// Borrowed read and write halves, usable from two futures of one task.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split::split(self)
    }

    /// Owned halves, usable from two tasks; [`OwnedReadHalf::reunite`] puts
    /// them back together. Dropping the write half shuts down writing.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split::into_split(self)
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.io().fmt(f)
    }
}

impl_async_read!(TcpStream, s => s);
impl_async_write!(TcpStream, s => s);
