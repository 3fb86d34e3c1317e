//! `reconcile`: the safety net for lost summarize messages (expired, dead-lettered, purged).
//!
//! A day whose summary is still pending well past its due time has lost its message. Reconcile
//! opens the next epoch for it, due now; the lost epoch, should its message ever surface, is
//! then recognised as stale and skipped.

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::PortResult;
use super::scheduling::EpochOpening;

/// Days looked at per reconcile run.
const RECONCILE_LIMIT: usize = 1_000;

impl Pipeline {
    /// Reschedules past-due pending days; returns how many were rescheduled.
    pub async fn reconcile(&self) -> PortResult<usize> {
        let now = self.ports.clock.now();
        let overdue = now - self.settings.reconcile_after;
        let keys = self
            .ports
            .store
            .pending_due_before(overdue, RECONCILE_LIMIT)
            .await?;
        if keys.is_empty() {
            return Ok(0);
        }
        let states = self.ports.store.read_states(&keys).await?;
        let openings: Vec<_> = keys
            .into_iter()
            .zip(states)
            .filter(|(_, state)| {
                state
                    .as_ref()
                    .is_some_and(|s| s.value.pending && s.value.due_at < overdue)
            })
            .map(|(key, previous)| EpochOpening {
                key,
                previous,
                due_at: now,
            })
            .collect();
        let attempted = openings.len();
        // A conflict means the day moved on by itself (summarized, or touched); nothing to do.
        let conflicts = self.open_epochs(openings).await?;
        let reconciled = attempted - conflicts.len();
        if reconciled > 0 {
            tracing::warn!(
                reconciled,
                "reconcile: rescheduled summaries whose messages were lost"
            );
        }
        Metrics::add(&self.metrics.reconciled, reconciled);
        Ok(reconciled)
    }
}
