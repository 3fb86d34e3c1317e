//! W1 through `eventide local` over HTTP next to the nightly batch design it replaces, in one run:
//!
//! ```sh
//! cargo run --release --example reports -- w1_vs_batch [--series N] [--points N] [--concurrency N] [--rounds N]
//! ```
//!
//! Each round measures three things one after another:
//! 1. **W1**: a fresh embedded runtime, started in this process the way `eventide local` starts
//!    (`Server::launch`, the default settings, a real clock, HTTP on loopback), fed by the
//!    loadgen's W1 — 1,000 series × 1,440 points, 10 points of each series at a time, every
//!    series in each request, every body built before the clock starts (as the batch design's
//!    rows are). The figure is observations per second from the first request until
//!    `/api/status` shows every accepted point merged and the observations queue empty.
//! 2. The same at **60 points at a time**, in another fresh runtime: how much the size of what a
//!    source sends at once still matters.
//! 3. **The batch design at its best**: the same rows, already parsed, upserted into a SQLite
//!    staging table keyed `(series, ts)` in one transaction, then one `GROUP BY` for the daily
//!    figures — with the same file settings as the embedded database, rows in key order (the
//!    fastest the B-tree takes them) and a prepared statement. It computes count, sum, min, max,
//!    mean and the variance (the bundled SQLite has no `sqrt`); our summary also has the
//!    standard deviation, first/last values and percentiles, so the comparison flatters the
//!    batch design.
//!
//! The machine is shared: a neighbour's load slows one phase and not the next. Each ratio is
//! taken within its round, and the report ends with the medians over the rounds (3 by default).

use crate::flags::{self, Flag};
use crate::rounds::median;
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
    rounds: usize,
}

fn options(argv: Vec<String>) -> anyhow::Result<Options> {
    let mut options = Options {
        series: 1_000,
        points: 1_440,
        concurrency: 4,
        rounds: 3,
    };
    for Flag { name, value } in flags::numbers(argv) {
        let value = value as usize;
        match name.as_str() {
            "--series" => options.series = value,
            "--points" => options.points = value,
            "--concurrency" => options.concurrency = value,
            "--rounds" => options.rounds = value.max(1),
            other => flags::unknown(other, "--series, --points, --concurrency, --rounds"),
        }
    }
    Ok(options)
}

/// The three rates of one round, measured one after another.
struct Round {
    w1: f64,
    w60: f64,
    batch: f64,
}

#[tokio::main]
pub async fn run(argv: Vec<String>) -> anyhow::Result<()> {
    let options = options(argv)?;
    let args = loadgen_args(&options, 10, "http://unused".into());
    let shape = args.shape();
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
    let rows = Arc::new(rows);
    println!(
        "W1 vs the batch design: {} series × {} points, {} series per request, {} requests in flight, {} rounds",
        shape.series, shape.points, shape.series_per_request, options.concurrency, options.rounds
    );
    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        let w1 = pipeline_run(&options, 10).await?;
        let w60 = pipeline_run(&options, 60).await?;
        let dir = tempfile::tempdir()?;
        let batch = tokio::task::spawn_blocking({
            let (path, rows) = (dir.path().join("batch.db"), rows.clone());
            move || batch_design(&path, &rows)
        })
        .await??;
        let measured = Round {
            w1: merged_rate(&w1)?,
            w60: merged_rate(&w60)?,
            batch: batch.rows as f64 / batch.seconds,
        };
        println!("round {round}:");
        for (name, report, rate) in [
            ("W1, 10 points at a time", &w1, measured.w1),
            ("60 points at a time", &w60, measured.w60),
        ] {
            println!(
                "  {name:<28} {:>9} observations in {:>6} messages, merged after {:>6.2} s = {rate:>9.0} observations/s",
                report.accepted,
                report.messages,
                report.accepted as f64 / rate,
            );
        }
        println!(
            "  {:<28} {:>9} rows: upsert {:.2} s + GROUP BY {:.2} s ({} days) = {:>9.0} rows/s",
            "batch design (SQLite)",
            batch.rows,
            batch.upsert_seconds,
            batch.seconds - batch.upsert_seconds,
            batch.days,
            measured.batch
        );
        println!(
            "  W1 / batch {:.2}, 60 at a time / batch {:.2}, W1 / 60 at a time {:.2}",
            measured.w1 / measured.batch,
            measured.w60 / measured.batch,
            measured.w1 / measured.w60
        );
        rounds.push(measured);
    }
    let median_of = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    println!(
        "medians of {} rounds (each ratio within its round):",
        rounds.len()
    );
    println!(
        "  W1 {:.0} observations/s, 60 at a time {:.0}, batch design {:.0} rows/s",
        median_of(&|r| r.w1),
        median_of(&|r| r.w60),
        median_of(&|r| r.batch)
    );
    println!(
        "  W1 / batch design            {:.2}",
        median_of(&|r| r.w1 / r.batch)
    );
    println!(
        "  60 at a time / batch design  {:.2}",
        median_of(&|r| r.w60 / r.batch)
    );
    println!(
        "  W1 / 60 at a time            {:.2}",
        median_of(&|r| r.w1 / r.w60)
    );
    Ok(())
}

/// The loadgen's arguments for a run at `points_per_message` against `target`.
fn loadgen_args(options: &Options, points_per_message: usize, target: String) -> LoadgenArgs {
    LoadgenArgs {
        series: Some(options.series),
        points: Some(options.points),
        points_per_message: Some(points_per_message),
        day: Some(Utc::now().date_naive()),
        concurrency: options.concurrency,
        request_timeout: 120,
        build_first: true,
        ..LoadgenArgs::against(target)
    }
}

/// Runs the workload at `points_per_message` against a fresh runtime and returns its report.
async fn pipeline_run(options: &Options, points_per_message: usize) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::on_file(dir.path().join("w1.db"));
    // The run measures ingest until merged; the end of day stays out of it.
    config.runtime.summarize_schedule = Some("0 0 0 1 1 *".into());
    let server = Server::launch(&config, Driver::Local, Arc::new(SystemClock)).await?;
    let args = loadgen_args(
        options,
        points_per_message,
        format!("http://{}", server.addr),
    );
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
