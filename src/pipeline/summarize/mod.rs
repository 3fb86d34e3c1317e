//! `summarize`: receive the due summarize messages, compute each day's statistics, upsert them
//! and settle the messages — completing a message only after its row is committed.
//!
//! A tick works under a time budget below the function timeout and leaves whatever is left to
//! the next tick. It keeps several batches in flight at once (receiving over REST is one call
//! per message, so waiting on one batch at a time would leave the budget mostly idle). When a
//! dependency fails transiently, the whole tick stops after the batches in flight and the
//! failed batch's messages are abandoned once it has: they come back on a later tick, and the
//! revision guard makes writing them again harmless. A day that can never be read or written is
//! that series-day's problem alone ([`isolation`]): its message is quarantined with the reason
//! and settled, and the rest of the batch is written.
//!
//! The budget is checked before each receive, so a tick can run over it by one batch's time;
//! keep the budget below the function timeout by at least that much.

mod day;
mod isolation;
mod renewal;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::domain::message::SummarizeRequest;
use crate::domain::series_day::{DayState, SeriesDayKey, revision};
use crate::domain::stats::{DailyStats, SummaryRow};
use isolation::DayRead;
use renewal::HeldLocks;

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::{
    PortResult, QuarantineEntry, ReceivedMessage, StateWrite, StoredDay, Versioned, WriteOutcome,
};
pub use day::{DaySummaryReport, RefusedDay};

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub received: usize,
    pub written: usize,
    pub unchanged: usize,
    pub stale: usize,
    /// Days with no stored data (expired, or never written).
    pub missing: usize,
    /// Messages put in quarantine: not summarize requests, or for a day whose row can never be
    /// written.
    pub quarantined: usize,
    /// Rows stored with a statistic left NULL because it is beyond double precision.
    pub out_of_range: usize,
    /// Messages released for a later tick (a state race, or a failing sink).
    pub abandoned: usize,
    /// The error that ended the tick early, if any.
    pub error: Option<String>,
}

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

/// What one receive loop of a tick leaves behind.
struct LoopOutcome {
    report: TickReport,
    /// Locks of a failed batch, released by the tick once every loop has stopped.
    failed: Vec<String>,
}

/// Batches one tick keeps in flight, each with its own receive loop.
const CONCURRENT_BATCHES: usize = 4;

impl TickReport {
    fn merge(&mut self, other: TickReport) {
        self.received += other.received;
        self.written += other.written;
        self.unchanged += other.unchanged;
        self.stale += other.stale;
        self.missing += other.missing;
        self.quarantined += other.quarantined;
        self.out_of_range += other.out_of_range;
        self.abandoned += other.abandoned;
        if self.error.is_none() {
            self.error = other.error;
        }
    }
}

impl Pipeline {
    /// Drains due summarize messages until none are left or `budget` is spent, with
    /// [`CONCURRENT_BATCHES`] receive loops sharing the deadline.
    pub async fn summarize_tick(&self, budget: Duration) -> TickReport {
        let started = Instant::now();
        let stop = AtomicBool::new(false);
        let loops = (0..CONCURRENT_BATCHES).map(|_| self.summarize_loop(started, budget, &stop));
        let mut report = TickReport::default();
        let mut failed = Vec::new();
        for outcome in futures::future::join_all(loops).await {
            report.merge(outcome.report);
            failed.extend(outcome.failed);
        }
        // Released only now, so the other loops of this tick cannot pick them up again while
        // the dependency that failed them is probably still failing: they wait for a later tick.
        self.abandon(failed).await;
        report
    }

    /// One receive loop of a tick; it stops when the queue is empty, the budget is spent, or
    /// any loop of the tick failed.
    async fn summarize_loop(
        &self,
        started: Instant,
        budget: Duration,
        stop: &AtomicBool,
    ) -> LoopOutcome {
        let mut report = TickReport::default();
        let mut failed = Vec::new();
        while started.elapsed() < budget && !stop.load(Ordering::Relaxed) {
            let messages = match self
                .ports
                .due_summaries
                .receive(self.settings.summarize_batch)
                .await
            {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::error!(error = %e, "summarize: receiving due messages failed");
                    report.error = Some(e.to_string());
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            };
            if messages.is_empty() {
                break;
            }
            report.received += messages.len();
            let locks = HeldLocks::of(&messages);
            let batch = self.summarize_batch(messages, &mut report, &mut failed);
            if let Err(e) = self.keeping_locks(locks, batch).await {
                tracing::error!(error = %e, "summarize: batch failed, its messages return on a later tick");
                Metrics::add(&self.metrics.transient_failures, 1);
                report.error = Some(e.to_string());
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        LoopOutcome { report, failed }
    }

    async fn summarize_batch(
        &self,
        messages: Vec<ReceivedMessage>,
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
        self.quarantine(&bad, report).await?;

        let keys: Vec<SeriesDayKey> = requests.keys().cloned().collect();
        let Plan {
            mut planned,
            settled,
        } = match self.plan(&keys, &mut requests, now, report).await {
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
        let outcome = match self.write_rows(&rows).await {
            Ok(outcome) => outcome,
            Err(e) => {
                self.ports.due_summaries.complete(&done).await?;
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
        let outcomes = self.ports.store.write_states(&writes).await?;
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
        self.quarantine(&refused, report).await?;
        self.ports.due_summaries.complete(&done).await?;
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
        report: &mut TickReport,
    ) -> PortResult<Plan> {
        let days = self.read_days(keys).await?;
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
            .zip(self.ports.store.read_states(&unreadable).await?)
            .collect();
        let mut plan = Plan::default();
        for (key, day) in keys.iter().zip(days) {
            let Requested {
                epoch,
                latest,
                locks,
            } = requests.remove(key).expect("every key came from requests");
            let (state, summary) = match day {
                DayRead::Stored(day) => (day.state.clone(), summary_row(&day, now).map(Ok)),
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
        report: &mut TickReport,
    ) -> PortResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.ports.quarantine.put(entries).await?;
        report.quarantined += entries.len();
        Metrics::add(&self.metrics.quarantined, entries.len());
        Ok(())
    }

    /// Abandons messages so they are delivered again (a state race: data arrived while the
    /// summary was computed).
    async fn release(&self, locks: impl IntoIterator<Item = String>, report: &mut TickReport) {
        let locks: Vec<String> = locks.into_iter().collect();
        report.abandoned += locks.len();
        self.abandon(locks).await;
    }

    /// Abandons locks; a failure here only delays the messages until their locks expire.
    async fn abandon(&self, locks: Vec<String>) {
        if locks.is_empty() {
            return;
        }
        if let Err(e) = self.ports.due_summaries.abandon(&locks).await {
            tracing::warn!(error = %e, count = locks.len(), "summarize: abandoning failed; the locks will expire instead");
        }
    }
}

/// Keeps the locks of a failed batch for release at the end of the tick.
fn hold(
    locks: impl IntoIterator<Item = String>,
    report: &mut TickReport,
    failed: &mut Vec<String>,
) {
    let before = failed.len();
    failed.extend(locks);
    report.abandoned += failed.len() - before;
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

fn summary_row(day: &StoredDay, now: DateTime<Utc>) -> Option<SummaryRow> {
    Some(SummaryRow {
        series: day.key.series.clone(),
        day: day.key.day,
        stats: DailyStats::compute(&day.points)?,
        revision: revision(&day.points),
        computed_at: now,
    })
}
