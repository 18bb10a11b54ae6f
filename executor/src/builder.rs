//! `Builder`: the runtime's configuration, validated in `build`.

use std::io;

use crate::runtime::Runtime;

/// Environment variable giving the default number of Ps (Go's `GOMAXPROCS`).
pub(crate) const MAXPROCS_ENV: &str = "GORT_MAXPROCS";

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = gort_executor::Runtime::builder().worker_threads(2).thread_name("app").build().unwrap();
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    worker_threads: Option<usize>,
    thread_name: Option<String>,
    max_threads: Option<usize>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) nprocs: usize,
    pub(crate) thread_name: String,
    /// Upper bound on Ms; this version runs one M per P, later issues add Ms
    /// for Ps handed off from blocked Ms (never more than this).
    pub(crate) max_threads: usize,
}

/// Default bound on Ms when none is given (Go's `maxmcount` is 10,000; gort
/// keeps a lower default because each M reserves a thread stack).
const DEFAULT_MAX_THREADS: usize = 512;

impl Builder {
    /// A builder with the defaults: Ps from `GORT_MAXPROCS`, else the
    /// available parallelism; threads named `gort-m-<i>`.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The number of Ps (logical processors running tasks at once). Must be
    /// at least 1 (checked by `build`).
    pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
        self.worker_threads = Some(n);
        self
    }

    /// The name of the runtime's threads; each gets `-<i>` appended.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = Some(name.into());
        self
    }

    /// The most OS threads (Ms) the runtime may run; at least
    /// `worker_threads` (checked by `build`).
    pub fn max_threads(&mut self, n: usize) -> &mut Builder {
        self.max_threads = Some(n);
        self
    }

    fn config(&self) -> io::Result<Config> {
        let nprocs = match self.worker_threads {
            Some(0) => return Err(invalid("worker_threads must be at least 1".into())),
            Some(n) => n,
            None => match std::env::var(MAXPROCS_ENV) {
                Ok(v) => match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(invalid(format!(
                            "{MAXPROCS_ENV}={v:?}: expected a positive integer"
                        )));
                    }
                },
                Err(std::env::VarError::NotPresent) => {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                }
                Err(e) => return Err(invalid(format!("{MAXPROCS_ENV}: {e}"))),
            },
        };
        let max_threads = self.max_threads.unwrap_or(DEFAULT_MAX_THREADS.max(nprocs));
        if max_threads < nprocs {
            return Err(invalid(format!(
                "max_threads ({max_threads}) is below the number of Ps ({nprocs}): every P needs an M"
            )));
        }
        Ok(Config {
            nprocs,
            thread_name: self.thread_name.clone().unwrap_or_else(|| "gort-m".into()),
            max_threads,
        })
    }

    /// Builds the runtime and starts its Ms.
    ///
    /// # Errors
    /// `InvalidInput` for a bad configuration (0 Ps, an unparsable
    /// `GORT_MAXPROCS`, `max_threads` below the P count); the OS error if a
    /// thread cannot be started.
    pub fn build(&mut self) -> io::Result<Runtime> {
        Runtime::start(self.config()?)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("gort runtime: {msg}"))
}
