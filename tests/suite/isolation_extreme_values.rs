//! Valid but extreme observations never keep other series from being summarized: values near
//! `f64::MAX` are accepted at ingest, and their day is summarized beside the others through the
//! real HTTP API of the embedded default.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::app::Driver;
use eventide::drivers::server::Server;
use eventide::pipeline::clock::ManualClock;
use serde_json::Value;

use crate::kit;

fn start() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

fn day() -> NaiveDate {
    "2026-11-18".parse().unwrap()
}

/// A local runtime on a fresh file, with the timer left to the test.
async fn serve(dir: &std::path::Path) -> (Server, Arc<ManualClock>) {
    let mut config = eventide_testkit::settings(dir.join("eventide.db"));
    config.runtime.summarize_schedule = Some("0 0 0 1 1 *".into());
    let clock = Arc::new(ManualClock::new(start()));
    let server = kit::serve_adjusted(&config, Driver::Local, clock.clone(), |_| {}).await;
    (server, clock)
}

/// Posts NDJSON to the ingest endpoint and returns the reply.
async fn ingest(server: &Server, body: String) -> Value {
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let (status, reply) = kit::post_ingest(&client, &base, "application/x-ndjson", body).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

/// Waits until the workers merged `points` points.
async fn merged(server: &Server, points: u64) {
    for _ in 0..500 {
        if server.app.pipeline.metrics.snapshot()["points_merged"] >= points {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the observations were not merged");
}

async fn summaries(server: &Server) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/api/summaries?day={}",
            server.addr,
            day()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    body.as_array()
        .or_else(|| body["summaries"].as_array())
        .unwrap_or_else(|| panic!("a list of summaries: {body}"))
        .clone()
}

fn line(series: &str, minute: u32, value: f64) -> String {
    format!(
        "{{\"series\":\"{series}\",\"ts\":\"2026-11-18T10:{minute:02}:00Z\",\"value\":{value:e}}}\n"
    )
}

#[tokio::test]
async fn five_good_series_and_one_extreme_one_are_all_summarized() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = serve(dir.path()).await;
    let mut body = String::new();
    for s in 0..5 {
        for minute in 0..3 {
            body.push_str(&line(&format!("good-{s}"), minute, f64::from(minute) + 1.0));
        }
    }
    body.push_str(&line("extreme", 0, 1e308));
    body.push_str(&line("extreme", 1, 1e308));
    let reply = ingest(&server, body).await;
    assert_eq!(reply["accepted"], 17, "{reply}");
    merged(&server, 17).await;

    clock.advance(Duration::minutes(6));
    let tick = server.summarize_now().await;
    assert_eq!(tick.error, None, "{tick:?}");

    let rows = summaries(&server).await;
    let series: Vec<&str> = rows.iter().map(|r| r["series"].as_str().unwrap()).collect();
    assert_eq!(
        series,
        ["extreme", "good-0", "good-1", "good-2", "good-3", "good-4"],
        "every series of the day is summarized"
    );
    for good in &rows[1..] {
        assert_eq!(good["sum"], 6.0, "{good}");
        assert_eq!(good["mean"], 2.0, "{good}");
    }
    // The true sum, 2e308, is beyond f64: stored as NULL, and counted.
    let extreme = &rows[0];
    assert_eq!(extreme["count"], 2, "{extreme}");
    assert_eq!(extreme["sum"], Value::Null, "{extreme}");
    assert_eq!(extreme["mean"], 1e308, "{extreme}");
    assert_eq!(extreme["min"], 1e308, "{extreme}");
    assert_eq!(extreme["max"], 1e308, "{extreme}");
    assert_eq!(extreme["stddev"], 0.0, "{extreme}");
    assert_eq!(extreme["p50"], 1e308, "{extreme}");
    assert!(
        extreme["revision"]
            .as_str()
            .is_some_and(|r| r.parse::<u128>().is_ok()),
        "a revision is a decimal string: {extreme}"
    );
    let counters = server.app.pipeline.metrics.snapshot();
    assert_eq!(counters["summaries_out_of_range"], 1, "{counters:?}");
    assert_eq!(counters["summaries_written"], 6, "{counters:?}");

    // Nothing is left waiting: every summarize message was settled.
    let again = server.summarize_now().await;
    assert_eq!(
        (again.received, again.error.as_deref()),
        (0, None),
        "{again:?}"
    );

    // A manual run of the day writes nothing new and reports nothing refused.
    let manual = server.app.pipeline.summarize_day(day()).await.unwrap();
    assert_eq!(manual.computed, 6, "{manual:?}");
    server.shutdown().await;
}
