//! Figures for the custom handler: the cost of the HTTP contract around `process`, the time from
//! start to the first 200 on `GET /`, and the idle memory of the handler process.
//!
//! `cargo run --release --example reports -- handler_figures`. The start and memory figures are taken on
//! `dist/handler` when `scripts/package` made one (or on `EVENTIDE_HANDLER`), otherwise on
//! `target/release/eventide` (build it first).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventide::app::{App, Driver};
use eventide::drivers::server::Server;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::process::InboundMessage;
use eventide_testkit::child;
use serde_json::json;

const BATCHES: usize = 200;
const BATCH: usize = 100;
const POINTS: usize = 10;

/// W1-shaped batches: 100 messages of 10 points, each message one series.
fn batches() -> Vec<Vec<String>> {
    (0..BATCHES)
        .map(|b| {
            (0..BATCH)
                .map(|m| {
                    let series = (b * BATCH + m) % 1000;
                    let block = (b * BATCH + m) / 1000;
                    let points: Vec<String> = (0..POINTS)
                        .map(|p| {
                            let minute = block * POINTS + p;
                            format!(
                                r#"{{"series":"w1-{series:04}","ts":"2026-11-18T{:02}:{:02}:00Z","value":{}}}"#,
                                minute / 60,
                                minute % 60,
                                minute as f64 * 0.5
                            )
                        })
                        .collect();
                    format!("[{}]", points.join(","))
                })
                .collect()
        })
        .collect()
}

fn start() -> chrono::DateTime<chrono::Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

async fn in_process(dir: &std::path::Path, batches: &[Vec<String>]) -> Duration {
    let config = eventide_testkit::settings(dir.join("in-process.db"));
    let clock = Arc::new(ManualClock::new(start()));
    let pipeline = App::build(&config, Driver::Local, clock)
        .await
        .unwrap()
        .pipeline;
    let started = Instant::now();
    for (b, batch) in batches.iter().enumerate() {
        let messages: Vec<InboundMessage> = batch
            .iter()
            .enumerate()
            .map(|(m, body)| InboundMessage {
                message_id: Some(format!("m-{b}-{m}")),
                body: body.clone().into_bytes(),
                enqueued_at: None,
                trace_context: None,
            })
            .collect();
        pipeline.process(&messages).await.unwrap();
    }
    started.elapsed()
}

async fn through_contract(dir: &std::path::Path, batches: &[Vec<String>]) -> Duration {
    let mut config = eventide_testkit::settings(dir.join("contract.db"));
    config.runtime.workers = 1;
    eventide_testkit::every_port_embedded(&mut config);
    let app = Server::launch(
        &config,
        Driver::Functions,
        Arc::new(ManualClock::new(start())),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/process", app.addr);
    let envelopes: Vec<String> = batches
        .iter()
        .enumerate()
        .map(|(b, batch)| {
            let ids: Vec<String> = (0..batch.len()).map(|m| format!("m-{b}-{m}")).collect();
            json!({
                "Data": { "messages": serde_json::to_string(batch).unwrap() },
                "Metadata": { "MessageIdArray": serde_json::to_string(&ids).unwrap() }
            })
            .to_string()
        })
        .collect();
    let started = Instant::now();
    for envelope in envelopes {
        let response = client
            .post(&url)
            .header("content-type", "application/json; charset=utf-8")
            .body(envelope)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
    }
    let elapsed = started.elapsed();
    app.shutdown().await;
    elapsed
}

fn handler_start(binary: &Path, dir: &Path) -> (Duration, u64) {
    let (mut child, port, started) = child::start_handler(binary, dir);
    let ready = child::wait_ready(port, started);
    std::thread::sleep(Duration::from_secs(1));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    child.kill().unwrap();
    child.wait().unwrap();
    (ready, rss_kb)
}

#[tokio::main]
pub async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let batches = batches();
    let direct = in_process(dir.path(), &batches).await;
    let contract = through_contract(dir.path(), &batches).await;
    let rate = |d: Duration| BATCHES as f64 / d.as_secs_f64();
    println!("process, {BATCHES} batches of {BATCH} messages x {POINTS} points:");
    println!(
        "  in-process            : {:.1} invocations/s",
        rate(direct)
    );
    println!(
        "  through the contract  : {:.1} invocations/s",
        rate(contract)
    );
    println!(
        "  ratio (goal >= 0.8)   : {:.2}",
        direct.as_secs_f64() / contract.as_secs_f64()
    );

    // The packaged handler when there is one (what Azure runs), else the release build.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::var_os("EVENTIDE_HANDLER")
        .map(PathBuf::from)
        .or_else(|| Some(root.join("dist/handler")).filter(|p| p.exists()))
        .unwrap_or_else(|| root.join("target/release/eventide"));
    let runs: Vec<(Duration, u64)> = (0..5).map(|_| handler_start(&binary, dir.path())).collect();
    let mut ready: Vec<Duration> = runs.iter().map(|r| r.0).collect();
    ready.sort();
    let rss = runs.iter().map(|r| r.1).max().unwrap_or(0);
    println!("handler ({}):", binary.display());
    println!(
        "  start -> first 200 on GET /: median {:?} of 5 (goal <= 20 ms)",
        ready[2]
    );
    println!(
        "  idle RSS after 1 s          : {:.1} MB max of 5 (goal <= 20 MB)",
        rss as f64 / 1024.0
    );
}
