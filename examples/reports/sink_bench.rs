//! Figures for the SQL sinks: the end of day for N series-days × M points into SQLite and into
//! PostgreSQL, next to only reading the same documents; and the sink's rows/s next to a plain
//! `COPY` of the same rows into PostgreSQL.
//!
//! ```sh
//! EVENTIDE_TEST_POSTGRES=postgres://user:pw@127.0.0.1/db \
//!   cargo run --release --example reports -- sink_bench [--series N] [--points N] [--rounds N]
//! ```
//! Defaults: 10,000 series-days of 1,440 points, 3 rounds. The documents live in a temporary
//! embedded database; each PostgreSQL run writes into a fresh schema of its own, dropped
//! afterwards. A round reads the documents, then runs the whole end of day into SQLite and into
//! PostgreSQL, each sink emptied first so that every row is written; the shares are taken within
//! their round and summed up by their medians.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flags::{self, Flag};
use crate::rounds::median;
use anyhow::Context;
use chrono::{NaiveDate, TimeZone, Utc};
use eventide::adapters::embedded::Embedded;
use eventide::adapters::sql::SinkOptions;
use eventide::adapters::sql::postgres::PostgresSink;
use eventide::app::{App, Driver};
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::{DayState, Point, Revision, SeriesDayKey};
use eventide::domain::stats::SummaryRow;
use eventide::pipeline::Pipeline;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{DayPoints, SeriesDayStore, StateWrite, SummarySink};
use eventide::pipeline::summarize::DaySummaryReport;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

const BATCH: usize = 256;

/// The knobs of the report.
struct Options {
    series: usize,
    points: usize,
    rounds: usize,
}

fn options(argv: Vec<String>) -> Options {
    let mut options = Options {
        series: 10_000,
        points: 1_440,
        rounds: 3,
    };
    for Flag { name, value } in flags::numbers(argv) {
        let value = value as usize;
        match name.as_str() {
            "--series" => options.series = value,
            "--points" => options.points = value,
            "--rounds" => options.rounds = value.max(1),
            other => flags::unknown(other, "--series, --points, --rounds"),
        }
    }
    options
}

/// The end-of-day rates of one round (series-days per second), measured one after another.
struct Round {
    read_only: f64,
    into_sqlite: f64,
    into_postgres: f64,
}

