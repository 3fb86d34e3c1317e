//! Reading a batch's series-days and writing their summary rows so that a day that can never
//! be read or written stays its own problem. When the store or the sink fails for good on a
//! batch, its days are read, or its rows written, one by one to find the ones at fault; rows
//! whose statistics SQL cannot hold are refused before the sink. A transient failure is the
//! whole batch's, and returned.

use std::collections::HashMap;

use crate::domain::series_day::SeriesDayKey;
use crate::domain::stats::SummaryRow;

use crate::pipeline::Pipeline;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::ports::{ErrorKind, PortResult, StoredDay};

/// One series-day as read for summarizing.
pub(super) enum DayRead {
    Stored(StoredDay),
    /// Not stored: never written, or expired.
    Missing,
    /// The store fails for good on this day (a document that cannot be decoded), with the
    /// reason.
    Unreadable(String),
}

/// What writing one batch of rows did.
#[derive(Debug, Default)]
pub(super) struct SinkOutcome {
    pub(super) written: usize,
    /// Rows already stored at the same or a newer revision.
    pub(super) unchanged: usize,
    /// Rows stored with a statistic left NULL because it is beyond `f64`.
    pub(super) out_of_range: usize,
    /// Why the row at each index can never be written; every other row is stored.
    pub(super) refused: HashMap<usize, String>,
}

impl Pipeline {
    /// Reads `keys` in order, isolating the days the store can never read.
    pub(super) async fn read_days(&self, keys: &[SeriesDayKey]) -> PortResult<Vec<DayRead>> {
        let stored = |day: Option<StoredDay>| day.map_or(DayRead::Missing, DayRead::Stored);
        match self.ports.store.read_days(keys).await {
            Ok(days) => return Ok(days.into_iter().map(stored).collect()),
            Err(e) if e.kind == ErrorKind::Permanent => {
                tracing::warn!(error = %e, days = keys.len(), "summarize: the store cannot read a batch; reading its days one by one");
            }
            Err(e) => return Err(e),
        }
        let mut days = Vec::with_capacity(keys.len());
        for key in keys {
            match self.ports.store.read_days(std::slice::from_ref(key)).await {
                Ok(mut day) => days.push(stored(day.pop().flatten())),
                Err(e) if e.kind == ErrorKind::Permanent => {
                    tracing::warn!(series = %key.series, day = %key.day, error = %e, "summarize: the series-day can never be read");
                    Metrics::add(&self.metrics.summaries_refused, 1);
                    days.push(DayRead::Unreadable(e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(days)
    }

    /// Writes `rows`, isolating the ones that can never be written (see the module docs), and
    /// counts what happened.
    pub(super) async fn write_rows(&self, rows: &[SummaryRow]) -> PortResult<SinkOutcome> {
        let mut outcome = SinkOutcome::default();
        let mut storable = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            match row.check_storable() {
                Ok(()) => storable.push(index),
                Err(e) => {
                    outcome.refused.insert(index, e.to_string());
                }
            }
        }
        let batch: Vec<SummaryRow> = storable.iter().map(|&i| rows[i].clone()).collect();
        let write_started = std::time::Instant::now();
        let written = self.ports.sink.upsert(&batch).await;
        self.metrics
            .sink_write_seconds
            .observe(write_started.elapsed());
        outcome.written = match written {
            Ok(written) => {
                let stored_at = self.ports.clock.now();
                for row in &batch {
                    let day_end = self.settings.calendar.end_of(row.day);
                    self.metrics
                        .day_end_to_row_seconds
                        .observe_lag(day_end, stored_at);
                }
                written
            }
            Err(e) if e.kind == ErrorKind::Permanent => {
                tracing::warn!(error = %e, rows = batch.len(), "summarize: the sink refused a batch; writing its rows one by one");
                let mut written = 0;
                for &index in &storable {
                    match self
                        .ports
                        .sink
                        .upsert(std::slice::from_ref(&rows[index]))
                        .await
                    {
                        Ok(n) => written += n,
                        Err(e) if e.kind == ErrorKind::Permanent => {
                            outcome.refused.insert(index, e.to_string());
                        }
                        Err(e) => return Err(e),
                    }
                }
                written
            }
            Err(e) => return Err(e),
        };
        outcome.unchanged = rows.len() - outcome.refused.len() - outcome.written;
        outcome.out_of_range = storable
            .iter()
            .filter(|i| !outcome.refused.contains_key(i))
            .filter(|&&i| !rows[i].stats.out_of_range().is_empty())
            .count();
        for (index, reason) in &outcome.refused {
            let row = &rows[*index];
            tracing::warn!(series = %row.series, day = %row.day, %reason, "summarize: the day's summary row can never be written");
        }
        let m = &self.metrics;
        Metrics::add(&m.summaries_written, outcome.written);
        Metrics::add(&m.summaries_unchanged, outcome.unchanged);
        Metrics::add(&m.summaries_out_of_range, outcome.out_of_range);
        Metrics::add(&m.summaries_refused, outcome.refused.len());
        Ok(outcome)
    }
}
