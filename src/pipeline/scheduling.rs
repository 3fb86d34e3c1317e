//! Opening a summarize epoch: the one place that sends a summarize message and records it.
//!
//! The order is the whole point: the message is sent first and the day's state records it only
//! after the send succeeded. A crash in between leaves a message without a record — the retry
//! sends the same MessageId again, which duplicate detection drops — but never a record without
//! a message, which would leave a day unsummarized.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::message::SummarizeRequest;
use crate::domain::series_day::{DayState, SeriesDayKey};

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::{OutgoingMessage, PortResult, StateWrite, Versioned, WriteOutcome};
use crate::telemetry::TraceContext;

/// A day whose next summarize epoch is to be opened.
pub(super) struct EpochOpening {
    pub key: SeriesDayKey,
    /// The state the next epoch follows, as read; the new state is written only if it is
    /// still this one.
    pub previous: Option<Versioned<DayState>>,
    /// When the new epoch's summarize message is delivered.
    pub due_at: DateTime<Utc>,
}

impl Pipeline {
    /// When a summary of `day` opened at `now` becomes due: the day's end plus the grace
    /// period, or a short settle time from now for a day that is already past due.
    pub(super) fn due_at(&self, day: NaiveDate, now: DateTime<Utc>) -> DateTime<Utc> {
        let end = self.settings.calendar.end_of(day) + self.settings.grace;
        end.max(now + self.settings.settle)
    }

    /// Opens the next epoch of each day, due at the given time. Returns the days whose state
    /// changed under us; their caller reads again and decides anew.
    pub(super) async fn open_epochs(
        &self,
        days: Vec<EpochOpening>,
    ) -> PortResult<Vec<SeriesDayKey>> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let sent = days.len();
        let mut messages = Vec::with_capacity(sent);
        let mut writes = Vec::with_capacity(days.len());
        // The summary of each day follows the invocation that opened its epoch.
        let trace_context = TraceContext::current();
        for EpochOpening {
            key,
            previous,
            due_at,
        } in days
        {
            let state = DayState::next_epoch(previous.as_ref().map(|v| &v.value), due_at);
            let request = SummarizeRequest::new(&key, state.epoch);
            messages.push(OutgoingMessage {
                message_id: request.message_id(),
                session_id: Some(key.series.to_string()),
                body: request.to_body(),
                scheduled_at: Some(due_at),
                trace_context: trace_context.clone(),
            });
            writes.push(StateWrite {
                key,
                expected_version: previous.map(|v| v.version),
                state,
            });
        }
        self.ports.summaries.send(messages).await?;
        let outcomes = self.ports.store.write_states(&writes).await?;
        let conflicts: Vec<SeriesDayKey> = writes
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| *outcome == WriteOutcome::Conflict)
            .map(|(write, _)| write.key)
            .collect();
        // A lost race means another worker recorded the same epoch after sending the same
        // MessageId, which duplicate detection dropped.
        Metrics::add(&self.metrics.summaries_scheduled, sent - conflicts.len());
        Metrics::add(&self.metrics.summary_send_races, conflicts.len());
        Ok(conflicts)
    }
}
