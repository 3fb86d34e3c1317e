//! `restate`: replace the rows of closed days on purpose (`eventide backfill FILE`).
//!
//! A closed day takes no more data (see `domain::lateness`); what changes it is a restatement:
//! the whole day sent again. Its row is computed from exactly the points sent — whatever the
//! store still holds of the day is not mixed in — and written with a revision above every
//! revision the day had, in the sink or in the store, so it replaces the row even when it has
//! fewer points than before, and a summary of the day still pending in the store cannot put the
//! old figures back. A later restatement of the same day replaces this one the same way.
//!
//! Open days are refused: they still take data through ingest, and a row written now would be
//! replaced by their next summary.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::domain::parse::{BodyError, BodyFormat, Rejection, parse_body};
use crate::domain::series::SeriesId;
use crate::domain::series_day::{Point, Revision, SeriesDayKey, revision};
use crate::domain::stats::SummaryRow;

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::{DayPoints, PortError};

/// What one restatement did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestateReport {
    /// Closed series-days whose rows were computed from the file.
    pub restated: usize,
    /// Rows written (a row is only left alone when a concurrent restatement was newer).
    pub written: usize,
    /// Items of the file that are not valid observations.
    pub rejected: Vec<Rejection>,
    /// Series-days that are still open.
    pub refused: Vec<RefusedDay>,
}

/// A series-day a restatement did not take, and why.
#[derive(Debug, serde::Serialize)]
pub struct RefusedDay {
    pub series: SeriesId,
    pub day: NaiveDate,
    pub reason: String,
}

/// Why a restatement failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RestateError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Dependency(#[from] PortError),
}

impl Pipeline {
    /// Restates every closed series-day the body holds, each as exactly the points given for
    /// it (within the body, the last value given for a timestamp wins, as at ingest).
    pub async fn restate(
        &self,
        format: BodyFormat,
        body: &[u8],
    ) -> Result<RestateReport, RestateError> {
        let parsed = parse_body(format, body)?;
        let now = self.ports.clock.now();
        let window = self.day_window(now);
        let stamp = self.stamps.next(now);
        let mut days: BTreeMap<SeriesDayKey, BTreeMap<i64, f64>> = BTreeMap::new();
        for obs in parsed.accepted {
            let key = SeriesDayKey::new(obs.series, self.settings.calendar.day_of(obs.ts));
            days.entry(key).or_default().insert(obs.ts, obs.value);
        }
        let mut report = RestateReport {
            rejected: parsed.rejected,
            ..Default::default()
        };
        let mut closed = Vec::new();
        for (key, values) in days {
            if window.is_closed(key.day) {
                let points: Vec<Point> = values
                    .into_iter()
                    .map(|(ts, value)| Point { ts, value, stamp })
                    .collect();
                closed.push(DayPoints { key, points });
            } else {
                let reason = format!(
                    "day {} is open until {}; send its data through ingest",
                    key.day,
                    window.closes_at(key.day)
                );
                report.refused.push(RefusedDay {
                    series: key.series,
                    day: key.day,
                    reason,
                });
            }
        }
        for batch in closed.chunks(self.settings.summarize_batch.max(1)) {
            let keys: Vec<SeriesDayKey> = batch.iter().map(|day| day.key.clone()).collect();
            let known = self.known_revisions(&keys).await?;
            let rows: Vec<SummaryRow> = batch
                .iter()
                .zip(known)
                .filter_map(|(day, known)| {
                    let row = SummaryRow::of_day(&day.key, &day.points, now)?;
                    Some(SummaryRow {
                        revision: row.revision.max(known.next()),
                        ..row
                    })
                })
                .collect();
            report.restated += rows.len();
            report.written += self.ports.sink.upsert(&rows).await?;
        }
        Metrics::add(&self.metrics.summaries_written, report.written);
        Ok(report)
    }

    /// The highest revision each day has had: in its stored row, or in the store (whose pending
    /// summary would write it); the least revision for a day neither knows.
    async fn known_revisions(&self, keys: &[SeriesDayKey]) -> Result<Vec<Revision>, PortError> {
        let stored = self.ports.store.read_days(keys).await?;
        let mut known = Vec::with_capacity(keys.len());
        for (key, stored) in keys.iter().zip(stored) {
            let rows = self
                .ports
                .sink
                .read(Some(&key.series), Some(key.day))
                .await?;
            let in_sink = rows
                .iter()
                .map(|row| row.revision)
                .max()
                .unwrap_or_default();
            let in_store = stored.map_or(Revision::default(), |day| revision(&day.points));
            known.push(in_sink.max(in_store));
        }
        Ok(known)
    }
}
