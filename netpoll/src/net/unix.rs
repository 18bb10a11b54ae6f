//! `UnixListener` and `UnixStream` (Unix only).

use std::fmt;
use std::io;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use crate::io::{PollEvented, connect_finished};
use crate::poller::Handle;
use crate::registration::Direction;

/// A Unix-domain socket listening for connections.
pub struct UnixListener {
    io: PollEvented<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to the filesystem `path` (which must not exist yet) and
    /// registers with the current runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let listener = mio::net::UnixListener::bind(path)?;
        Ok(UnixListener {
            io: PollEvented::new(listener)?,
        })
    }

    /// Waits for a connection. EMFILE/ENFILE is returned as an error.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self
            .io
            .async_io(Direction::Read, mio::net::UnixListener::accept)
            .await?;
        let io = PollEvented::new_with(stream, self.io.handle().clone())?;
        Ok((UnixStream { io }, addr))
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.io().local_addr()
    }

    /// Wraps a std listener (made non-blocking here).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            io: PollEvented::new(mio::net::UnixListener::from_std(listener))?,
        })
    }

    /// Deregisters and returns the std listener, still non-blocking.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        Ok(self.io.into_inner().into())
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.io().fmt(f)
    }
}

/// A Unix-domain stream connection.
pub struct UnixStream {
    io: PollEvented<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket bound at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let handle = Handle::try_current()?;
        let io = PollEvented::new_with(mio::net::UnixStream::connect(path)?, handle)?;
        io.async_io(Direction::Write, |s| {
            connect_finished(s.take_error(), s.peer_addr())
        })
        .await?;
        Ok(UnixStream { io })
    }

    /// A connected pair of streams, both registered with the current runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let handle = Handle::try_current()?;
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((
            UnixStream {
                io: PollEvented::new_with(a, handle.clone())?,
            },
            UnixStream {
                io: PollEvented::new_with(b, handle)?,
            },
        ))
    }

    /// Wraps a connected std stream (made non-blocking here).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream {
            io: PollEvented::new(mio::net::UnixStream::from_std(stream))?,
        })
    }

    /// Deregisters and returns the std stream, still non-blocking.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        Ok(self.io.into_inner().into())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.io().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.io().peer_addr()
    }

    stream_methods!();
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.io().fmt(f)
    }
}

impl_async_read!(UnixStream, s => s);
impl_async_write!(UnixStream, s => s);
