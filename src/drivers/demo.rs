//! `eventide demo`: a synthetic day for N series through the real HTTP ingest of an embedded
//! runtime on a manual clock, then the end of day, then a report — the throughput figure of the
//! local mode next to the same rows upserted straight into SQLite in the same run.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{NaiveDate, Utc};

use super::server::Server;
use super::staging::{self, StagedRow};
use crate::app::{Config, Driver};
use crate::domain::calendar::Calendar;
use crate::pipeline::clock::ManualClock;

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Number of series.
    #[arg(long, default_value_t = 1000)]
    pub series: usize,
    /// Points per series over the day (evenly spaced).
    #[arg(long, default_value_t = 1440)]
    pub points: usize,
    /// Points per series in one request, hence per queue message.
    #[arg(long, default_value_t = 60)]
    pub points_per_message: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Put one invalid row every N rows (0: none), to show per-item rejection.
    #[arg(long, default_value_t = 10_000)]
    pub bad_every: usize,
    /// Database file (default: a fresh temporary file).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Summary rows shown in the excerpt.
    #[arg(long, default_value_t = 5)]
    pub excerpt: usize,
}

/// The synthetic value of series `s` at point `i`: a daily wave plus deterministic noise.
fn synthetic_value(s: usize, i: usize, points: usize) -> f64 {
    let phase = i as f64 / points as f64 * std::f64::consts::TAU;
    let noise = ((s * 7919 + i * 104_729) % 1000) as f64 / 1000.0;
    20.0 + s as f64 * 0.01 + 5.0 * phase.sin() + noise
}

/// NDJSON request bodies: each covers `points_per_message` consecutive points of every series,
/// the way a source that reports all its series together would send them.
fn request_bodies(args: &DemoArgs, calendar: &Calendar, day: NaiveDate) -> (Vec<String>, usize) {
    let start = calendar.start_of(day);
    let step = 86_400_000_000_000i64 / args.points as i64;
    let start_ns = start.timestamp_nanos_opt().unwrap_or_default();
    let mut bodies = Vec::new();
    let mut bad = 0;
    let mut row = 0usize;
    for first in (0..args.points).step_by(args.points_per_message.max(1)) {
        let mut body = String::with_capacity(args.series * args.points_per_message * 80);
        for s in 0..args.series {
            for i in first..(first + args.points_per_message).min(args.points) {
                row += 1;
                let ts = crate::domain::observation::format_ts(start_ns + i as i64 * step);
                if args.bad_every > 0 && row.is_multiple_of(args.bad_every) {
                    bad += 1;
                    let _ = writeln!(
                        body,
                        r#"{{"series":"demo-{s:04}","ts":"{ts}","value":"n/a"}}"#
                    );
                    continue;
                }
                let value = synthetic_value(s, i, args.points);
                let _ = writeln!(
                    body,
                    r#"{{"series":"demo-{s:04}","ts":"{ts}","value":{value}}}"#
                );
            }
        }
        bodies.push(body);
    }
    (bodies, bad)
}

