//! The binary started the way the Functions host starts it: no arguments but the port in
//! `FUNCTIONS_CUSTOMHANDLER_PORT`. It listens on loopback only and answers `GET /` at once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Local addresses of listening IPv4 and IPv6 TCP sockets on `port`, from /proc/net.
fn listening_addresses(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields[1], fields[3]);
            let (addr, hex_port) = local.rsplit_once(':').unwrap();
            if state == "0A" && u16::from_str_radix(hex_port, 16).unwrap() == port {
                found.push(addr.to_string());
            }
        }
    }
    found
}

#[test]
fn binds_loopback_only_and_is_ready_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventide"))
        .current_dir(dir.path())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("EVENTIDE_DB", dir.path().join("eventide.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready_after = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            if response.starts_with("HTTP/1.1 200") {
                break started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not ready within 5 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let addresses = listening_addresses(port);
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!("ready on GET / after {ready_after:?}");
    // 0100007F is 127.0.0.1 in /proc/net/tcp's byte order.
    assert_eq!(
        addresses,
        vec!["0100007F".to_string()],
        "listens on loopback only"
    );
    assert!(
        ready_after < Duration::from_millis(100),
        "ready after {ready_after:?}"
    );
}
