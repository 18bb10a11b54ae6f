//! The echo server's accept loop at the descriptor limit: a child process
//! (this test binary run again, with `GORT_ECHO_EMFILE_CHILD` set) lowers
//! its RLIMIT_NOFILE and runs the example's `serve`; the parent connects
//! more clients than the child has descriptors, sees the child log the
//! EMFILE back-off, closes them, and is served again.

mod common;
#[allow(dead_code)] // `main` and `serve_with_stall` are the example's
#[path = "../examples/echo-server.rs"]
mod echo_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "GORT_ECHO_EMFILE_CHILD";
/// The child's descriptor limit: room for the runtime (epoll, eventfd,
/// timerfd), stdio and the listener, and a few dozen connections.
const CHILD_NOFILE: u64 = 48;
const GENEROUS: Duration = Duration::from_secs(30);

/// The child's body; does nothing in a normal test run.
#[test]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let lim = libc::rlimit {
        rlim_cur: CHILD_NOFILE as libc::rlim_t,
        rlim_max: CHILD_NOFILE as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit; lowering the limits is permitted.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let rt = gort::Runtime::builder().worker_threads(2).build().unwrap();
    rt.block_on(async {
        let listener = gort::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("ADDR {}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        echo_server::serve(listener).await.unwrap();
    });
}

fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    s.set_read_timeout(Some(GENEROUS))?;
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    assert_eq!(back, msg, "echo differs");
    Ok(())
}

/// Kills the child when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[cfg(target_os = "linux")]
fn accept_loop_backs_off_at_emfile_and_serves_again() {
    let _dog = common::watchdog(120, "echo server at EMFILE");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the child test process");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let log = Arc::new(Mutex::new(String::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
            }
        });
    }
    let addr: SocketAddr = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // The harness prints "test emfile_child ... " on the same line.
        .find_map(|l| {
            l.split_once("ADDR ")
                .map(|(_, a)| a.trim().parse().unwrap())
        })
        .expect("the child printed its address");

    // Twice the child's limit: the rest wait in the accept backlog.
    let mut clients: Vec<TcpStream> = (0..2 * CHILD_NOFILE)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("client {i}: {e}")))
        .collect();
    let start = Instant::now();
    while !log.lock().unwrap().contains("out of file descriptors") {
        assert!(
            start.elapsed() < GENEROUS,
            "the child never logged an EMFILE back-off; its log:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Connections accepted before the limit are still served.
    round_trip(&mut clients[0], b"served at the limit").expect("first client echoed");
    drop(clients);
    // Descriptors come back as the server closes those connections; the
    // accept loop resumes after its back-off.
    let mut fresh = TcpStream::connect(addr).expect("connect after the clients left");
    round_trip(&mut fresh, b"served again").expect("accept loop recovered from EMFILE");
    let log = log.lock().unwrap().clone();
    assert!(
        !log.contains("panicked"),
        "the child panicked at the descriptor limit:\n{log}"
    );
    drop(child);
}
