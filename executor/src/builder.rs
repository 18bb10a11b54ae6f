//! `Builder`: the runtime's configuration, validated in `build`.

use std::io;
use std::time::Duration;

use crate::sysmon::DebugConfig;

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
    blocking_threshold: Option<Duration>,
    max_blocking_threads: Option<usize>,
    blocking_keep_alive: Option<Duration>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) nprocs: usize,
    pub(crate) thread_name: String,
    /// Upper bound on Ms: one per P at start, more when sysmon hands the P of
    /// a blocked M to a new M (never more than this).
    pub(crate) max_threads: usize,
    /// How long one poll may block its M, while work waits, before sysmon
    /// hands its P to another M.
    pub(crate) blocking_threshold: Duration,
    /// Cap on `spawn_blocking` threads.
    pub(crate) max_blocking_threads: usize,
    /// How long an idle `spawn_blocking` thread waits before it retires.
    pub(crate) blocking_keep_alive: Duration,
    /// `GORT_DEBUG` settings (schedtrace).
    pub(crate) debug: DebugConfig,
}

/// Default bound on Ms when none is given (Go's `maxmcount` is 10,000; gort
/// keeps a lower default because each M reserves a thread stack).
const DEFAULT_MAX_THREADS: usize = 512;

/// Go's `forcePreemptNS`: a poll longer than this, while work waits, loses its
/// P. 10 ms is Go's time slice; shorter would hand off Ps from merely slow
/// polls (and pay a thread wake each time), longer delays every task behind.
const DEFAULT_BLOCKING_THRESHOLD: Duration = Duration::from_millis(10);

/// tokio's default cap on blocking threads: enough for many parallel slow
/// syscalls, low enough that a runaway loop of `spawn_blocking` hits a bound
/// before exhausting the OS thread limit.
const DEFAULT_MAX_BLOCKING_THREADS: usize = 512;

/// An idle blocking thread retires after this long (tokio's figure): long
/// enough that bursts reuse threads, short enough not to hoard them.
const DEFAULT_BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Environment variable with Go's `GODEBUG`-style runtime diagnostics:
/// `schedtrace=<ms>[,scheddetail=1][,sigquit=1]` (`sigquit=1`: SIGQUIT prints
/// the task dump to stderr and the program goes on).
pub const DEBUG_ENV: &str = "GORT_DEBUG";

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

    /// How long one poll may block its M, while other work waits, before
    /// sysmon hands the M's P to another M (default 10 ms). Must be non-zero.
    pub fn blocking_threshold(&mut self, d: Duration) -> &mut Builder {
        self.blocking_threshold = Some(d);
        self
    }

    /// The most threads `spawn_blocking` may run at once (default 512);
    /// at least 1.
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Builder {
        self.max_blocking_threads = Some(n);
        self
    }

    /// How long an idle `spawn_blocking` thread waits for work before it
    /// exits (default 10 s).
    pub fn thread_keep_alive(&mut self, d: Duration) -> &mut Builder {
        self.blocking_keep_alive = Some(d);
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
        let blocking_threshold = self
            .blocking_threshold
            .unwrap_or(DEFAULT_BLOCKING_THRESHOLD);
        if blocking_threshold.is_zero() {
            return Err(invalid("blocking_threshold must be non-zero".into()));
        }
        let max_blocking_threads = self
            .max_blocking_threads
            .unwrap_or(DEFAULT_MAX_BLOCKING_THREADS);
        if max_blocking_threads == 0 {
            return Err(invalid("max_blocking_threads must be at least 1".into()));
        }
        let debug = match std::env::var(DEBUG_ENV) {
            Ok(v) => {
                DebugConfig::parse(&v).map_err(|e| invalid(format!("{DEBUG_ENV}={v:?}: {e}")))?
            }
            Err(_) => DebugConfig::default(),
        };
        Ok(Config {
            nprocs,
            thread_name: self.thread_name.clone().unwrap_or_else(|| "gort-m".into()),
            max_threads,
            blocking_threshold,
            max_blocking_threads,
            blocking_keep_alive: self
                .blocking_keep_alive
                .unwrap_or(DEFAULT_BLOCKING_KEEP_ALIVE),
            debug,
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
