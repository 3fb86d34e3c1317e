//! One batch of summarize messages: decode them, read their series-days, write the rows, record
//! each day's finished state, and only then settle the messages. A day that can never be
//! summarized is quarantined with its reason and settled like the others ([`super::isolation`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::domain::message::SummarizeRequest;
use crate::domain::series_day::{DayState, SeriesDayKey};
use crate::domain::stats::SummaryRow;

use super::isolation::DayRead;
use super::{TickReport, hold};
use crate::pipeline::Pipeline;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::ports::{
    PortResult, QuarantineEntry, ReceivedMessage, StateWrite, Versioned, WriteOutcome,
};

/// The summarize messages of one batch for one series-day.
struct Requested {
    /// The highest epoch asked for; older ones are covered by it.
    epoch: u32,
    /// The message asking for `epoch`: what is quarantined if the day's row can never be
    /// written.
    latest: ReceivedMessage,
    /// The locks of every message asking, all settled together.
    locks: Vec<String>,
}

/// One series-day to settle, and the message(s) that settle with it.
struct Planned {
    key: SeriesDayKey,
    /// The row to write, or why the day can never be summarized.
    summary: Result<SummaryRow, String>,
    epoch: u32,
    /// The day's state as read; the finished state is written against it.
    state: Option<Versioned<DayState>>,
    latest: ReceivedMessage,
    locks: Vec<String>,
}

/// What becomes of a batch's series-days.
#[derive(Default)]
struct Plan {
    planned: Vec<Planned>,
    /// Locks of messages to complete as they are: their day is missing, or a newer epoch will
    /// summarize it.
    settled: Vec<String>,
}

impl Pipeline {
    /// Summarizes one received batch. Each dependency call waits out transient failures until
    /// `deadline` (see `patience`); an error is a failure that outlasted it, after which the
    /// batch's unsettled locks are in `failed`.
    pub(super) async fn summarize_batch(
        &self,
        messages: Vec<ReceivedMessage>,
        deadline: Instant,
        report: &mut TickReport,
        failed: &mut Vec<String>,
    ) -> PortResult<()> {
        let now = self.ports.clock.now();
        let mut done: Vec<String> = Vec::new();
        let mut bad = Vec::new();
        let mut requests: HashMap<SeriesDayKey, Requested> = HashMap::new();
        for message in messages {
            let request = match SummarizeRequest::from_body(&message.body) {
                Ok(request) => request,
                Err(reason) => {
                    done.push(message.lock_token.clone());
                    bad.push(quarantine_entry(message, reason, now));
                    continue;
                }
            };
            let lock = message.lock_token.clone();
            match requests.get_mut(&request.key()) {
                Some(entry) => {
                    if request.epoch > entry.epoch {
                        entry.epoch = request.epoch;
                        entry.latest = message;
                    }
                    entry.locks.push(lock);
                }
                None => {
                    requests.insert(
                        request.key(),
                        Requested {
                            epoch: request.epoch,
                            latest: message,
                            locks: vec![lock],
                        },
                    );
                }
            }
        }
        self.quarantine(&bad, deadline, report).await?;

        let keys: Vec<SeriesDayKey> = requests.keys().cloned().collect();
        let Plan {
            mut planned,
            settled,
        } = match self.plan(&keys, &mut requests, now, deadline, report).await {
            Ok(plan) => plan,
            Err(e) => {
                hold(requests.into_values().flat_map(|r| r.locks), report, failed);
                return Err(e);
            }
        };
        done.extend(settled);

        let writable: Vec<usize> = (0..planned.len())
            .filter(|&i| planned[i].summary.is_ok())
            .collect();
        let rows: Vec<SummaryRow> = writable
            .iter()
            .filter_map(|&i| planned[i].summary.clone().ok())
            .collect();
        let outcome = match self.patiently(deadline, || self.write_rows(&rows)).await {
            Ok(outcome) => outcome,
            Err(e) => {
                self.complete(&done, deadline).await?;
                hold(planned.into_iter().flat_map(|p| p.locks), report, failed);
                return Err(e);
            }
        };
        report.written += outcome.written;
        report.unchanged += outcome.unchanged;
        report.out_of_range += outcome.out_of_range;
        for (index, reason) in outcome.refused {
            planned[writable[index]].summary = Err(reason);
        }

        let writes: Vec<StateWrite> = planned.iter().map(|p| p.finished_state(now)).collect();
        let outcomes = self
            .patiently(deadline, || self.ports.store.write_states(&writes))
            .await?;
        let mut retry = Vec::new();
        let mut refused = Vec::new();
        for (plan, state) in planned.into_iter().zip(outcomes) {
            match state {
                WriteOutcome::Written => {
                    if let Err(reason) = plan.summary {
                        refused.push(quarantine_entry(plan.latest, reason, now));
                    }
                    done.extend(plan.locks);
                }
                // Data arrived while we computed: look again on the next delivery.
                WriteOutcome::Conflict => retry.extend(plan.locks),
            }
        }
        self.quarantine(&refused, deadline, report).await?;
        self.complete(&done, deadline).await?;
        self.release(retry, report).await;
        Ok(())
    }

