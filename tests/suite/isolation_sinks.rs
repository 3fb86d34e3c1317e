//! The summary sinks store what the pipeline now hands them, the same way: a sum beyond double
//! precision as NULL, and 128-bit revisions compared whole — a row whose revision differs only in
//! its low part (a correction that tied on the stamp) replaces the stored one. Rows written before
//! the migration keep their revision as its high part and are replaced by the day's next summary.
//!
//! SQLite always; PostgreSQL when `EVENTIDE_TEST_POSTGRES` is set (`scripts/test` sets it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use eventide::adapters::embedded::EmbeddedDb;
use eventide::adapters::sql::SinkOptions;
use eventide::adapters::sql::migrations::{self, POSTGRES};
use eventide::adapters::sql::postgres::PostgresSink;
use eventide::adapters::sql::sqlite::SqliteSink;
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::Revision;
use eventide::domain::stats::{DailyStats, SummaryRow};
use eventide::pipeline::ports::SummarySink;
use eventide::pipeline::retry::RetryPolicy;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Executor};

fn day() -> NaiveDate {
    "2026-11-24".parse().unwrap()
}

fn at() -> DateTime<Utc> {
    "2026-11-25T00:15:00.123456Z".parse().unwrap()
}

fn row(series: &str, revision: u128, value: f64) -> SummaryRow {
    let start = day().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let ts = start.timestamp_nanos_opt().unwrap();
    SummaryRow {
        series: SeriesId::parse(series).unwrap(),
        day: day(),
        stats: DailyStats {
            count: 2,
            sum: Some(2.0 * value),
            min: value,
            max: value,
            mean: value,
            stddev: Some(0.0),
            first_value: value,
            first_ts: ts,
            last_value: value,
            last_ts: ts + 60_000_000_000,
            p50: value,
            p90: value,
            p99: value,
        },
        revision: Revision::new(revision),
        computed_at: at(),
    }
}

/// The contract both sinks keep.
async fn stores_what_the_pipeline_hands_it(sink: &dyn SummarySink) {
    // A sum beyond double precision is NULL; everything else is kept.
    let mut beyond = row("beyond", 1 << 64, 1e308);
    beyond.stats.sum = None;
    assert_eq!(sink.upsert(std::slice::from_ref(&beyond)).await.unwrap(), 1);
    let read = sink.read(Some(&beyond.series), None).await.unwrap();
    assert_eq!(read, [beyond]);

    // Revisions that differ only in their low part, and at the ends of each part: each step
    // is written (or not) and read back.
    let tie = 7u128 << 64;
    let steps = [
        (tie + 5, 1.0, 1),
        (tie + 4, 9.0, 0),
        (tie + 5, 9.0, 0),
        (tie + 6, 2.0, 1),
        (tie + u128::from(u64::MAX), 3.0, 1),
        (tie, 9.0, 0),
        (8 << 64, 4.0, 1),
        ((1 << 127) - 1, 5.0, 1),
    ];
    let mut stored = None;
    for (revision, value, written) in steps {
        let incoming = row("tie", revision, value);
        let n = sink.upsert(std::slice::from_ref(&incoming)).await.unwrap();
        assert_eq!(n, written, "revision {revision}");
        if written == 1 {
            stored = Some(incoming);
        }
        let tie_series = SeriesId::parse("tie").unwrap();
        let read = sink.read(Some(&tie_series), None).await.unwrap();
        assert_eq!(
            read.as_slice(),
            stored.as_slice(),
            "after revision {revision}"
        );
    }
}

#[tokio::test]
async fn sqlite_stores_null_sums_and_compares_whole_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::new(EmbeddedDb::open(&dir.path().join("s.db")).unwrap());
    stores_what_the_pipeline_hands_it(&sink).await;
}

fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("EVENTIDE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED {test} on PostgreSQL: EVENTIDE_TEST_POSTGRES is not set");
            None
        }
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn options(test: &str) -> SinkOptions {
    SinkOptions {
        schema: Some(format!(
            "iso_{test}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )),
        max_connections: 4,
        timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    }
}

#[tokio::test]
async fn postgres_stores_null_sums_and_compares_whole_revisions() {
    let Some(url) = postgres_url("whole_revisions") else {
        return;
    };
    let sink = PostgresSink::connect(&url, options("whole")).await.unwrap();
    assert_eq!(sink.schema_version(), migrations::latest(POSTGRES));
    stores_what_the_pipeline_hands_it(&sink).await;
    sink.close().await;
}

#[tokio::test]
async fn postgres_rows_from_before_the_migration_are_replaced_by_the_next_summary() {
    let Some(url) = postgres_url("migrated_rows") else {
        return;
    };
    let options = options("migrated");
    let schema = options.schema.clone().unwrap();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    // The schema as version 1 left it, with one row whose revision is the sum of its stamps.
    let v1 = migrations::render(&POSTGRES[0], &format!("\"{schema}\"."));
    admin
        .execute(AssertSqlSafe(format!(
            "CREATE SCHEMA \"{schema}\";
             CREATE TABLE \"{schema}\".eventide_schema_version (
                 version integer PRIMARY KEY, description text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO \"{schema}\".eventide_schema_version (version, description) VALUES (1, 'v1');
             {v1}
             INSERT INTO \"{schema}\".daily_summary VALUES ('old', '2026-11-24', 2, 2.0, 1.0, 1.0,
                 1.0, 0.0, 1.0, '2026-11-24T00:00:00Z', 1.0, '2026-11-24T00:01:00Z', 1.0, 1.0,
                 1.0, 7, '2026-11-25T00:15:00Z');"
        )))
        .await
        .unwrap();

    let sink = PostgresSink::connect(&url, options).await.unwrap();
    assert_eq!(sink.schema_version(), migrations::latest(POSTGRES));
    let old = SeriesId::parse("old").unwrap();
    let stored = sink.read(Some(&old), None).await.unwrap();
    assert_eq!(stored[0].revision, Revision::from_stamp_sum(7));
    assert_eq!(stored[0].stats.sum, Some(2.0));
    // The same stamps with any values is a newer state of the day; fewer stamps is not.
    assert_eq!(sink.upsert(&[row("old", 6 << 64, 5.0)]).await.unwrap(), 0);
    assert_eq!(
        sink.upsert(&[row("old", (7 << 64) + 1, 5.0)])
            .await
            .unwrap(),
        1
    );
    sink.close().await;
    admin
        .execute(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .await
        .unwrap();
}
