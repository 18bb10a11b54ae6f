//! The execution trace of the echo example's workload (a listener task
//! accepting connections, one task per connection echoing what it reads,
//! clients writing and reading, Ms waiting in netpoll between rounds),
//! validated against the Trace Event Format's documented fields. Its own
//! test binary: the trace is process-wide.

#![cfg(not(loom))]

mod diag_common;

use std::time::Duration;

use diag_common::{Json, parse, validate_trace_events};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gort_executor::{Builder, task};
use gort_netpoll::net::{TcpListener, TcpStream};

const CLIENTS: usize = 8;
const ROUNDS: usize = 20;
const MSG: usize = 64;

/// The echo example's connection loop: read, write back, until EOF.
async fn echo(mut stream: TcpStream) -> std::io::Result<u64> {
    let mut buf = [0u8; 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

#[test]
fn trace_of_the_echo_workload_has_the_formats_fields() {
    let path = std::env::temp_dir().join(format!("gort-trace-echo-{}.json", std::process::id()));
    let rt = Builder::new().worker_threads(2).build().unwrap();
    gort_executor::trace::start(&path).expect("trace starts");
    let echoed = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = task::Builder::new().name("acceptor").spawn(async move {
            let mut conns = Vec::new();
            for i in 0..CLIENTS {
                let (stream, _) = listener.accept().await.unwrap();
                let name = format!("conn-{i}");
                conns.push(task::Builder::new().name(&name).spawn(echo(stream)));
            }
            let mut total = 0;
            for c in conns {
                total += c.await.unwrap().unwrap();
            }
            total
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                gort_executor::spawn(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let mut back = [0u8; MSG];
                    for r in 0..ROUNDS {
                        let msg = [(i * ROUNDS + r) as u8; MSG];
                        s.write_all(&msg).await.unwrap();
                        s.read_exact(&mut back).await.unwrap();
                        assert_eq!(back, msg, "client {i} round {r}");
                        // A pause, so Ms go idle and wait in netpoll.
                        gort_executor::time::sleep(Duration::from_micros(200)).await;
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        acceptor.await.unwrap()
    });
    assert_eq!(echoed, (CLIENTS * ROUNDS * MSG) as u64);
    drop(rt);
    gort_executor::trace::stop().expect("trace stops");
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let Json::Arr(events) = parse(&text).unwrap_or_else(|e| panic!("trace is not JSON: {e}"))
    else {
        panic!("trace is not a JSON array")
    };
    if let Err(e) = validate_trace_events(&events) {
        panic!("trace breaks the trace-event format: {e}");
    }

    let polls_named = |prefix: &str| {
        events
            .iter()
            .filter(|e| e.str("cat") == Some("poll"))
            .filter(|e| {
                e.get("args")
                    .and_then(|a| a.str("name"))
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect::<Vec<_>>()
    };
    let acceptor = polls_named("acceptor");
    // It waits for the first connection (Pending), then accepts (several
    // connections may be ready in one poll), then waits for its children.
    assert!(
        acceptor.len() >= 2,
        "acceptor polled {} times",
        acceptor.len()
    );
    // The spawn location is the line that names the acceptor.
    let accept_line = 1 + include_str!("trace_echo.rs")
        .lines()
        .position(|l| l.contains(r#".name("acceptor").spawn("#))
        .expect("the acceptor's spawn is in this file");
    let at = acceptor[0].get("args").unwrap().str("spawned_at").unwrap();
    assert!(
        at.contains(&format!("trace_echo.rs:{accept_line}:")),
        "acceptor spawned at {at}"
    );
    // Each connection task: at least one poll per round (read, then write).
    let conns = polls_named("conn-");
    assert!(
        conns.len() >= CLIENTS * ROUNDS,
        "{} connection polls",
        conns.len()
    );
    let waits: Vec<_> = events
        .iter()
        .filter(|e| e.str("name") == Some("netpoll"))
        .collect();
    assert!(
        waits.iter().any(|e| e
            .get("args")
            .and_then(|a| a.num("events"))
            .is_some_and(|n| n >= 1.0)),
        "no netpoll wait returned readiness events ({} netpoll slices)",
        waits.len()
    );
    assert!(
        events.iter().any(|e| e.str("name") == Some("park")),
        "no M parked"
    );
    // Track names: one per M, plus the processes.
    let tracks = events
        .iter()
        .filter(|e| e.str("name") == Some("thread_name"))
        .count();
    assert!(tracks >= 2, "{tracks} named tracks");
}