    /// Reads the requested days and decides what becomes of each: a summary to write, a day
    /// that can never be summarized, or a message to complete as it is (the day is missing, or
    /// a newer epoch will summarize it). On an error `requests` is left whole, for the caller to
    /// hold.
    async fn plan(
        &self,
        keys: &[SeriesDayKey],
        requests: &mut HashMap<SeriesDayKey, Requested>,
        now: DateTime<Utc>,
        deadline: Instant,
        report: &mut TickReport,
    ) -> PortResult<Plan> {
        let days = self.patiently(deadline, || self.read_days(keys)).await?;
        let unreadable: Vec<SeriesDayKey> = keys
            .iter()
            .zip(&days)
            .filter(|(_, day)| matches!(day, DayRead::Unreadable(_)))
            .map(|(key, _)| key.clone())
            .collect();
        // Their points cannot be read, but their state can: it is settled like any other.
        let mut unreadable_states: HashMap<SeriesDayKey, Option<Versioned<DayState>>> = unreadable
            .iter()
            .cloned()
            .zip(
                self.patiently(deadline, || self.ports.store.read_states(&unreadable))
                    .await?,
            )
            .collect();
        let mut plan = Plan::default();
        for (key, day) in keys.iter().zip(days) {
            let Requested {
                epoch,
                latest,
                locks,
            } = requests.remove(key).expect("every key came from requests");
            let (state, summary) = match day {
                DayRead::Stored(day) => (
                    day.state.clone(),
                    SummaryRow::of_day(&day.key, &day.points, now).map(Ok),
                ),
                DayRead::Missing => (None, None),
                DayRead::Unreadable(reason) => (
                    unreadable_states.remove(key).flatten(),
                    Some(Err(format!(
                        "the stored series-day cannot be read: {reason}"
                    ))),
                ),
            };
            let Some(summary) = summary else {
                report.missing += 1;
                plan.settled.extend(locks);
                continue;
            };
            if state.as_ref().is_some_and(|s| s.value.epoch > epoch) {
                // A newer epoch is scheduled and will summarize this day.
                report.stale += 1;
                Metrics::add(&self.metrics.summarize_stale, 1);
                plan.settled.extend(locks);
                continue;
            }
            plan.planned.push(Planned {
                key: key.clone(),
                summary,
                epoch,
                state,
                latest,
                locks,
            });
        }
        Ok(plan)
    }

    /// Keeps messages that will never succeed, with their reasons.
    async fn quarantine(
        &self,
        entries: &[QuarantineEntry],
        deadline: Instant,
        report: &mut TickReport,
    ) -> PortResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.patiently(deadline, || self.ports.quarantine.put(entries))
            .await?;
        report.quarantined += entries.len();
        self.metrics
            .quarantine(&self.metrics.quarantined_summarize, entries.len());
        Ok(())
    }

    /// Completes the messages of settled days.
    async fn complete(&self, locks: &[String], deadline: Instant) -> PortResult<()> {
        self.patiently(deadline, || self.ports.due_summaries.complete(locks))
            .await
    }
}

impl Planned {
    /// The day's state once this summary is settled: nothing pending, at the revision written —
    /// or, for a day that can never be summarized, at the revision written before, so that
    /// neither reconcile nor a redelivery brings it back; only new data (a new epoch) does.
    fn finished_state(&self, now: DateTime<Utc>) -> StateWrite {
        let (expected_version, state) = match &self.state {
            Some(read) => (Some(read.version.clone()), read.value.clone()),
            None => (None, DayState::next_epoch(None, now)),
        };
        let summarized_revision = match &self.summary {
            Ok(row) => Some(row.revision),
            Err(_) => state.summarized_revision,
        };
        StateWrite {
            key: self.key.clone(),
            expected_version,
            state: DayState {
                epoch: state.epoch.max(self.epoch),
                pending: false,
                summarized_revision,
                ..state
            },
        }
    }
}

/// A summaries message that will never succeed, kept under `summarize:<message id>`.
fn quarantine_entry(
    message: ReceivedMessage,
    reason: String,
    now: DateTime<Utc>,
) -> QuarantineEntry {
    QuarantineEntry {
        id: format!("summarize:{}", message.message_id),
        at: now,
        function: "summarize".into(),
        source: message.message_id,
        reason,
        body: message.body,
    }
}
