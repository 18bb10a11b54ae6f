//! An echo server: every byte a client sends comes back to it.
//!
//! ```text
//! cargo run --release --example echo-server [ADDR]    # default 127.0.0.1:7878
//! ```
//!
//! It prints the address it bound, then serves every connection on its own
//! task until the peer closes. Faults are the peer's problem, never the
//! server's: a reset, a half-close or a peer that stops reading ends that one
//! connection with a logged error, and an accept that fails for lack of file
//! descriptors (EMFILE/ENFILE) backs off and retries instead of exiting.
//! Memory per connection is bounded: one 8 KiB buffer, and a peer that sends
//! without reading is cut off after `WRITE_STALL` rather than buffered.
//!
//! Set `RUST_LOG=debug` (or `info`, `warn`) to see connection events.

use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort::net::{TcpListener, TcpStream};
use std::io;
use std::time::Duration;

/// The buffer each connection reads into and writes back from.
const BUF_SIZE: usize = 8 * 1024;
/// How long a write may wait for a peer that does not read before the
/// connection is closed.
const WRITE_STALL: Duration = Duration::from_secs(10);
/// First and longest pause after an accept fails for lack of descriptors.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[gort::main]
async fn main() -> io::Result<()> {
    init_logging();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7878".to_string());
    let listener = TcpListener::bind(addr.as_str()).await?;
    println!("echo server listening on {}", listener.local_addr()?);
    serve(listener).await
}

/// Accepts connections forever, one task each.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    let mut backoff = BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = BACKOFF_MIN;
                gort::spawn(async move {
                    match echo(stream).await {
                        Ok(bytes) => tracing::debug!(%peer, bytes, "connection closed by peer"),
                        Err(err) => tracing::warn!(%peer, error = %err, "connection closed on error"),
                    }
                });
            }
            Err(err) if is_out_of_descriptors(&err) => {
                tracing::warn!(error = %err, pause = ?backoff, "accept: out of file descriptors, backing off");
                gort::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            // A connection that died between the kernel's accept queue and
            // us concerns that connection only.
            Err(err) if is_per_connection(&err) => {
                tracing::debug!(error = %err, "accept: connection aborted before it was accepted");
            }
            Err(err) => return Err(err),
        }
    }
}

/// Echoes until the peer closes its side; returns the bytes echoed.
async fn echo(mut stream: TcpStream) -> io::Result<u64> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            // Half-close from the peer: finish our side too.
            stream.close().await?;
            return Ok(total);
        }
        match gort::time::timeout(WRITE_STALL, stream.write_all(&buf[..n])).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("peer stopped reading for {WRITE_STALL:?}"),
                ));
            }
        }
        total += n as u64;
    }
}

fn is_out_of_descriptors(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}

fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    )
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).try_init();
}
