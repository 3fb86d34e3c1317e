//! The binary as a child process, started the way the Functions host starts it. Used by the
//! tests and by the `handler_figures` report.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago, for a child process to listen on.
///
/// The port is released before the child binds it, so another bind could take it in between;
/// with every test side by side in one process, this process never hands out a port twice.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Starts `binary` as the host would for a single-instance trial: `FUNCTIONS_CUSTOMHANDLER_PORT`
/// and every port explicitly on a fresh embedded file in `dir`, and nothing from the environment
/// of the shell running the tests. Returns the child, its port and the instant it was started.
pub fn start_handler(binary: &Path, dir: &Path) -> (Child, u16, Instant) {
    let port = free_port();
    let started = Instant::now();
    let child = crate::command(binary)
        .current_dir(dir)
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("EVENTIDE_DB", dir.join(format!("handler-{port}.db")))
        .env("EVENTIDE_SERIES_DAY_STORE", "embedded")
        .env("EVENTIDE_OBSERVATIONS_BACKEND", "embedded")
        .env("EVENTIDE_SUMMARIES_BACKEND", "embedded")
        .env("EVENTIDE_SUMMARY_SINK", "embedded")
        .env("EVENTIDE_QUARANTINE", "embedded")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, port, started)
}

/// Polls `GET /` until it answers 200; returns the time since `started`.
pub fn wait_ready(port: u16, started: Instant) -> Duration {
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            if response.starts_with("HTTP/1.1 200") {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not ready within 5 s"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}
