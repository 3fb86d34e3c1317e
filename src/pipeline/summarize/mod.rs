//! `summarize`: receive the due summarize messages, compute each day's statistics, upsert them
//! and settle the messages — completing a message only after its row is committed.
//!
//! A tick works under a time budget below the function timeout and leaves whatever is left to
//! the next tick. It keeps several batches in flight at once (receiving over REST is one call
//! per message, so waiting on one batch at a time would leave the budget mostly idle). When a
//! dependency fails transiently, the batch waits it out for the patience (never past the
//! budget) with its locks renewed; if it is still failing then, the whole tick stops after the
//! batches in flight and the failed batch's messages are abandoned once it has: they come back
//! on a later tick, and the revision guard makes writing them again harmless. A day that can never be read or written is
//! that series-day's problem alone ([`isolation`]): its message is quarantined with the reason
//! and settled, and the rest of the batch is written.
//!
//! The budget is checked before each receive, so a tick can run over it by one batch's time;
//! keep the budget below the function timeout by at least that much.

mod batch;
mod day;
mod isolation;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;

use super::Pipeline;
use super::metrics::Metrics;
use super::renewal::HeldLocks;
use crate::telemetry::link;
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
            // A batch waits out a dependency's outage for the patience, but not past the tick.
            let deadline = self.patience_deadline().min(started + budget);
            // A span per batch, in the tick's trace, linked to the spans that opened the epochs.
            let span = tracing::info_span!("summarize batch", messages = messages.len());
            link(
                &span,
                messages.iter().filter_map(|m| m.trace_context.as_ref()),
            );
            let batch = self
                .summarize_batch(messages, deadline, &mut report, &mut failed)
                .instrument(span);
            let batch_started = Instant::now();
            let outcome = self
                .keeping_locks(&*self.ports.due_summaries, locks, batch)
                .await;
            self.metrics
                .summarize_batch_seconds
                .observe(batch_started.elapsed());
            if let Err(e) = outcome {
                tracing::error!(error = %e, "summarize: batch failed, its messages return on a later tick");
                Metrics::add(&self.metrics.transient_failures, 1);
                report.error = Some(e.to_string());
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        LoopOutcome { report, failed }
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
