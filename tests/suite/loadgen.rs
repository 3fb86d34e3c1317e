//! `eventide loadgen` against a real `eventide local` runtime started in-process (and, for the
//! function key, against a loopback stand-in for a Function App's ingest): every workload knob has
//! the effect it promises, the report counts what the target counted (`/api/status`), and the
//! summaries the target wrote equal the ground truth of the workload.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use chrono::NaiveDate;
use eventide::drivers::loadgen::report::Report;
use eventide::drivers::loadgen::workload::{Named, Shape};
use eventide::drivers::loadgen::{self, LoadgenArgs};
use serde_json::{Value, json};

use crate::kit::{TestApp, spawn_app};

/// The day the workloads fill: open on the harness clock (2026-11-20T12:00Z) and already due
/// for summaries, so a run can settle all the way to the summary table.
fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 19).unwrap()
}

/// A small workload (4 series × 60 points, 10 per message, every series in each request)
/// against `base`, no trouble.
fn args(base: &str) -> LoadgenArgs {
    LoadgenArgs {
        series: Some(4),
        points: Some(60),
        points_per_message: Some(10),
        day: Some(day()),
        seed: 3,
        concurrency: 4,
        await_summaries: true,
        settle_timeout: 60,
        request_timeout: 30,
        ..LoadgenArgs::against(base)
    }
}

/// A local runtime whose late data settles within a second of its clock, so the ticks of
/// [`run`] get every summary written long before the workload's day closes.
async fn spawn() -> TestApp {
    spawn_app(|config| config.pipeline.settle = chrono::Duration::seconds(1)).await
}