/// Upserts the same rows straight into a fresh SQLite file: the raw rate to compare against.
fn raw_sqlite_rate(path: PathBuf, args: &DemoArgs) -> anyhow::Result<f64> {
    let mut conn = staging::open(&path)?;
    let rows: Vec<StagedRow> = (0..args.points)
        .flat_map(|i| (0..args.series).map(move |s| (s, i)))
        .map(|(s, i)| StagedRow {
            series: format!("demo-{s:04}"),
            ts: i as i64 * 60_000_000_000,
            value: synthetic_value(s, i, args.points),
        })
        .collect();
    let started = Instant::now();
    // The same arrival order and transaction granularity as the requests.
    staging::upsert(
        &mut conn,
        &rows,
        args.series * args.points_per_message.max(1),
    )?;
    Ok(rows.len() as f64 / started.elapsed().as_secs_f64())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.series == 0 || args.points == 0 {
        bail!("--series and --points must be positive");
    }
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("demo.db"));
    let calendar = Calendar::default();
    let day = Utc::now().date_naive().pred_opt().context("yesterday")?;
    let clock = Arc::new(ManualClock::new(
        calendar.start_of(day) + chrono::Duration::hours(12),
    ));
    // The demo's own settings, whatever the shell holds: a run is reproducible.
    let mut config = Config::on_file(db.clone());
    config.runtime.summarize_schedule = Some("0 0 0 1 1 *".into()); // the demo runs the end of day itself
    let app = Server::launch(&config, Driver::Local, clock.clone()).await?;
    let url = format!("http://{}/api/ingest", app.addr);

    let (bodies, bad) = request_bodies(&args, &calendar, day);
    let total = args.series * args.points;
    println!(
        "eventide demo: {} series x {} points on {day} = {total} observations in {} requests ({} invalid rows on purpose)",
        args.series,
        args.points,
        bodies.len(),
        bad
    );

    let client = reqwest::Client::new();
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut sends = tokio::task::JoinSet::new();
    for body in bodies {
        let permit = semaphore.clone().acquire_owned().await?;
        let (client, url) = (client.clone(), url.clone());
        sends.spawn(async move {
            let _permit = permit;
            let response = client
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let report: serde_json::Value = response.json().await?;
            if !status.is_success() {
                bail!("ingest answered {status}: {report}");
            }
            Ok::<_, anyhow::Error>((
                report["accepted"].as_u64().unwrap_or(0),
                report["rejected"].as_array().map_or(0, Vec::len) as u64,
            ))
        });
    }
    let (mut accepted, mut rejected) = (0u64, 0u64);
    while let Some(result) = sends.join_next().await {
        let (a, r) = result??;
        accepted += a;
        rejected += r;
    }
    let ingest_secs = started.elapsed().as_secs_f64();

    // Wait until every accepted point is merged.
    loop {
        let status = app.app.status().await?;
        let merged = status.counters.get("points_merged").copied().unwrap_or(0);
        let backlog = status
            .queues
            .as_ref()
            .map_or(0, |q| q.observations.active + q.observations.deferred);
        if merged >= accepted && backlog == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("observations were not merged within 10 minutes (merged {merged} of {accepted})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let merged_secs = started.elapsed().as_secs_f64();

    // End of day: move the clock past the due time and drain the summaries.
    clock
        .set(calendar.end_of(day) + app.app.pipeline.settings.grace + chrono::Duration::seconds(1));
    let eod_started = Instant::now();
    let mut written = 0;
    while written < args.series {
        let tick = app.summarize_now().await;
        if let Some(error) = tick.error {
            bail!("summarize failed: {error}");
        }
        if tick.received == 0 {
            break;
        }
        written += tick.written;
    }
    let eod_secs = eod_started.elapsed().as_secs_f64();
    let total_secs = started.elapsed().as_secs_f64();

    let status = app.app.status().await?;
    let rows = app.app.pipeline.ports.sink.read(None, Some(day)).await?;
    let raw_rate = {
        let (path, args) = (dir.path().join("raw.db"), args.clone());
        tokio::task::spawn_blocking(move || raw_sqlite_rate(path, &args)).await??
    };
    app.shutdown().await;

    println!("\nsummary excerpt (daily_summary, {} rows):", rows.len());
    println!(
        "{:<10} {:>6} {:>10} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
        "series", "count", "mean", "min", "max", "stddev", "p50", "p90", "p99"
    );
    for row in rows.iter().take(args.excerpt) {
        println!(
            "{:<10} {:>6} {:>10.4} {:>8.3} {:>8.3} {:>9.4} {:>8.3} {:>8.3} {:>8.3}",
            row.series,
            row.stats.count,
            row.stats.mean,
            row.stats.min,
            row.stats.max,
            row.stats.stddev.unwrap_or(f64::NAN),
            row.stats.p50,
            row.stats.p90,
            row.stats.p99
        );
    }
    let counters = &status.counters;
    let e2e_rate = accepted as f64 / merged_secs;
    println!("\nreport:");
    println!("  observations accepted / rejected : {accepted} / {rejected}");
    println!("  ingest (HTTP) finished after     : {ingest_secs:.2} s");
    println!(
        "  ingest -> merged                 : {merged_secs:.2} s = {e2e_rate:.0} observations/s"
    );
    println!(
        "  end of day (summarize)           : {eod_secs:.2} s = {:.0} series-days/s",
        rows.len() as f64 / eod_secs
    );
    println!(
        "  whole flow incl. end of day      : {total_secs:.2} s = {:.0} observations/s",
        accepted as f64 / total_secs
    );
    println!(
        "  raw SQLite upsert, same rows     : {raw_rate:.0} rows/s (pipeline at {:.2}x of it)",
        e2e_rate / raw_rate
    );
    println!(
        "  observation messages             : {}",
        counters.get("chunks_sent").copied().unwrap_or(0)
    );
    println!(
        "  summarize messages scheduled     : {} for {} series-days",
        counters.get("summaries_scheduled").copied().unwrap_or(0),
        rows.len()
    );
    println!(
        "  quarantined items                : {}",
        status.quarantine.unwrap_or(0)
    );
    Ok(())
}
