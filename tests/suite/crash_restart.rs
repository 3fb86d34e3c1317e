//! The real binary, killed with SIGKILL in the middle of a run and restarted on the same file,
//! loses nothing and counts nothing twice; SIGTERM stops it cleanly.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use eventide_testkit::child::free_port;
use eventide_testkit::command;
use serde_json::Value;

use crate::kit::{self, assert_rows_match, expected};

struct Runtime {
    child: Child,
    base: String,
}

/// Starts `eventide local` on `db`, summarizing every second with no grace, and waits until
/// it answers.
async fn start(db: &std::path::Path) -> Runtime {
    let port = free_port();
    let child = command(env!("CARGO_BIN_EXE_eventide"))
        .args([
            "local",
            "--db",
            db.to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .env_clear()
        .env("EVENTIDE_SUMMARIZE_SCHEDULE", "* * * * * *")
        .env("EVENTIDE_GRACE", "0s")
        .env("EVENTIDE_SETTLE", "0s")
        .env("EVENTIDE_LOCK_DURATION", "2s")
        // The dataset's days are fixed, the clock is the real one: keep every day open.
        .env("EVENTIDE_MAX_LATENESS", "3000d")
        .env("EVENTIDE_RETENTION_DAYS", "3650")
        .stdout(Stdio::null())
        .spawn()
        .expect("the eventide binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{base}/api/status")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "eventide local did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Runtime { child, base }
}

impl Runtime {
    async fn post(&self, body: String) {
        let client = reqwest::Client::new();
        let (status, reply) =
            kit::post_ingest(&client, &self.base, "application/x-ndjson", body).await;
        assert_eq!(status, 200, "{reply}");
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

type Clean = BTreeMap<(String, DateTime<Utc>), f64>;

/// 20 series, two past days, every 5 minutes; one request per series group and two hours.
fn requests(clean: &mut Clean, shift: f64) -> Vec<String> {
    let day0 = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
    let mut bodies = Vec::new();
    for block in 0..24 {
        let mut body = String::new();
        for s in 0..20 {
            for i in 0..24 {
                let ts = day0 + chrono::Duration::minutes(5 * (block * 24 + i));
                let value = (s * 31 + i as usize * 7) as f64 * 0.25 + block as f64 + shift;
                clean.insert((format!("crash-{s:02}"), ts), value);
                body.push_str(&format!(
                    "{{\"series\":\"crash-{s:02}\",\"ts\":\"{}\",\"value\":{value}}}\n",
                    ts.to_rfc3339()
                ));
            }
        }
        bodies.push(body);
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_and_restart_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("eventide.db");
    let mut clean = Clean::new();
    let first = requests(&mut clean, 0.0);
    // Corrections of a quarter of the points, sent after the restart.
    let corrections: Vec<String> = requests(&mut Clean::new(), 0.5)
        .into_iter()
        .step_by(4)
        .collect();
    for body in &corrections {
        for line in body.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let key = (
                v["series"].as_str().unwrap().to_string(),
                v["ts"].as_str().unwrap().parse().unwrap(),
            );
            clean.insert(key, v["value"].as_f64().unwrap());
        }
    }

    let mut runtime = start(&db).await;
    let (before, after) = first.split_at(16);
    for body in before {
        runtime.post(body.clone()).await;
    }
    // Kill while messages are queued, locked and being merged, and summaries are running.
    let status = runtime.get("/api/status").await;
    runtime.child.kill().unwrap();
    let merged = status["counters"]["points_merged"].as_u64().unwrap();
    eprintln!(
        "killed with {merged} of {} points merged: {status}",
        16 * 480
    );
    runtime.child.wait().unwrap();

    let mut runtime = start(&db).await;
    for body in after.iter().chain(&corrections) {
        runtime.post(body.clone()).await;
    }
    let want = expected(&clean);
    let started = Instant::now();
    loop {
        let status = runtime.get("/api/status").await;
        let queued: u64 = ["observations", "summaries"]
            .iter()
            .map(|q| {
                status["queues"][q]["active"].as_u64().unwrap()
                    + status["queues"][q]["deferred"].as_u64().unwrap()
            })
            .sum();
        let rows = runtime.get("/api/summaries").await;
        let rows = rows.as_array().unwrap();
        if queued == 0 && rows.len() == want.len() {
            assert_rows_match(rows, &want);
            assert_eq!(status["quarantine"], 0);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "did not settle: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    runtime.child.kill().unwrap();
    runtime.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut runtime = start(&dir.path().join("eventide.db")).await;
    let pid = runtime.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    loop {
        if let Some(status) = runtime.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "did not stop within 5 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