#[tokio::main]
pub async fn run(argv: Vec<String>) -> anyhow::Result<()> {
    let Options {
        series,
        points,
        rounds,
    } = options(argv);
    let url = std::env::var("EVENTIDE_TEST_POSTGRES").context(
        "set EVENTIDE_TEST_POSTGRES to a PostgreSQL URL (scripts/lib/postgres.sh starts one)",
    )?;
    let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 1, 0, 0).unwrap(),
    ));
    let mut config = eventide_testkit::settings(dir.path().join("bench.db"));
    config.pipeline.summarize_batch = BATCH as u32;
    let app = App::build(&config, Driver::Local, clock.clone()).await?;
    let embedded = app.embedded.clone().expect("every port is embedded");

    let started = Instant::now();
    populate(&embedded, day, series, points).await?;
    println!(
        "populated {series} series-days × {points} points in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let connect: PgConnectOptions = url.parse()?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect.clone())
        .await?;
    let schema = format!("bench_{}", std::process::id());
    let sink = PostgresSink::connect_with(
        connect.clone(),
        SinkOptions {
            schema: Some(schema.clone()),
            ..SinkOptions::default()
        },
    )
    .await?;
    let timed = Arc::new(TimedSink {
        inner: Arc::new(sink.clone()),
        spent: std::sync::Mutex::new(Duration::ZERO),
    });
    let pipeline = app.pipeline.clone();
    let mut to_postgres = pipeline.clone();
    to_postgres.ports.sink = timed.clone();

    println!(
        "\nend of day, {series} series-days × {points} points, in batches of {BATCH} (series-days per second):"
    );
    let mut measured = Vec::new();
    for round in 1..=rounds {
        // Reading the documents only, in the batches the end of day uses.
        let keys = embedded.store.series_of_day(day).await?;
        let mut read_points = 0;
        let started = Instant::now();
        for batch in keys.chunks(BATCH) {
            for stored in embedded.store.read_days(batch).await?.into_iter().flatten() {
                read_points += stored.points.len();
            }
        }
        let read_only = rate(keys.len(), started.elapsed());
        assert_eq!(read_points, series * points);

        // The whole end of day (read, compute, upsert) into the embedded SQLite table.
        embedded
            .db
            .call("emptying the summary table", |c| {
                c.execute("DELETE FROM daily_summary", [])
            })
            .await?;
        let into_sqlite = rate(series, end_of_day(&pipeline, day, series).await?);

        // The same into PostgreSQL.
        admin
            .execute(AssertSqlSafe(format!(
                "TRUNCATE \"{schema}\".daily_summary"
            )))
            .await?;
        *timed.spent.lock().unwrap() = Duration::ZERO;
        let took = end_of_day(&to_postgres, day, series).await?;
        let into_postgres = rate(series, took);
        let in_sink = *timed.spent.lock().unwrap();

        println!(
            "  round {round}: read only {read_only:>6.0}   into SQLite {into_sqlite:>6.0} ({:.2})   into PostgreSQL {into_postgres:>6.0} ({:.2}) in {:.2} s, {:.2} s in PostgreSQL calls",
            into_sqlite / read_only,
            into_postgres / read_only,
            took.as_secs_f64(),
            in_sink.as_secs_f64()
        );
        measured.push(Round {
            read_only,
            into_sqlite,
            into_postgres,
        });
    }
    let median_of = |f: &dyn Fn(&Round) -> f64| median(measured.iter().map(f).collect());
    println!("medians of {rounds} rounds (each share within its round):");
    println!(
        "  read documents only          {:>10.0}",
        median_of(&|r| r.read_only)
    );
    println!(
        "  full job into SQLite         {:>10.0}  ({:.2} of read-only)",
        median_of(&|r| r.into_sqlite),
        median_of(&|r| r.into_sqlite / r.read_only)
    );
    println!(
        "  full job into PostgreSQL     {:>10.0}  ({:.2} of read-only)",
        median_of(&|r| r.into_postgres),
        median_of(&|r| r.into_postgres / r.read_only)
    );
    println!();

    // The sink alone, on the rows just computed, against COPY of the same rows.
    let rows = pipeline.ports.sink.read(None, Some(day)).await?;
    let bumped: Vec<Vec<SummaryRow>> = (1..=3)
        .map(|k| {
            rows.iter()
                .map(|r| SummaryRow {
                    revision: Revision::new(r.revision.value() + k),
                    ..r.clone()
                })
                .collect()
        })
        .collect();
    let mut sink_best = Duration::MAX;
    for (k, batch) in bumped.iter().enumerate() {
        // Run 0 inserts into an empty table, the others replace every row.
        if k == 0 {
            admin
                .execute(AssertSqlSafe(format!(
                    "TRUNCATE \"{schema}\".daily_summary"
                )))
                .await?;
        }
        let started = Instant::now();
        let written = sink.upsert(batch).await?;
        let took = started.elapsed();
        assert_eq!(written, rows.len());
        println!(
            "  sink upsert of {} rows ({}): {:.0} rows/s",
            rows.len(),
            if k == 0 { "insert" } else { "replace" },
            rate(rows.len(), took)
        );
        sink_best = sink_best.min(took);
    }
    let sqlite_sink = {
        let started = Instant::now();
        pipeline.ports.sink.upsert(&bumped[0]).await?;
        rate(rows.len(), started.elapsed())
    };
    // EVENTIDE_BENCH_PROBE=1: the latency of one upsert call by batch size, ten calls each.
    if std::env::var_os("EVENTIDE_BENCH_PROBE").is_some() {
        for n in [16usize, 64, 96, 256, 1000] {
            let n = n.min(rows.len());
            let mut times = Vec::new();
            for k in 0..10 {
                let batch: Vec<SummaryRow> = rows[..n]
                    .iter()
                    .map(|r| SummaryRow {
                        revision: Revision::new(r.revision.value() + 10 + k),
                        ..r.clone()
                    })
                    .collect();
                let started = Instant::now();
                sink.upsert(&batch).await?;
                times.push(format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0));
            }
            println!("  upsert call of {n:>4} rows, ms: {}", times.join(" "));
        }
    }
    let copy_best = copy_rows(&admin, &schema, &rows).await?;
    println!("\nsink rows per second ({} rows, best of 3):", rows.len());
    println!(
        "  PostgreSQL sink upsert       {:>10.0}",
        rate(rows.len(), sink_best)
    );
    println!(
        "  plain COPY into PostgreSQL   {:>10.0}",
        rate(rows.len(), copy_best)
    );
    println!("  SQLite sink upsert (replace) {sqlite_sink:>10.0}");

    admin
        .execute(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .await?;
    Ok(())
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Runs the whole end of day through `pipeline` into its sink, which holds none of the day's
/// rows yet, and says how long it took.
async fn end_of_day(
    pipeline: &Pipeline,
    day: NaiveDate,
    series: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let DaySummaryReport {
        computed, written, ..
    } = pipeline.summarize_day(day).await?;
    let took = started.elapsed();
    anyhow::ensure!(
        (computed, written) == (series, series),
        "computed {computed} and wrote {written} of {series} series-days"
    );
    Ok(took)
}

/// Writes `series` days of `points` points each straight into the embedded store.
async fn populate(
    embedded: &Embedded,
    day: NaiveDate,
    series: usize,
    points: usize,
) -> anyhow::Result<()> {
    let start = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let step = 86_400_000_000_000 / points as i64;
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    let keys: Vec<SeriesDayKey> = (0..series)
        .map(|s| {
            let name = format!("site-{:03}/meter-{s:05}", s % 97);
            SeriesDayKey::new(SeriesId::parse(&name).expect("a valid name"), day)
        })
        .collect();
    for chunk in keys.chunks(100) {
        let states: Vec<StateWrite> = chunk
            .iter()
            .map(|k| StateWrite {
                key: k.clone(),
                expected_version: None,
                state: DayState::next_epoch(None, now),
            })
            .collect();
        embedded.store.write_states(&states).await?;
        let days: Vec<DayPoints> = chunk
            .iter()
            .enumerate()
            .map(|(i, key)| DayPoints {
                key: key.clone(),
                points: (0..points)
                    .map(|p| Point {
                        ts: start.timestamp_nanos_opt().unwrap() + p as i64 * step,
                        value: 1_000.0 + ((p * 7 + i * 13) % 1_000) as f64 * 0.25,
                        stamp: 1,
                    })
                    .collect(),
            })
            .collect();
        let prepared = embedded.store.prepare(&days).await?;
        embedded.store.commit(&prepared).await?;
    }
    Ok(())
}

/// The best of three plain `COPY … FROM STDIN` of the same rows into a table of the same shape.
async fn copy_rows(
    admin: &sqlx::PgPool,
    schema: &str,
    rows: &[SummaryRow],
) -> anyhow::Result<Duration> {
    let table = format!("\"{schema}\".copy_target");
    admin
        .execute(AssertSqlSafe(format!(
            "CREATE TABLE {table} (LIKE \"{schema}\".daily_summary INCLUDING ALL)"
        )))
        .await?;
    let mut text = String::new();
    for r in rows {
        let s = &r.stats;
        let stddev = s.stddev.map_or("\\N".to_string(), |v| format!("{v:?}"));
        let sum = s.sum.map_or("\\N".to_string(), |v| format!("{v:?}"));
        let revision = r.revision.parts().expect("computed revisions have parts");
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{:?}\t{:?}\t{:?}\t{}\t{:?}\t{}\t{:?}\t{}\t{:?}\t{:?}\t{:?}\t{}\t{}\t{}\n",
            r.series,
            r.day,
            s.count,
            sum,
            s.min,
            s.max,
            s.mean,
            stddev,
            s.first_value,
            eventide::domain::observation::format_ts(s.first_ts),
            s.last_value,
            eventide::domain::observation::format_ts(s.last_ts),
            s.p50,
            s.p90,
            s.p99,
            revision.high,
            r.computed_at.to_rfc3339(),
            revision.low,
        ));
    }
    let mut best = Duration::MAX;
    for _ in 0..3 {
        admin
            .execute(AssertSqlSafe(format!("TRUNCATE {table}")))
            .await?;
        let mut conn = admin.acquire().await?;
        let started = Instant::now();
        let mut copy = conn
            .copy_in_raw(&format!("COPY {table} FROM STDIN"))
            .await?;
        copy.send(text.as_bytes()).await?;
        let copied = copy.finish().await?;
        best = best.min(started.elapsed());
        anyhow::ensure!(copied as usize == rows.len(), "COPY wrote {copied} rows");
    }
    Ok(best)
}

/// Adds up the time spent in sink calls (which overlap one another and the reading).
struct TimedSink {
    inner: Arc<dyn SummarySink>,
    spent: std::sync::Mutex<Duration>,
}

#[async_trait::async_trait]
impl SummarySink for TimedSink {
    async fn upsert(&self, rows: &[SummaryRow]) -> eventide::pipeline::ports::PortResult<usize> {
        let started = Instant::now();
        let result = self.inner.upsert(rows).await;
        *self.spent.lock().unwrap() += started.elapsed();
        result
    }

    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> eventide::pipeline::ports::PortResult<Vec<SummaryRow>> {
        self.inner.read(series, day).await
    }
}
