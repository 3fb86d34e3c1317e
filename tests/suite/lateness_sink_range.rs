//! The summary sinks take rows whose first and last timestamps are the ends of the accepted
//! range (1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z) and read them
//! back. SQLite keeps the text; PostgreSQL keeps microseconds, so the ends come back within a
//! microsecond — but still inside the range. PostgreSQL runs only where
//! `EVENTIDE_TEST_POSTGRES` names a server (scripts/test sets it).

use chrono::Utc;
use eventide::adapters::embedded::EmbeddedDb;
use eventide::adapters::sql::SinkOptions;
use eventide::adapters::sql::postgres::PostgresSink;
use eventide::adapters::sql::sqlite::SqliteSink;
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::Revision;
use eventide::domain::stats::{DailyStats, SummaryRow};
use eventide::pipeline::ports::SummarySink;

fn extreme_row() -> SummaryRow {
    SummaryRow {
        series: SeriesId::parse("extremes").unwrap(),
        day: "1677-09-21".parse().unwrap(),
        stats: DailyStats {
            count: 2,
            sum: Some(3.0),
            min: 1.0,
            max: 2.0,
            mean: 1.5,
            stddev: Some(0.5f64.sqrt()),
            first_value: 1.0,
            first_ts: i64::MIN,
            last_value: 2.0,
            last_ts: i64::MAX,
            p50: 1.5,
            p90: 1.9,
            p99: 1.99,
        },
        revision: Revision::new(1),
        computed_at: Utc::now(),
    }
}

async fn round_trip(sink: &dyn SummarySink) -> SummaryRow {
    assert_eq!(sink.upsert(&[extreme_row()]).await.unwrap(), 1);
    let mut rows = sink.read(None, None).await.unwrap();
    assert_eq!(rows.len(), 1);
    rows.remove(0)
}

#[tokio::test]
async fn sqlite_keeps_the_ends_of_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::new(EmbeddedDb::open(&dir.path().join("s.db")).unwrap());
    let row = round_trip(&sink).await;
    assert_eq!(
        (row.stats.first_ts, row.stats.last_ts),
        (i64::MIN, i64::MAX)
    );
}

#[tokio::test]
async fn postgres_keeps_the_ends_of_the_range_to_the_microsecond() {
    let Ok(url) = std::env::var("EVENTIDE_TEST_POSTGRES") else {
        eprintln!("SKIPPED on PostgreSQL: EVENTIDE_TEST_POSTGRES is not set");
        return;
    };
    let options = SinkOptions {
        schema: Some(format!("range_{}", std::process::id())),
        ..SinkOptions::default()
    };
    let sink = PostgresSink::connect(&url, options).await.unwrap();
    let row = round_trip(&sink).await;
    let (first, last) = (row.stats.first_ts, row.stats.last_ts);
    assert!(first.abs_diff(i64::MIN) < 1_000, "{first}");
    assert!(last.abs_diff(i64::MAX) < 1_000, "{last}");
}
