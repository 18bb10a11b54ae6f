//! TCP, UDP and Unix-domain sockets on the gort netpoller (`gort::net`).
//!
//! Every socket registers with the current thread's driver when created
//! (see [`enter`](crate::enter)); outside a runtime constructors fail with
//! "must be called from within a gort runtime". Every operation that returns
//! `Ready` spends one unit of [`budget`](crate::budget), so a task looping on
//! an always-ready socket still yields every 128 operations.
//!
//! Address resolution (`impl ToSocketAddrs`) is std's and may block on DNS for
//! host names; pass `SocketAddr`s or IP literals on hot paths.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// `AsyncRead` for a stream or read half: `$get` is an expression (of the
/// value bound to `$stream`) naming the stream, whose `io` field is its
/// `PollEvented`.
macro_rules! impl_async_read {
    ($ty:ty, $stream:ident => $get:expr) => {
        impl futures::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $stream = &*self;
                $get.io.poll_read(cx, buf)
            }
        }
    };
}

/// `AsyncWrite` for a stream or write half (`$get` as for
/// `impl_async_read`); close shuts down the write direction.
macro_rules! impl_async_write {
    ($ty:ty, $stream:ident => $get:expr) => {
        impl futures::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $stream = &*self;
                $get.io.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $stream = &*self;
                $get.io.poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // Writes go straight to the kernel: nothing is buffered here.
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $stream = &*self;
                std::task::Poll::Ready($get.io.io().shutdown(std::net::Shutdown::Write))
            }
        }
    };
}

/// The readiness-level and shutdown methods every stream type has; expands
/// inside the stream's `impl` block (its `io` field is a `PollEvented`).
macro_rules! stream_methods {
    () => {
        /// Shuts down the read, write or both halves of the connection.
        pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
            self.io.io().shutdown(how)
        }

        /// Waits until the stream is readable (or closed, or errored).
        pub async fn readable(&self) -> std::io::Result<()> {
            self.io.ready(crate::registration::Direction::Read).await
        }

        /// Waits until the stream is writable (or closed, or errored).
        pub async fn writable(&self) -> std::io::Result<()> {
            self.io.ready(crate::registration::Direction::Write).await
        }

        /// Reads now if the stream looks readable; `WouldBlock` otherwise
        /// (then await `readable` and retry).
        pub fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.io.try_read(buf)
        }

        /// Writes now if the stream looks writable; `WouldBlock` otherwise
        /// (then await `writable` and retry).
        pub fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
            self.io.try_write(buf)
        }
    };
}

mod split;
mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixListener, UnixStream};

/// Tries `f` on each address `addr` resolves to; returns the first success or
/// the last error.
fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_addresses))
}

fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    )
}
