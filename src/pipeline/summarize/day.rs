//! A manual run of one day (`eventide summarize --day`): every stored series of the day is
//! summarized now, whatever is scheduled, and a series whose row can never be written is
//! reported rather than keeping the others from being written.

use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, stream};

use crate::domain::series_day::SeriesDayKey;
use crate::domain::stats::SummaryRow;

use super::isolation::DayRead;
use crate::pipeline::Pipeline;
use crate::pipeline::ports::{PortError, PortResult};

/// Batches in flight in each stage of a manual run. Four lets the reading go on while a write
/// waits for a commit to reach the disk, for at most four batches of read days held in memory
/// (about 9 MB each at 256 days of 1,440 points); two left the store idle behind such writes.
const STAGE_DEPTH: usize = 4;

/// What a manual run of one day did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DaySummaryReport {
    /// Series-days with data whose statistics were computed.
    pub computed: usize,
    /// Rows written; the others were already stored at the same or a newer revision, or refused.
    pub written: usize,
    /// Rows stored with a statistic left NULL because it is beyond double precision.
    pub out_of_range: usize,
    /// Series-days whose row can never be written, each with the reason.
    pub refused: Vec<RefusedDay>,
}

/// A series-day whose summary row can never be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDay {
    pub key: SeriesDayKey,
    pub reason: String,
}

/// One batch read and computed, waiting to be written.
struct ComputedBatch {
    rows: Vec<SummaryRow>,
    /// Series-days of the batch that could not be read.
    refused: Vec<RefusedDay>,
}

impl Pipeline {
    /// Summarizes every stored series of `day` now, whatever is scheduled (backfill, manual
    /// runs). Rows are still guarded by revision, so this never replaces newer data; the day
    /// states are left alone.
    ///
    /// The batches flow through three stages at once: the store reads one batch while the one
    /// before is computed on the blocking pool and the rows before that are written. Computing
    /// off the async task matters: a sink's replies are then handled as they arrive instead of
    /// waiting for a batch's statistics, and the store is kept busy, since reading is the
    /// stage every sink waits for.
    pub async fn summarize_day(&self, day: NaiveDate) -> PortResult<DaySummaryReport> {
        let now = self.ports.clock.now();
        let keys = self.ports.store.series_of_day(day).await?;
        let mut written = stream::iter(keys.chunks(self.settings.summarize_batch.max(1)))
            .map(|batch| self.compute_batch(batch, now))
            .buffered(STAGE_DEPTH)
            .map(|computed| async move { self.write_batch(computed?).await })
            .buffered(STAGE_DEPTH);
        let mut report = DaySummaryReport::default();
        while let Some(part) = written.next().await {
            report.add(part?);
        }
        Ok(report)
    }

    /// Reads a batch of series-days and computes their rows on the blocking pool.
    async fn compute_batch(
        &self,
        batch: &[SeriesDayKey],
        now: DateTime<Utc>,
    ) -> PortResult<ComputedBatch> {
        let days = self.read_days(batch).await?;
        let keys = batch.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut computed = ComputedBatch {
                rows: Vec::new(),
                refused: Vec::new(),
            };
            for (key, day) in keys.into_iter().zip(days) {
                match day {
                    DayRead::Stored(day) => {
                        computed
                            .rows
                            .extend(SummaryRow::of_day(&day.key, &day.points, now))
                    }
                    DayRead::Missing => {}
                    DayRead::Unreadable(reason) => computed.refused.push(RefusedDay {
                        key,
                        reason: format!("the stored series-day cannot be read: {reason}"),
                    }),
                }
            }
            computed
        })
        .await
        .map_err(|e| PortError::transient("computing a batch of daily statistics", e))
    }

    /// Writes a computed batch and reports what happened to it.
    async fn write_batch(&self, batch: ComputedBatch) -> PortResult<DaySummaryReport> {
        let ComputedBatch { rows, mut refused } = batch;
        let outcome = self.write_rows(&rows).await?;
        refused.extend(
            outcome
                .refused
                .into_iter()
                .map(|(index, reason)| RefusedDay {
                    key: SeriesDayKey::new(rows[index].series.clone(), rows[index].day),
                    reason,
                }),
        );
        refused.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(DaySummaryReport {
            computed: rows.len(),
            written: outcome.written,
            out_of_range: outcome.out_of_range,
            refused,
        })
    }
}

impl DaySummaryReport {
    /// Adds what happened to a later batch; batches are in key order, so `refused` stays sorted.
    fn add(&mut self, batch: DaySummaryReport) {
        self.computed += batch.computed;
        self.written += batch.written;
        self.out_of_range += batch.out_of_range;
        self.refused.extend(batch.refused);
    }
}
