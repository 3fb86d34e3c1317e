//! The SQLite summary sink: `daily_summary` in the embedded database file.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rusqlite::params;

use super::rows::validate;
use crate::adapters::embedded::EmbeddedDb;
use crate::domain::observation::{format_ts, parse_ts};
use crate::domain::series::SeriesId;
use crate::domain::series_day::{Revision, RevisionParts};
use crate::domain::stats::{DailyStats, SummaryRow};
use crate::pipeline::ports::{PortResult, SummarySink};

/// Writes summary rows into the embedded database.
#[derive(Clone)]
pub struct SqliteSink {
    db: EmbeddedDb,
}

impl SqliteSink {
    pub fn new(db: EmbeddedDb) -> Self {
        Self { db }
    }
}

/// Reads one stored row back into the domain type; a value that does not parse means the
/// table was written by something else, which is reported, not guessed at.
fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SummaryRow> {
    fn text_error(
        column: usize,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    }
    let ts = |column: usize| -> rusqlite::Result<i64> {
        let text: String = r.get(column)?;
        parse_ts(&text).map_err(|e| text_error(column, std::io::Error::other(e)))
    };
    let day: String = r.get(1)?;
    let computed_at: String = r.get(16)?;
    Ok(SummaryRow {
        series: r.get(0)?,
        day: day.parse().map_err(|e| text_error(1, e))?,
        stats: DailyStats {
            count: r.get::<_, i64>(2)? as u64,
            sum: r.get(3)?,
            min: r.get(4)?,
            max: r.get(5)?,
            mean: r.get(6)?,
            stddev: r.get(7)?,
            first_value: r.get(8)?,
            first_ts: ts(9)?,
            last_value: r.get(10)?,
            last_ts: ts(11)?,
            p50: r.get(12)?,
            p90: r.get(13)?,
            p99: r.get(14)?,
        },
        revision: Revision::from_parts(RevisionParts {
            high: r.get(15)?,
            low: r.get(17)?,
        }),
        computed_at: DateTime::parse_from_rfc3339(&computed_at)
            .map_err(|e| text_error(16, e))?
            .with_timezone(&Utc),
    })
}

#[async_trait]
impl SummarySink for SqliteSink {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
        validate(rows)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let rows = rows.to_vec();
        self.db
            .call("upserting daily summaries", move |c| {
                let tx = c.transaction()?;
                let mut written = 0;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO daily_summary (series, day, count, sum, min, max, mean, stddev,
                            first_value, first_ts, last_value, last_ts, p50, p90, p99, revision, computed_at,
                            revision_low)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
                         ON CONFLICT (series, day) DO UPDATE SET
                            count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
                            mean = excluded.mean, stddev = excluded.stddev, first_value = excluded.first_value,
                            first_ts = excluded.first_ts, last_value = excluded.last_value,
                            last_ts = excluded.last_ts, p50 = excluded.p50, p90 = excluded.p90,
                            p99 = excluded.p99, revision = excluded.revision, computed_at = excluded.computed_at,
                            revision_low = excluded.revision_low
                         WHERE (excluded.revision, excluded.revision_low)
                             > (daily_summary.revision, daily_summary.revision_low)",
                    )?;
                    for row in &rows {
                        let s = &row.stats;
                        let revision = row.revision.parts().expect("validated rows have parts");
                        written += stmt.execute(params![
                            row.series,
                            row.day.to_string(),
                            s.count as i64,
                            s.sum,
                            s.min,
                            s.max,
                            s.mean,
                            s.stddev,
                            s.first_value,
                            format_ts(s.first_ts),
                            s.last_value,
                            format_ts(s.last_ts),
                            s.p50,
                            s.p90,
                            s.p99,
                            revision.high,
                            row.computed_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                            revision.low,
                        ])?;
                    }
                }
                tx.commit()?;
                Ok(written)
            })
            .await
    }

    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> PortResult<Vec<SummaryRow>> {
        let series = series.cloned();
        let day = day.map(|d| d.to_string());
        self.db
            .call("reading daily summaries", move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT series, day, count, sum, min, max, mean, stddev, first_value, first_ts,
                            last_value, last_ts, p50, p90, p99, revision, computed_at, revision_low
                     FROM daily_summary
                     WHERE (?1 IS NULL OR series = ?1) AND (?2 IS NULL OR day = ?2)
                     ORDER BY day, series",
                )?;
                let rows = stmt.query_map(params![series, day], stored_row)?;
                rows.collect()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sql::rows::tests::row;

    #[tokio::test]
    async fn a_sum_beyond_double_precision_is_stored_as_null() {
        let dir = tempfile::tempdir().unwrap();
        let sink = SqliteSink::new(EmbeddedDb::open(&dir.path().join("s.db")).unwrap());
        let mut beyond = row("a", "2026-11-18", 1, 1e308);
        beyond.stats.sum = None;
        assert_eq!(sink.upsert(&[beyond.clone()]).await.unwrap(), 1);
        assert_eq!(sink.read(None, None).await.unwrap(), [beyond]);
    }
}
