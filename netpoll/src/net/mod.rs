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
/// value bound to `$stream`) whose type has `poll_read_priv(&self, ..)`.
macro_rules! impl_async_read {
    ($ty:ty, $stream:ident => $get:expr) => {
        impl futures::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $stream = &*self;
                $get.poll_read_priv(cx, buf)
            }
        }
    };
}

/// `AsyncWrite` for a stream or write half, over `poll_write_priv`,
/// `poll_write_vectored_priv` and `shutdown`; close shuts down writing.
macro_rules! impl_async_write {
    ($ty:ty, $stream:ident => $get:expr) => {
        impl futures::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $stream = &*self;
                $get.poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $stream = &*self;
                $get.poll_write_vectored_priv(cx, bufs)
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
                std::task::Poll::Ready($get.shutdown(std::net::Shutdown::Write))
            }
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
