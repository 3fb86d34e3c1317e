//! What an operator looks at beside the counters: how far the end of day has got for a day,
//! and a series' daily rows next to where each day stands in the summarize cycle. Read-only,
//! over the same ports as the use cases, so it works on every store and sink.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::Pipeline;
use super::ports::PortResult;
use crate::domain::series::SeriesId;
use crate::domain::series_day::{DayState, SeriesDayKey};
use crate::domain::stats::SummaryRow;

/// The most days one [`Pipeline::series_days`] call looks at, so a request's cost is bounded.
pub const MAX_RANGE_DAYS: i64 = 366;

/// How far the end of day has got for one day, counted over its stored series-days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayProgress {
    pub day: NaiveDate,
    /// Series-days the store holds for the day.
    pub series: usize,
    /// Waiting for their first summary: no row written yet.
    pub pending: usize,
    /// Summarized, and nothing changed since: the row is current.
    pub written: usize,
    /// Settled without a row: the day could never be summarized and its message is in
    /// quarantine with the reason (or its points expired before a summary).
    pub refused: usize,
    /// Summarized once, but data changed since and the next summary is outstanding: the row
    /// is behind the stored points.
    pub stale: usize,
    /// Of the pending and stale ones, those whose summary was due before now.
    pub overdue: usize,
}

impl DayProgress {
    fn count(&mut self, state: Option<&DayState>, now: DateTime<Utc>) {
        self.series += 1;
        let Some(state) = state else {
            // Stored points without a state yet: the first epoch is being opened.
            self.pending += 1;
            return;
        };
        match (state.pending, state.summarized_revision.is_some()) {
            (false, true) => self.written += 1,
            (false, false) => self.refused += 1,
            (true, false) => self.pending += 1,
            (true, true) => self.stale += 1,
        }
        if state.pending && state.due_at < now {
            self.overdue += 1;
        }
    }
}

/// One day of a series as the console charts it: the stored row, if any, and the day's place
/// in the summarize cycle while the store still keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesDay {
    pub day: NaiveDate,
    /// The row in the summary sink; absent while the first summary is pending.
    pub summary: Option<SummaryRow>,
    /// The day's summarize state; absent once the store no longer keeps the day.
    pub state: Option<SeriesDayState>,
}

/// The part of a day's summarize state an operator reads.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesDayState {
    /// 1 for the first summary; above 1 when the day was summarized again after late data.
    pub epoch: u32,
    /// A summary is outstanding.
    pub pending: bool,
    pub due_at: DateTime<Utc>,
}

impl Pipeline {
    /// The end-of-day progress of `day`: one listing of its series-days and one read of their
    /// states (cost grows with the day's series).
    pub async fn day_progress(&self, day: NaiveDate) -> PortResult<DayProgress> {
        let keys = self.ports.store.series_of_day(day).await?;
        let states = self.ports.store.read_states(&keys).await?;
        let now = self.ports.clock.now();
        let mut progress = DayProgress {
            day,
            ..DayProgress::default()
        };
        for state in &states {
            progress.count(state.as_ref().map(|s| &s.value), now);
        }
        Ok(progress)
    }

    /// The days `from..=to` of `series` that have a row or a stored state, oldest first. The
    /// range must not be reversed nor longer than [`MAX_RANGE_DAYS`].
    pub async fn series_days(
        &self,
        series: &SeriesId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SeriesDay>, RangeError> {
        let length = (to - from).num_days() + 1;
        if !(1..=MAX_RANGE_DAYS).contains(&length) {
            return Err(RangeError::Invalid { from, to });
        }
        let rows = self.ports.sink.read(Some(series), None).await?;
        let keys: Vec<SeriesDayKey> = from
            .iter_days()
            .take_while(|day| *day <= to)
            .map(|day| SeriesDayKey::new(series.clone(), day))
            .collect();
        let states = self.ports.store.read_states(&keys).await?;
        let mut days = Vec::new();
        for (key, state) in keys.into_iter().zip(states) {
            let summary = rows.iter().find(|row| row.day == key.day).cloned();
            let state = state.map(|s| SeriesDayState {
                epoch: s.value.epoch,
                pending: s.value.pending,
                due_at: s.value.due_at,
            });
            if summary.is_some() || state.is_some() {
                days.push(SeriesDay {
                    day: key.day,
                    summary,
                    state,
                });
            }
        }
        Ok(days)
    }
}

/// Why [`Pipeline::series_days`] answered nothing.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error("the range {from}..{to} is reversed or longer than {MAX_RANGE_DAYS} days")]
    Invalid { from: NaiveDate, to: NaiveDate },
    #[error(transparent)]
    Port(#[from] super::ports::PortError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::series_day::Revision;

    fn state(pending: bool, summarized: bool, due: &str) -> DayState {
        DayState {
            epoch: 1,
            pending,
            due_at: due.parse().unwrap(),
            touched: 0,
            summarized_revision: summarized.then(|| Revision::from_stamp_sum(7)),
        }
    }

    #[test]
    fn progress_tells_first_summaries_from_rows_that_fell_behind() {
        let now: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
        let mut progress = DayProgress::default();
        progress.count(None, now);
        progress.count(Some(&state(true, false, "2026-11-20T13:00:00Z")), now);
        progress.count(Some(&state(true, false, "2026-11-20T11:00:00Z")), now);
        progress.count(Some(&state(false, true, "2026-11-20T11:00:00Z")), now);
        progress.count(Some(&state(true, true, "2026-11-20T11:59:00Z")), now);
        progress.count(Some(&state(false, false, "2026-11-20T11:00:00Z")), now);
        assert_eq!(
            (
                progress.series,
                progress.pending,
                progress.written,
                progress.refused,
                progress.stale,
                progress.overdue
            ),
            (6, 3, 1, 1, 1, 2)
        );
    }
}
