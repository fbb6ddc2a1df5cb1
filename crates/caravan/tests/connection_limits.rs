//! Nomad's `limits {}` on the HTTP port: connections per client, and how
//! long a connection may take to send its headers or pause in its body.
//! Before, 500 half-sent requests were all held for over a minute.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Agent;

const LIMITS: &str =
    "limits {\n  https_handshake_timeout = \"1s\"\n  http_max_conns_per_client = 5\n}\n";

fn connect(agent: &Agent) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", agent.http_port)).expect("connect");
    // Bounds every read below: the server must act well within it.
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection (or the read timeout);
/// what it sent, and whether it closed.
fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (String::from_utf8_lossy(&received).into_owned(), false)
            }
            // Reset by the server: closed too.
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), true),
        }
    }
}

#[test]
fn connections_past_the_per_client_limit_get_429() {
    let agent = Agent::start(&["-dev"], LIMITS);
    let held: Vec<TcpStream> = (0..5).map(|_| connect(&agent)).collect();
    let mut extra = connect(&agent);
    let (answer, closed) = read_until_closed(&mut extra);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    assert!(
        answer.contains("too many concurrent connections"),
        "{answer:?}"
    );
    assert!(closed);
    drop(held);
    // Once they are gone, the same client is served again.
    let mut served = false;
    for _ in 0..50 {
        let mut stream = connect(&agent);
        stream
            .write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (answer, _) = read_until_closed(&mut stream);
        if answer.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        served,
        "the client was not served after closing its connections"
    );
}

#[test]
fn half_sent_headers_idle_connections_and_stalled_bodies_are_cut_off() {
    let agent = Agent::start(&["-dev"], LIMITS);

    let mut partial = connect(&agent);
    partial
        .write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (_, closed) = read_until_closed(&mut partial);
    assert!(closed, "a half-sent header held its connection");

    let mut silent = connect(&agent);
    let (_, closed) = read_until_closed(&mut silent);
    assert!(closed, "a connection that sent nothing was held");

    let mut idle = connect(&agent);
    idle.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "an idle keep-alive connection was held");

    let mut stalled = connect(&agent);
    stalled
        .write_all(
            b"PUT /v1/operator/scheduler/configuration HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Sched",
        )
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stalled);
    assert!(closed, "a stalled body held its connection: {answer:?}");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    // None of it changed anything, and the agent still answers.
    assert_eq!(agent.get("/v1/status/leader").status, 200);
}

#[test]
fn bad_limits_stop_the_agent_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("limits.hcl");
    std::fs::write(&config, "limits {\n  http_max_conns_per_client = -1\n}\n").unwrap();
    let (status, output) =
        common::run_to_exit(&["agent", "-dev", "-config", config.to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        output.contains("limits.http_max_conns_per_client"),
        "{output}"
    );
}
