//! W1 through `eventide local` over HTTP next to the nightly batch design it replaces, in one run:
//!
//! ```sh
//! cargo run --release --example reports -- w1_vs_batch [--series N] [--points N] [--concurrency N]
//! ```
//!
//! 1. **W1**: a fresh embedded runtime, started in this process the way `eventide local` starts
//!    (`Server::launch`, the default settings, a real clock, HTTP on loopback), fed by the
//!    loadgen's W1 — 1,000 series × 1,440 points, 10 points per queue message, every series in
//!    each request. The figure is observations per second from the first request until
//!    `/api/status` shows every accepted point merged and the observations queue empty.
//! 2. The same at **60 points per message**, in another fresh runtime: the message size should no
//!    longer matter.
//! 3. **The batch design at its best**: the same rows, already parsed, upserted into a SQLite
//!    staging table keyed `(series, ts)` in one transaction, then one `GROUP BY` for the daily
//!    figures — with the same file settings as the embedded database, rows in key order (the
//!    fastest the B-tree takes them) and a prepared statement. It computes count, sum, min, max,
//!    mean and the variance (the bundled SQLite has no `sqrt`); our summary also has the
//!    standard deviation, first/last values and percentiles, so the comparison flatters the
//!    batch design.

use crate::flags::{self, Flag};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use eventide::app::{Config, Driver};
use eventide::drivers::loadgen::report::Report;
use eventide::drivers::loadgen::{self, LoadgenArgs};
use eventide::drivers::server::Server;
use eventide::drivers::staging::{self, StagedRow};
use eventide::pipeline::clock::SystemClock;

/// The knobs of the report (W1's shape by default).
struct Options {
    series: usize,
    points: usize,
    concurrency: usize,
}

fn options(argv: Vec<String>) -> anyhow::Result<Options> {
    let mut options = Options {
        series: 1_000,
        points: 1_440,
        concurrency: 4,
    };
    for Flag { name, value } in flags::numbers(argv) {
        let value = value as usize;
        match name.as_str() {
            "--series" => options.series = value,
            "--points" => options.points = value,
            "--concurrency" => options.concurrency = value,
            other => flags::unknown(other, "--series, --points, --concurrency"),
        }
    }
    Ok(options)
}

#[tokio::main]
pub async fn run(argv: Vec<String>) -> anyhow::Result<()> {
    let options = options(argv)?;
    let w1 = pipeline_run(&options, 10).await?;
    let w60 = pipeline_run(&options, 60).await?;
    let shape = w1.shape.clone();
    let rows: Vec<StagedRow> = shape
        .expected_points()
        .into_iter()
        .flat_map(|(series, points)| {
            points.into_iter().map(move |(ts, value)| StagedRow {
                series: series.clone(),
                ts,
                value,
            })
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let batch = tokio::task::spawn_blocking({
        let path = dir.path().join("batch.db");
        move || batch_design(&path, &rows)
    })
    .await??;

    let w1_rate = merged_rate(&w1)?;
    let w60_rate = merged_rate(&w60)?;
    let batch_rate = batch.rows as f64 / batch.seconds;
    println!(
        "W1 vs the batch design: {} series × {} points, {} series per request, {} requests in flight",
        shape.series, shape.points, shape.series_per_request, options.concurrency
    );
    for (name, report, rate) in [
        ("W1, 10 points per message", &w1, w1_rate),
        ("60 points per message", &w60, w60_rate),
    ] {
        println!(
            "  {name:<28} {:>9} observations in {:>6} messages, merged after {:>6.2} s = {rate:>9.0} observations/s",
            report.accepted,
            report.messages,
            report.accepted as f64 / rate,
        );
    }
    println!(
        "  {:<28} {:>9} rows: upsert {:.2} s + GROUP BY {:.2} s ({} days) = {batch_rate:>9.0} rows/s",
        "batch design (SQLite)",
        batch.rows,
        batch.upsert_seconds,
        batch.seconds - batch.upsert_seconds,
        batch.days
    );
    println!("  W1 / batch design            {:.2}", w1_rate / batch_rate);
    println!(
        "  60 per message / batch       {:.2}",
        w60_rate / batch_rate
    );
    println!("  W1 / 60 per message          {:.2}", w1_rate / w60_rate);
    Ok(())
}

/// Runs the workload at `points_per_message` against a fresh runtime and returns its report.
async fn pipeline_run(options: &Options, points_per_message: usize) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::on_file(dir.path().join("w1.db"));
    // The run measures ingest until merged; the end of day stays out of it.
    config.runtime.summarize_schedule = Some("0 0 0 1 1 *".into());
    let server = Server::launch(&config, Driver::Local, Arc::new(SystemClock)).await?;
    let args = LoadgenArgs {
        series: Some(options.series),
        points: Some(options.points),
        points_per_message: Some(points_per_message),
        day: Some(Utc::now().date_naive()),
        concurrency: options.concurrency,
        request_timeout: 120,
        build_first: true,
        ..LoadgenArgs::against(format!("http://{}", server.addr))
    };
    let report = loadgen::execute(&args).await?;
    server.shutdown().await;
    anyhow::ensure!(report.errors.is_empty(), "errors: {:?}", report.errors);
    Ok(report)
}

/// Accepted observations per second until all were merged.
fn merged_rate(report: &Report) -> anyhow::Result<f64> {
    let seconds = report
        .settled
        .as_ref()
        .and_then(|s| s.merged_after_s)
        .context("the run did not settle")?;
    Ok(report.accepted as f64 / seconds)
}

struct BatchRun {
    rows: usize,
    days: usize,
    upsert_seconds: f64,
    /// Upsert and `GROUP BY` together.
    seconds: f64,
}

/// The batch design: upsert into a staging table in one transaction, then one `GROUP BY`.
fn batch_design(path: &Path, rows: &[StagedRow]) -> anyhow::Result<BatchRun> {
    let mut conn = staging::open(path)?;
    conn.execute_batch(
        "CREATE TABLE daily (series TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL,
                             sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
                             mean REAL NOT NULL, variance REAL, PRIMARY KEY (series, day));",
    )?;
    let started = Instant::now();
    staging::upsert(&mut conn, rows, rows.len())?;
    let upsert_seconds = started.elapsed().as_secs_f64();
    let days = conn.execute(
        "INSERT INTO daily (series, day, count, sum, min, max, mean, variance)
         SELECT series, ts / 86400000000000, count(*), sum(value), min(value), max(value),
                avg(value),
                CASE WHEN count(*) > 1 THEN
                    max(0.0, (sum(value * value) - sum(value) * sum(value) / count(*))
                             / (count(*) - 1))
                END
         FROM staging WHERE true GROUP BY series, ts / 86400000000000
         ON CONFLICT (series, day) DO UPDATE SET count = excluded.count, sum = excluded.sum,
             min = excluded.min, max = excluded.max, mean = excluded.mean,
             variance = excluded.variance",
        [],
    )?;
    Ok(BatchRun {
        rows: rows.len(),
        days,
        upsert_seconds,
        seconds: started.elapsed().as_secs_f64(),
    })
}
