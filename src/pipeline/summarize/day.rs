//! A manual run of one day (`eventide summarize --day`): every stored series of the day is
//! summarized now, whatever is scheduled, and a series whose row can never be written is
//! reported rather than keeping the others from being written.

use chrono::NaiveDate;

use crate::domain::series_day::SeriesDayKey;
use crate::domain::stats::SummaryRow;

use super::isolation::DayRead;
use crate::pipeline::Pipeline;
use crate::pipeline::ports::PortResult;

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
    /// Batch by batch, the next batch is read and computed while the rows of the one before are
    /// written: a remote sink's round trips then overlap the reading instead of following it.
    pub async fn summarize_day(&self, day: NaiveDate) -> PortResult<DaySummaryReport> {
        let now = self.ports.clock.now();
        let keys = self.ports.store.series_of_day(day).await?;
        let mut report = DaySummaryReport::default();
        let mut pending: Option<ComputedBatch> = None;
        for batch in keys.chunks(self.settings.summarize_batch.max(1)) {
            let computed = match pending.take() {
                None => self.compute_batch(batch, now).await?,
                Some(previous) => {
                    let (computed, written) = tokio::join!(
                        self.compute_batch(batch, now),
                        self.write_batch(previous, &mut report)
                    );
                    written?;
                    computed?
                }
            };
            pending = Some(computed);
        }
        if let Some(last) = pending {
            self.write_batch(last, &mut report).await?;
        }
        Ok(report)
    }

    /// Reads a batch of series-days and computes their rows.
    async fn compute_batch(
        &self,
        batch: &[SeriesDayKey],
        now: chrono::DateTime<chrono::Utc>,
    ) -> PortResult<ComputedBatch> {
        let mut computed = ComputedBatch {
            rows: Vec::new(),
            refused: Vec::new(),
        };
        for (key, day) in batch.iter().zip(self.read_days(batch).await?) {
            match day {
                DayRead::Stored(day) => {
                    computed
                        .rows
                        .extend(SummaryRow::of_day(&day.key, &day.points, now))
                }
                DayRead::Missing => {}
                DayRead::Unreadable(reason) => computed.refused.push(RefusedDay {
                    key: key.clone(),
                    reason: format!("the stored series-day cannot be read: {reason}"),
                }),
            }
        }
        Ok(computed)
    }

    /// Writes a computed batch and adds what happened to `report`.
    async fn write_batch(
        &self,
        batch: ComputedBatch,
        report: &mut DaySummaryReport,
    ) -> PortResult<()> {
        let ComputedBatch { rows, mut refused } = batch;
        let outcome = self.write_rows(&rows).await?;
        report.computed += rows.len();
        report.written += outcome.written;
        report.out_of_range += outcome.out_of_range;
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
        report.refused.extend(refused);
        Ok(())
    }
}
