//! What a request costs is bounded by its size: the largest bodies the default limit lets in,
//! of the kinds that cost the most per byte, sent to `eventide local` as a child process whose
//! peak resident memory (`VmHWM` in `/proc/<pid>/status`) is read after each request. Run with
//! `--nocapture` to see the peak per MiB of body for each kind.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use eventide_testkit::child::free_port;
use serde_json::Value;

use crate::kit;

/// The default `EVENTIDE_MAX_BODY_BYTES`.
const MAX_BODY: usize = 32 << 20;
/// The bound: peak resident memory of the whole process under 8× the body.
const PEAK_PER_BODY: usize = 8;
/// The largest reply a request may get, whatever its body.
const MAX_REPLY: usize = 1 << 20;

/// The binary as a child process, killed when dropped.
struct Process {
    child: Child,
    port: u16,
}

impl Process {
    /// Starts `eventide <command>` on a fresh embedded file in `dir` with `env` on top, and waits
    /// until `ready_path` answers.
    fn start(dir: &Path, command: &str, env: &[(&str, String)], ready_path: &str) -> Self {
        let port = free_port();
        let mut cmd = eventide_testkit::command(env!("CARGO_BIN_EXE_eventide"));
        cmd.arg(command)
            .current_dir(dir)
            .env("EVENTIDE_DB", dir.join("eventide.db"))
            .env("EVENTIDE_SUMMARIZE_SCHEDULE", "0 0 0 1 1 *")
            .env("EVENTIDE_WORKERS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match command {
            "serve" => cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string()),
            _ => cmd.env("EVENTIDE_PORT", port.to_string()),
        };
        for (name, value) in env {
            cmd.env(name, value);
        }
        let child = Self {
            child: cmd.spawn().unwrap(),
            port,
        };
        let started = Instant::now();
        while http_get(port, ready_path).is_none() {
            assert!(started.elapsed() < Duration::from_secs(20), "never ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Peak resident memory so far, in bytes.
    fn peak_rss(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc/<pid>/status");
        let kib: usize = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap();
        kib * 1024
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/1.1 200").then_some(response)
}

/// POSTs `body` with its `Content-Length` over a plain socket, writing on a thread of its own
/// so that a server answering before it has read everything is seen, not deadlocked; returns
/// the status and the reply's body.
fn post(port: u16, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut writer = stream.try_clone().unwrap();
    // A server that refuses early closes the connection: the rest of the body has nowhere to go.
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    sending.join().unwrap();
    let text_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete reply");
    let head = String::from_utf8_lossy(&response[..text_end]).to_string();
    let status = head[9..12].parse().unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length"),
        "a sized reply: {head}"
    );
    (status, response[text_end + 4..].to_vec())
}

/// A body of `items` repeated up to `MAX_BODY` bytes: `open` + items joined by `separator` +
/// `close`.
fn filled(open: &str, item: &str, separator: &str, close: &str) -> Vec<u8> {
    let room = MAX_BODY - open.len() - close.len();
    let count = (room + separator.len()) / (item.len() + separator.len());
    let mut body = Vec::with_capacity(MAX_BODY);
    body.extend_from_slice(open.as_bytes());
    for i in 0..count {
        if i > 0 {
            body.extend_from_slice(separator.as_bytes());
        }
        body.extend_from_slice(item.as_bytes());
    }
    body.extend_from_slice(close.as_bytes());
    assert!(body.len() <= MAX_BODY);
    body
}

/// A valid observation for now (so its day is open), of series `s{n}`.
fn valid_item(series: usize) -> String {
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    format!(r#"{{"series":"s{series}","ts":"{ts}","value":1}}"#)
}

/// A CSV body of valid rows of today, each at a time of its own (so none is deduplicated).
fn csv_distinct_times() -> Vec<u8> {
    let day = chrono::Utc::now().format("%Y-%m-%d");
    let mut body = b"series,ts,value\n".to_vec();
    for i in 0.. {
        let row = format!("s,{day}T00:00:00.{i:09}Z,{i}\n");
        if body.len() + row.len() > MAX_BODY {
            break;
        }
        body.extend_from_slice(row.as_bytes());
    }
    body
}

/// The kinds of 32 MiB body that cost the most per byte: the shortest invalid items in each
/// format, and the shortest valid ones (in one series, and in as many series as a request may
/// write).
fn bodies() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let one_series = valid_item(0);
    let many_series = {
        let items: Vec<String> = (0..20_000).map(valid_item).collect();
        let one_round = items.join(",");
        let mut body = b"[".to_vec();
        while body.len() + one_round.len() + 2 < MAX_BODY {
            if body.len() > 1 {
                body.push(b',');
            }
            body.extend_from_slice(one_round.as_bytes());
        }
        body.push(b']');
        body
    };
    vec![
        (
            "JSON array of 0",
            "application/json",
            filled("[", "0", ",", "]"),
        ),
        (
            "JSON array of {}",
            "application/json",
            filled("[", "{}", ",", "]"),
        ),
        (
            "NDJSON lines of x",
            "application/x-ndjson",
            filled("", "x", "\n", ""),
        ),
        (
            "CSV rows of a,b,c",
            "text/csv",
            filled("series,ts,value\n", "a,b,c", "\n", ""),
        ),
        (
            "valid JSON, one series",
            "application/json",
            filled("[", &one_series, ",", "]"),
        ),
        ("valid JSON, 20000 series", "application/json", many_series),
        (
            "valid CSV, distinct times",
            "text/csv",
            csv_distinct_times(),
        ),
    ]
}

#[test]
fn the_largest_bodies_cost_less_than_8x_their_size_and_get_a_small_reply() {
    let _exclusive = kit::exclusive_blocking();
    for (kind, content_type, body) in bodies() {
        // A fresh process per kind, so each peak is that body's alone.
        let dir = tempfile::tempdir().unwrap();
        let child = Process::start(dir.path(), "local", &[], "/api/status");
        let before = child.peak_rss();
        let size = body.len();
        let (status, reply) = post(child.port, "/api/ingest", content_type, body);
        let peak = child.peak_rss();
        println!(
            "{kind:<26} body {:>5.1} MiB  peak RSS {:>6.1} MiB ({:.2} per MiB of body; {:.1} MiB at start)  reply {} bytes",
            size as f64 / 1048576.0,
            peak as f64 / 1048576.0,
            peak as f64 / (size as f64 / 1048576.0) / 1048576.0,
            before as f64 / 1048576.0,
            reply.len()
        );
        assert!(
            peak < PEAK_PER_BODY * size,
            "{kind}: peak RSS {peak} bytes for a body of {size}"
        );
        assert!(
            reply.len() < MAX_REPLY,
            "{kind}: reply of {} bytes",
            reply.len()
        );
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        let (accepted, rejected) = (
            reply["accepted"].as_u64().unwrap(),
            reply["rejected_count"].as_u64().unwrap(),
        );
        if kind.starts_with("valid") {
            assert_eq!(status, 200, "{kind}: {reply}");
            assert!(accepted > 100_000, "{kind}: {accepted}");
        } else {
            assert_eq!(status, 422, "{kind}");
            assert_eq!(accepted, 0);
            assert!(rejected > 1_000_000, "{kind}: {rejected} rejected");
            let by_class = reply["rejected_by_class"].as_object().unwrap();
            let counted: u64 = by_class.values().map(|n| n.as_u64().unwrap()).sum();
            assert_eq!(counted, rejected, "{kind}: every rejection has a class");
            let listed = reply["rejected"].as_array().unwrap();
            assert_eq!(listed.len(), 100, "{kind}: the first 100 in detail");
            assert!(
                listed
                    .iter()
                    .all(|r| r["reason"].as_str().is_some_and(|r| !r.is_empty()))
            );
        }
        if kind.contains("20000 series") {
            assert_eq!(
                reply["rejected_by_class"]["series_limit"].as_u64(),
                Some(rejected),
                "{kind}: items beyond the 10000th series are refused with the reason"
            );
            assert!(rejected > 0);
        }
    }
}

#[test]
fn a_functions_envelope_over_its_limit_is_answered_413_without_being_held() {
    let _exclusive = kit::exclusive_blocking();
    let dir = tempfile::tempdir().unwrap();
    let embedded = [
        "EVENTIDE_SERIES_DAY_STORE",
        "EVENTIDE_OBSERVATIONS_BACKEND",
        "EVENTIDE_SUMMARIES_BACKEND",
        "EVENTIDE_SUMMARY_SINK",
        "EVENTIDE_QUARANTINE",
    ];
    let mut env: Vec<(&str, String)> = embedded.iter().map(|n| (*n, "embedded".into())).collect();
    // A body limit of 1 MiB: envelopes up to 5 MiB are read (4× the body plus 1 MiB).
    env.push(("EVENTIDE_MAX_BODY_BYTES", (1 << 20).to_string()));
    let child = Process::start(dir.path(), "serve", &env, "/");
    let before = child.peak_rss();
    let envelope_size = 64 << 20;
    let mut envelope =
        br#"{"Data":{"req":{"Method":"POST","Headers":{"Content-Type":["text/csv"]},"Body":""#
            .to_vec();
    envelope.resize(envelope_size - 4, b'a');
    envelope.extend_from_slice(br#""}}}"#);
    let (status, reply) = post(child.port, "/ingest", "application/json", envelope);
    let peak = child.peak_rss();
    println!(
        "64 MiB envelope: peak RSS {:.1} MiB (was {:.1} MiB)",
        peak as f64 / 1048576.0,
        before as f64 / 1048576.0
    );
    assert_eq!(
        status, 200,
        "the invocation succeeds; its HTTP output says 413"
    );
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 413);
    let error: Value =
        serde_json::from_str(reply["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(error["error"], "body exceeds the limit of 1048576 bytes");
    assert!(
        peak - before < 8 << 20,
        "the envelope was not read: peak grew by {} bytes",
        peak - before
    );
}
