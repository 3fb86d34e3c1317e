//! R4: the real binary, killed with SIGKILL at random points of a run and restarted on the
//! same file each time, loses nothing and counts nothing twice; SIGTERM stops it cleanly.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use eventide::adapters::sql::SinkOptions;
use eventide::adapters::sql::postgres::PostgresSink;
use eventide_testkit::child::free_port;
use eventide_testkit::command;
use serde_json::Value;

use super::{Figures, Form};
use crate::kit::{self, Lcg, expected, table_differences};

struct Runtime {
    child: Child,
    base: String,
}

/// Where the binary keeps what it is killed over.
struct Backends<'a> {
    db: &'a std::path::Path,
    /// `EVENTIDE_SUMMARY_SINK` and `EVENTIDE_QUARANTINE` (+ container), on the real peers.
    peers: Option<&'a [(&'static str, String)]>,
}

/// Starts `eventide local` on `backends`, summarizing every second with no grace, and waits
/// until it answers.
async fn start(backends: &Backends<'_>) -> Runtime {
    let port = free_port();
    let mut command = command(env!("CARGO_BIN_EXE_eventide"));
    command
        .args([
            "local",
            "--db",
            backends.db.to_str().unwrap(),
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
        .stdout(Stdio::null());
    for (name, value) in backends.peers.unwrap_or_default() {
        command.env(name, value);
    }
    let child = command.spawn().expect("the eventide binary starts");
    let base = kit::local_base_when_up(port).await;
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

    /// Kills the process with SIGKILL.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
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

async fn killed_and_restarted(name: &str, backends: Backends<'_>) {
    let kills = Form::current().pick(3, 10);
    let began = Instant::now();
    let mut clean = Clean::new();
    let first = requests(&mut clean, 0.0);
    // Corrections of a quarter of the points, sent last.
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
    let all: Vec<String> = first.into_iter().chain(corrections).collect();

    // Each run posts its share, then is killed at a random moment while messages are queued,
    // locked and being merged, and summaries are running.
    let mut rng = Lcg(4);
    // Summed over the runs, from each one's status: messages sent (exact: every post of a run
    // is answered before its status is read) and processed (a lower bound: a run may process
    // more between its status and its kill).
    let mut counted = Counted::default();
    let parts: Vec<&[String]> = all.chunks(all.len().div_ceil(kills + 1)).collect();
    let mut runtime = start(&backends).await;
    for part in &parts[..parts.len() - 1] {
        for body in *part {
            runtime.post(body.clone()).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(400) as u64)).await;
        counted.add(&runtime.get("/api/status").await);
        runtime.kill();
        runtime = start(&backends).await;
    }
    for body in parts[parts.len() - 1] {
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
            let differences = table_differences(rows, &want);
            counted.add(&status);
            Figures {
                scenario: name.into(),
                messages: counted.sent,
                deliveries: counted.processed,
                faults: kills as u64,
                compared: want.len(),
                lost: differences
                    .iter()
                    .map(|d| &d.key)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
                written_twice: 0,
                quarantined_healthy: status["quarantine"].as_u64().unwrap_or_default() as usize,
                elapsed: began.elapsed(),
                note: format!(
                    "{kills} SIGKILLs; deliveries counted from each run's status just before its \
                     kill, a lower bound; rows written twice are not observable from outside the \
                     process and are covered by R1-R3"
                ),
                differences: differences
                    .into_iter()
                    .map(|d| format!("{:?}: {}", d.key, d.what))
                    .collect(),
            }
            .report();
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "did not settle: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    runtime.kill();
}

/// Messages sent and processed, over several runs.
#[derive(Default)]
struct Counted {
    sent: u64,
    processed: u64,
}

impl Counted {
    fn add(&mut self, status: &Value) {
        let counter = |name: &str| status["counters"][name].as_u64().unwrap_or_default();
        self.sent += counter("chunks_sent");
        self.processed += counter("messages_processed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends {
        db: &dir.path().join("eventide.db"),
        peers: None,
    };
    killed_and_restarted("R4 kill -9 and restart [embedded]", backends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_real_peers() {
    let (Ok(postgres), Ok(azurite)) = (
        std::env::var("EVENTIDE_TEST_POSTGRES"),
        std::env::var("EVENTIDE_TEST_AZURITE"),
    ) else {
        println!(
            "SKIPPED chaos R4 on the real peers: EVENTIDE_TEST_POSTGRES and EVENTIDE_TEST_AZURITE \
             are not both set (scripts/test and scripts/chaos set them)"
        );
        return;
    };
    // A schema of its own (the tests share the server), made by the sink's own migrations and
    // chosen for the child by the URL's search path.
    let schema = format!("chaos_r4_{}", std::process::id());
    PostgresSink::connect(
        &postgres,
        SinkOptions {
            schema: Some(schema.clone()),
            ..SinkOptions::default()
        },
    )
    .await
    .unwrap();
    let separator = if postgres.contains('?') { '&' } else { '?' };
    let dir = tempfile::tempdir().unwrap();
    let peers = [
        (
            "EVENTIDE_SUMMARY_SINK",
            format!("{postgres}{separator}options=-c%20search_path%3D{schema}"),
        ),
        ("EVENTIDE_QUARANTINE", azurite),
        (
            "EVENTIDE_QUARANTINE_CONTAINER",
            format!("chaos-r4-{}", std::process::id()),
        ),
    ];
    let backends = Backends {
        db: &dir.path().join("eventide.db"),
        peers: Some(&peers),
    };
    killed_and_restarted(
        "R4 kill -9 and restart [PostgreSQL + Azurite; the Cosmos emulator is in-process only]",
        backends,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends {
        db: &dir.path().join("eventide.db"),
        peers: None,
    };
    let mut runtime = start(&backends).await;
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
