//! `summarize`: receive the due summarize messages, compute each day's statistics, upsert them
//! and settle the messages — completing a message only after its row is committed.
//!
//! A tick works under a time budget below the function timeout and leaves whatever is left to
//! the next tick. It keeps several batches in flight at once (receiving over REST is one call
//! per message, so waiting on one batch at a time would leave the budget mostly idle). When the
//! sink fails, the whole tick stops after the batches in flight and the failed batch's
//! messages are abandoned once it has: they come back on a later tick, and the revision guard
//! makes writing them again harmless.
//!
//! The budget is checked before each receive, so a tick can run over it by one batch's time;
//! keep the budget below the function timeout by at least that much.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::domain::message::SummarizeRequest;
use crate::domain::series_day::{DayState, SeriesDayKey, revision};
use crate::domain::stats::{DailyStats, SummaryRow};

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::{
    PortResult, QuarantineEntry, ReceivedMessage, StateWrite, StoredDay, Versioned, WriteOutcome,
};

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub received: usize,
    pub written: usize,
    pub unchanged: usize,
    pub stale: usize,
    /// Days with no stored data (expired, or never written).
    pub missing: usize,
    pub quarantined: usize,
    /// Messages released for a later tick (a state race, or a failing sink).
    pub abandoned: usize,
    /// The error that ended the tick early, if any.
    pub error: Option<String>,
}

/// What a manual run of one day did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DaySummaryReport {
    /// Series-days with data whose statistics were computed.
    pub computed: usize,
    /// Rows written; the others were already stored at the same or a newer revision.
    pub written: usize,
}

/// The summarize messages of one batch for one series-day.
#[derive(Default)]
struct Requested {
    /// The highest epoch asked for; older ones are covered by it.
    epoch: u32,
    /// The locks of every message asking, all settled together.
    locks: Vec<String>,
}

/// One summary to write and the message(s) it settles.
struct Planned {
    key: SeriesDayKey,
    row: SummaryRow,
    epoch: u32,
    /// The day's state as read with its points; the finished state is written against it.
    state: Option<Versioned<DayState>>,
    locks: Vec<String>,
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
            if let Err(e) = self
                .summarize_batch(messages, &mut report, &mut failed)
                .await
            {
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
            match SummarizeRequest::from_body(&message.body) {
                Ok(request) => {
                    let entry = requests.entry(request.key()).or_default();
                    entry.epoch = entry.epoch.max(request.epoch);
                    entry.locks.push(message.lock_token);
                }
                Err(reason) => {
                    bad.push(QuarantineEntry {
                        id: format!("summarize:{}", message.message_id),
                        at: now,
                        function: "summarize".into(),
                        source: message.message_id,
                        reason,
                        body: message.body,
                    });
                    done.push(message.lock_token);
                }
            }
        }
        if !bad.is_empty() {
            self.ports.quarantine.put(&bad).await?;
            report.quarantined += bad.len();
            Metrics::add(&self.metrics.quarantined, bad.len());
        }

        let keys: Vec<SeriesDayKey> = requests.keys().cloned().collect();
        let days = match self.ports.store.read_days(&keys).await {
            Ok(days) => days,
            Err(e) => {
                hold(requests.into_values().flat_map(|r| r.locks), report, failed);
                return Err(e);
            }
        };
        let mut planned = Vec::new();
        for (key, day) in keys.into_iter().zip(days) {
            let Requested { epoch, locks } =
                requests.remove(&key).expect("every key came from requests");
            let Some(day) = day else {
                report.missing += 1;
                done.extend(locks);
                continue;
            };
            if day.state.as_ref().is_some_and(|s| s.value.epoch > epoch) {
                // A newer epoch is scheduled and will summarize this day.
                report.stale += 1;
                Metrics::add(&self.metrics.summarize_stale, 1);
                done.extend(locks);
                continue;
            }
            match summary_row(&day, now) {
                Some(row) => planned.push(Planned {
                    key,
                    row,
                    epoch,
                    state: day.state,
                    locks,
                }),
                None => {
                    report.missing += 1;
                    done.extend(locks);
                }
            }
        }

        let rows: Vec<SummaryRow> = planned.iter().map(|p| p.row.clone()).collect();
        let written = match self.ports.sink.upsert(&rows).await {
            Ok(written) => written,
            Err(e) => {
                self.ports.due_summaries.complete(&done).await?;
                hold(planned.into_iter().flat_map(|p| p.locks), report, failed);
                return Err(e);
            }
        };
        report.written += written;
        report.unchanged += rows.len() - written;
        Metrics::add(&self.metrics.summaries_written, written);
        Metrics::add(&self.metrics.summaries_unchanged, rows.len() - written);

        let writes: Vec<StateWrite> = planned
            .iter()
            .map(|p| {
                let (expected_version, state) = match &p.state {
                    Some(read) => (Some(read.version.clone()), read.value.clone()),
                    None => (None, DayState::next_epoch(None, now)),
                };
                StateWrite {
                    key: p.key.clone(),
                    expected_version,
                    state: DayState {
                        epoch: state.epoch.max(p.epoch),
                        pending: false,
                        summarized_revision: Some(p.row.revision),
                        ..state
                    },
                }
            })
            .collect();
        let outcomes = self.ports.store.write_states(&writes).await?;
        let mut retry = Vec::new();
        for (plan, outcome) in planned.into_iter().zip(outcomes) {
            match outcome {
                WriteOutcome::Written => done.extend(plan.locks),
                // Data arrived while we computed: look again on the next delivery.
                WriteOutcome::Conflict => retry.extend(plan.locks),
            }
        }
        self.ports.due_summaries.complete(&done).await?;
        self.release(retry, report).await;
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

    /// Summarizes every stored series of `day` now, whatever is scheduled (backfill, manual
    /// runs). Rows are still guarded by revision, so this never replaces newer data.
    pub async fn summarize_day(&self, day: NaiveDate) -> PortResult<DaySummaryReport> {
        let now = self.ports.clock.now();
        let keys = self.ports.store.series_of_day(day).await?;
        let mut report = DaySummaryReport::default();
        for batch in keys.chunks(self.settings.summarize_batch.max(1)) {
            let rows: Vec<SummaryRow> = self
                .ports
                .store
                .read_days(batch)
                .await?
                .iter()
                .flatten()
                .filter_map(|day| summary_row(day, now))
                .collect();
            report.computed += rows.len();
            report.written += self.ports.sink.upsert(&rows).await?;
        }
        Metrics::add(&self.metrics.summaries_written, report.written);
        Ok(report)
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

fn summary_row(day: &StoredDay, now: chrono::DateTime<chrono::Utc>) -> Option<SummaryRow> {
    Some(SummaryRow {
        series: day.key.series.clone(),
        day: day.key.day,
        stats: DailyStats::compute(&day.points)?,
        revision: revision(&day.points),
        computed_at: now,
    })
}