/// Runs `args` against `app` while summarize ticks run beside it (the harness has no timer),
/// each moving the clock past the settle time, and checks what every run must satisfy: no errors, it settled, and its counts are the
/// target's.
async fn run(app: &TestApp, args: LoadgenArgs) -> Report {
    let ticking = async {
        loop {
            app.clock.advance(chrono::Duration::seconds(2));
            app.server.summarize_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let report = tokio::select! {
        report = loadgen::execute(&args) => report.unwrap(),
        _ = ticking => unreachable!("the ticks never end"),
    };
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.unanswered, 0);
    let settled = report
        .settled
        .as_ref()
        .expect("eventide local serves /api/status");
    assert!(settled.merged_after_s.is_some(), "{report}");
    assert!(settled.summarized_after_s.is_some(), "{report}");
    let counted = |name: &str| settled.counters.get(name).copied().unwrap_or(0);
    assert_eq!(report.accepted, counted("observations_accepted"));
    assert_eq!(report.rejected, counted("observations_rejected"));
    assert_eq!(counted("messages_processed"), counted("chunks_sent"));
    // A batch that holds a point and its repetition merges it once.
    let repeated = report.sent.duplicates + report.sent.corrections;
    assert!(counted("points_merged") <= report.accepted);
    assert!(counted("points_merged") >= report.accepted - repeated);
    assert_eq!(
        report.messages,
        counted("chunks_sent"),
        "the replies name every message the target sent"
    );
    report
}

/// The day's summaries the target wrote, by series.
async fn summaries(app: &TestApp) -> BTreeMap<String, Value> {
    app.summaries()
        .await
        .into_iter()
        .filter(|row| row["day"] == day().to_string())
        .map(|row| (row["series"].as_str().unwrap().to_string(), row))
        .collect()
}

/// Checks the summaries against the statistics of the points the workload says must be held.
fn assert_ground_truth(shape: &Shape, rows: &BTreeMap<String, Value>) {
    let expected = shape.expected_points();
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (series, points) in &expected {
        let row = &rows[series];
        let values: Vec<f64> = points.values().copied().collect();
        let sum: f64 = values.iter().sum();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(row["count"], json!(values.len()), "{series}");
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(close(row["sum"].as_f64().unwrap(), sum), "{series}: {row}");
        assert_eq!(row["min"].as_f64().unwrap(), min, "{series}");
        assert_eq!(row["max"].as_f64().unwrap(), max, "{series}");
        assert_eq!(
            row["last_value"].as_f64().unwrap(),
            values[values.len() - 1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_sends_every_point_once_and_the_table_equals_the_workload() {
    let app = spawn().await;
    let args = args(&app.base);
    let report = run(&app, args.clone()).await;
    assert_eq!(report.requests, 6, "every series in each request");
    assert_eq!(
        report.messages, 6,
        "a request's four series share one message"
    );
    assert_eq!(report.sent.items, 240);
    assert_eq!((report.accepted, report.rejected), (240, 0));
    assert_eq!(report.segments.len(), 1);
    assert_ground_truth(&args.shape(), &summaries(&app).await);
}

/// `--build-first` changes when the bodies are built, not what is sent: with bad items and a
/// second pass of duplicates and corrections, both runs send the same items and the target
/// ends on the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_built_first_are_the_bodies_built_on_the_way() {
    let troubled = |base: &str, build_first: bool| LoadgenArgs {
        bad_ratio: 0.1,
        duplicate_ratio: 0.2,
        correction_ratio: 0.2,
        build_first,
        ..args(base)
    };
    let mut runs = Vec::new();
    for build_first in [false, true] {
        let app = spawn().await;
        let args = troubled(&app.base, build_first);
        let report = run(&app, args.clone()).await;
        assert_ground_truth(&args.shape(), &summaries(&app).await);
        runs.push(report);
    }
    let counts = |r: &Report| (r.requests, r.sent, r.accepted, r.rejected, r.segments.len());
    assert_eq!(counts(&runs[0]), counts(&runs[1]));
    assert!(runs[1].sent.bad > 0 && runs[1].sent.corrections > 0);
    assert_eq!(runs[1].segments.len(), 2, "a first and a second pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_items_are_rejected_and_counted_as_the_target_counts_them() {
    let app = spawn().await;
    let args = LoadgenArgs {
        bad_ratio: 0.2,
        ..args(&app.base)
    };
    let report = run(&app, args.clone()).await;
    assert!(report.sent.bad > 0);
    assert_eq!(report.rejected, report.sent.bad);
    assert_eq!(report.rejected_closed, 0);
    assert_eq!(report.accepted, 240 - report.sent.bad);
    assert_ground_truth(&args.shape(), &summaries(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_items_are_refused_as_closed() {
    let app = spawn().await;
    let args = LoadgenArgs {
        late_ratio: 0.25,
        ..args(&app.base)
    };
    let report = run(&app, args.clone()).await;
    assert!(report.sent.late > 0);
    assert_eq!(report.rejected, report.sent.late);
    assert_eq!(report.rejected_closed, report.sent.late);
    assert_ground_truth(&args.shape(), &summaries(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_accepted_and_change_no_stored_point() {
    let clean = spawn().await;
    run(&clean, args(&clean.base)).await;
    let app = spawn().await;
    let args = LoadgenArgs {
        duplicate_ratio: 0.3,
        ..args(&app.base)
    };
    let report = run(&app, args.clone()).await;
    assert!(report.sent.duplicates > 0);
    assert_eq!(report.accepted, 240 + report.sent.duplicates);
    assert_eq!(
        report.segments.len(),
        2,
        "the duplicates go out in a second pass"
    );
    let without_stamps = |rows: BTreeMap<String, Value>| -> Vec<Value> {
        rows.into_values()
            .map(|mut row| {
                let object = row.as_object_mut().unwrap();
                object.remove("revision");
                object.remove("computed_at");
                row
            })
            .collect()
    };
    assert_eq!(
        without_stamps(summaries(&app).await),
        without_stamps(summaries(&clean).await),
        "the statistics equal the run without duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_replace_values_and_the_table_equals_the_corrected_truth() {
    let app = spawn().await;
    let args = LoadgenArgs {
        correction_ratio: 0.3,
        ..args(&app.base)
    };
    let report = run(&app, args.clone()).await;
    assert!(report.sent.corrections > 0);
    assert_eq!(report.accepted, 240 + report.sent.corrections);
    let rows = summaries(&app).await;
    assert_ground_truth(&args.shape(), &rows);
    let uncorrected = LoadgenArgs {
        correction_ratio: 0.0,
        ..args.clone()
    }
    .shape()
    .expected_points();
    let corrected = args.shape().expected_points();
    assert_ne!(uncorrected, corrected, "corrections changed values");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_knobs_shape_the_requests_and_the_rate_paces_them() {
    let app = spawn().await;
    let args = LoadgenArgs {
        series: Some(3),
        points: Some(48),
        points_per_message: Some(7),
        series_per_request: Some(2),
        rate: Some(1_000.0),
        concurrency: 2,
        ..args(&app.base)
    };
    let report = run(&app, args.clone()).await;
    let runs = 48usize.div_ceil(7) as u64;
    assert_eq!(report.requests, 2 * runs, "series 1-2, then series 3");
    assert_eq!(report.messages, 2 * runs, "one message per request");
    assert_eq!(report.sent.items, 3 * 48);
    assert_eq!(report.segments[0].offered_rate, Some(1_000.0));
    assert!((report.offered_rate.unwrap() - 1_000.0).abs() < 1e-6);
    // Pacing: the last request (series 3 alone) is not due before the items ahead of it had
    // their time.
    let last_request_items = (48 % 7) as f64;
    assert!(report.elapsed_s >= (144.0 - last_request_items) / 1_000.0);
    assert_ground_truth(&args.shape(), &summaries(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_burst_workload_sends_its_middle_third_ten_times_faster() {
    let app = spawn().await;
    let args = LoadgenArgs {
        workload: Named::Burst,
        rate: Some(2_000.0),
        ..args(&app.base)
    };
    let report = run(&app, args.clone()).await;
    let offered: Vec<Option<f64>> = report.segments.iter().map(|s| s.offered_rate).collect();
    assert_eq!(offered, [Some(2_000.0), Some(20_000.0), Some(2_000.0)]);
    assert_eq!(
        report.segments.iter().map(|s| s.requests).sum::<u64>(),
        report.requests
    );
    assert_ground_truth(&args.shape(), &summaries(&app).await);
}

/// A loopback stand-in for a Function App's ingest (not the Functions host): it answers only
/// requests that carry the function key, counts their lines as accepted, and serves no
/// `/api/status`, as a Function App does not.
async fn function_app_stand_in(key: &'static str) -> String {
    let ingest = move |headers: HeaderMap, body: String| async move {
        if headers.get("x-functions-key").and_then(|v| v.to_str().ok()) != Some(key) {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({})));
        }
        let lines = body.lines().count();
        (
            StatusCode::OK,
            axum::Json(json!({"accepted": lines, "rejected": []})),
        )
    };
    let router = axum::Router::new().route("/api/ingest", axum::routing::post(ingest));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn the_function_key_is_sent_and_a_target_without_status_reports_no_settling() {
    let base = function_app_stand_in("sekret").await;
    let keyed = LoadgenArgs {
        functions_key: Some("sekret".into()),
        ..args(&base)
    };
    let report = loadgen::execute(&keyed).await.unwrap();
    assert_eq!((report.accepted, report.unanswered), (240, 0));
    assert!(report.settled.is_none());
    assert!(report.errors.is_empty());
    assert!(!serde_json::to_string(&report).unwrap().contains("sekret"));

    let unkeyed = loadgen::execute(&args(&base)).await.unwrap();
    assert_eq!(unkeyed.accepted, 0);
    assert_eq!(unkeyed.unanswered, 240);
    assert_eq!(
        unkeyed.errors,
        BTreeMap::from([("http 401".to_string(), 6)])
    );
}
