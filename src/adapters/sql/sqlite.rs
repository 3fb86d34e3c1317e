//! The SQLite summary sink: `daily_summary` in the embedded database file.

use async_trait::async_trait;
use chrono::SecondsFormat;
use rusqlite::params;
use serde::Serialize;

use crate::adapters::embedded::EmbeddedDb;
use crate::domain::observation::format_ts;
use crate::domain::stats::SummaryRow;
use crate::pipeline::ports::{PortResult, SummarySink};

/// Writes summary rows into the embedded database.
#[derive(Clone)]
pub struct SqliteSink {
    db: EmbeddedDb,
}

/// A stored summary row, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSummary {
    pub series: String,
    pub day: String,
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: Option<f64>,
    pub first_value: f64,
    pub first_ts: String,
    pub last_value: f64,
    pub last_ts: String,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub revision: i64,
    pub computed_at: String,
}

impl SqliteSink {
    pub fn new(db: EmbeddedDb) -> Self {
        Self { db }
    }

    /// Stored rows, optionally filtered by series and day, ordered by day then series.
    pub async fn rows(
        &self,
        series: Option<String>,
        day: Option<String>,
    ) -> PortResult<Vec<StoredSummary>> {
        self.db
            .call("reading daily summaries", move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT series, day, count, sum, min, max, mean, stddev, first_value, first_ts,
                            last_value, last_ts, p50, p90, p99, revision, computed_at
                     FROM daily_summary
                     WHERE (?1 IS NULL OR series = ?1) AND (?2 IS NULL OR day = ?2)
                     ORDER BY day, series",
                )?;
                let rows = stmt.query_map(params![series, day], |r| {
                    Ok(StoredSummary {
                        series: r.get(0)?,
                        day: r.get(1)?,
                        count: r.get(2)?,
                        sum: r.get(3)?,
                        min: r.get(4)?,
                        max: r.get(5)?,
                        mean: r.get(6)?,
                        stddev: r.get(7)?,
                        first_value: r.get(8)?,
                        first_ts: r.get(9)?,
                        last_value: r.get(10)?,
                        last_ts: r.get(11)?,
                        p50: r.get(12)?,
                        p90: r.get(13)?,
                        p99: r.get(14)?,
                        revision: r.get(15)?,
                        computed_at: r.get(16)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }
}

#[async_trait]
impl SummarySink for SqliteSink {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
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
                            first_value, first_ts, last_value, last_ts, p50, p90, p99, revision, computed_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
                         ON CONFLICT (series, day) DO UPDATE SET
                            count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
                            mean = excluded.mean, stddev = excluded.stddev, first_value = excluded.first_value,
                            first_ts = excluded.first_ts, last_value = excluded.last_value,
                            last_ts = excluded.last_ts, p50 = excluded.p50, p90 = excluded.p90,
                            p99 = excluded.p99, revision = excluded.revision, computed_at = excluded.computed_at
                         WHERE excluded.revision > daily_summary.revision",
                    )?;
                    for row in &rows {
                        let s = &row.stats;
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
                            row.revision,
                            row.computed_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                        ])?;
                    }
                }
                tx.commit()?;
                Ok(written)
            })
            .await
    }
}
