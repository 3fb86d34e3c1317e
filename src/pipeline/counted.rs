//! Failures counted by dependency: each port is wrapped so that every error it returns to the
//! pipeline adds one to that dependency's counter. The adapters retry transient failures
//! themselves, so a count here is a call that failed after its retries — what an operator
//! needs to see to know *which* dependency is in trouble, not only that one is.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::Ports;
use super::metrics::Metrics;
use super::ports::{
    DayPoints, IdempotencyKeys, KeyRecord, MessageReceiver, MessageSender, OutgoingMessage,
    PortResult, PreparedMerge, Quarantine, QuarantineEntry, ReceivedMessage, SeriesDayStore,
    StateWrite, StoredDay, SummarySink, Versioned, WriteOutcome,
};
use crate::domain::series::SeriesId;
use crate::domain::series_day::{DayState, SeriesDayKey};
use crate::domain::stats::SummaryRow;

/// A port that counts its failures in one of the [`Metrics`] counters.
struct Counted<P: ?Sized> {
    inner: Arc<P>,
    metrics: Arc<Metrics>,
    counter: fn(&Metrics) -> &AtomicU64,
}

impl<P: ?Sized> Counted<P> {
    fn wrap(inner: Arc<P>, metrics: &Arc<Metrics>, counter: fn(&Metrics) -> &AtomicU64) -> Self {
        Self {
            inner,
            metrics: metrics.clone(),
            counter,
        }
    }

    fn count<T>(&self, result: PortResult<T>) -> PortResult<T> {
        if result.is_err() {
            Metrics::add((self.counter)(&self.metrics), 1);
        }
        result
    }
}

/// The same ports, each counting its failures in its dependency's counter.
pub fn count_failures(ports: Ports, metrics: &Arc<Metrics>) -> Ports {
    Ports {
        observations: Arc::new(Counted::wrap(ports.observations, metrics, |m| {
            &m.failures_observations_queue
        })),
        summaries: Arc::new(Counted::wrap(ports.summaries, metrics, |m| {
            &m.failures_summaries_queue
        })),
        due_summaries: Arc::new(Counted::wrap(ports.due_summaries, metrics, |m| {
            &m.failures_summaries_queue
        })),
        store: Arc::new(Counted::wrap(ports.store, metrics, |m| &m.failures_store)),
        idempotency: Arc::new(Counted::wrap(ports.idempotency, metrics, |m| {
            &m.failures_store
        })),
        sink: Arc::new(Counted::wrap(ports.sink, metrics, |m| &m.failures_sink)),
        quarantine: Arc::new(Counted::wrap(ports.quarantine, metrics, |m| {
            &m.failures_quarantine
        })),
        clock: ports.clock,
    }
}

#[async_trait]
impl MessageSender for Counted<dyn MessageSender> {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> PortResult<()> {
        self.count(self.inner.send(messages).await)
    }
}

#[async_trait]
impl MessageReceiver for Counted<dyn MessageReceiver> {
    async fn receive(&self, max: usize) -> PortResult<Vec<ReceivedMessage>> {
        self.count(self.inner.receive(max).await)
    }
    async fn complete(&self, lock_tokens: &[String]) -> PortResult<()> {
        self.count(self.inner.complete(lock_tokens).await)
    }
    async fn abandon(&self, lock_tokens: &[String]) -> PortResult<()> {
        self.count(self.inner.abandon(lock_tokens).await)
    }
    async fn renew(&self, lock_tokens: &[String]) -> PortResult<usize> {
        self.count(self.inner.renew(lock_tokens).await)
    }
}

#[async_trait]
impl SeriesDayStore for Counted<dyn SeriesDayStore> {
    async fn prepare(&self, days: &[DayPoints]) -> PortResult<Vec<PreparedMerge>> {
        self.count(self.inner.prepare(days).await)
    }
    async fn commit(&self, merges: &[PreparedMerge]) -> PortResult<Vec<WriteOutcome>> {
        self.count(self.inner.commit(merges).await)
    }
    async fn read_states(
        &self,
        keys: &[SeriesDayKey],
    ) -> PortResult<Vec<Option<Versioned<DayState>>>> {
        self.count(self.inner.read_states(keys).await)
    }
    async fn write_states(&self, writes: &[StateWrite]) -> PortResult<Vec<WriteOutcome>> {
        self.count(self.inner.write_states(writes).await)
    }
    async fn read_days(&self, keys: &[SeriesDayKey]) -> PortResult<Vec<Option<StoredDay>>> {
        self.count(self.inner.read_days(keys).await)
    }
    async fn pending_due_before(
        &self,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<SeriesDayKey>> {
        self.count(self.inner.pending_due_before(due_before, limit).await)
    }
    async fn series_of_day(&self, day: NaiveDate) -> PortResult<Vec<SeriesDayKey>> {
        self.count(self.inner.series_of_day(day).await)
    }
}

#[async_trait]
impl IdempotencyKeys for Counted<dyn IdempotencyKeys> {
    async fn claim(&self, record: KeyRecord) -> PortResult<KeyRecord> {
        self.count(self.inner.claim(record).await)
    }
}

#[async_trait]
impl SummarySink for Counted<dyn SummarySink> {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
        self.count(self.inner.upsert(rows).await)
    }
    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> PortResult<Vec<SummaryRow>> {
        self.count(self.inner.read(series, day).await)
    }
}

#[async_trait]
impl Quarantine for Counted<dyn Quarantine> {
    async fn put(&self, entries: &[QuarantineEntry]) -> PortResult<()> {
        self.count(self.inner.put(entries).await)
    }
    async fn list(&self, limit: usize) -> PortResult<Vec<QuarantineEntry>> {
        self.count(self.inner.list(limit).await)
    }
    async fn remove(&self, id: &str) -> PortResult<bool> {
        self.count(self.inner.remove(id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ports::PortError;

    struct Down;

    #[async_trait]
    impl MessageSender for Down {
        async fn send(&self, _: Vec<OutgoingMessage>) -> PortResult<()> {
            Err(PortError::transient("sending", "connection refused"))
        }
    }

    #[tokio::test]
    async fn each_failure_counts_once_for_its_dependency() {
        let metrics = Arc::new(Metrics::default());
        let down: Arc<dyn MessageSender> = Arc::new(Down);
        let counted = Counted::wrap(down, &metrics, |m| &m.failures_observations_queue);
        assert!(counted.send(Vec::new()).await.is_err());
        assert!(counted.send(Vec::new()).await.is_err());
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot["failures_observations_queue"], 2);
        assert_eq!(snapshot["failures_summaries_queue"], 0);
    }
}
