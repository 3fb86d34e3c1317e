//! Fault injection at the ports: wrappers around the store, the queues and the sink that fail
//! calls the way the real services do — an outage (every call refused for a while), or a share
//! of calls failing with throttling (429 with a retry-after hint), unavailability (503), a
//! timeout, or a call that was applied but whose response was lost. The wrappers sit between
//! the pipeline and the real adapters (SQLite, the Cosmos SDK's emulator, PostgreSQL), so the
//! adapters underneath are the real ones; the faults are this module's, not the services'.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::{DayState, SeriesDayKey};
use eventide::domain::stats::SummaryRow;
use eventide::pipeline::ports::{
    DayPoints, MessageReceiver, MessageSender, OutgoingMessage, PortError, PortResult,
    PreparedMerge, ReceivedMessage, SeriesDayStore, StateWrite, StoredDay, SummarySink, Versioned,
    WriteOutcome,
};
use tokio::time::Instant;

use crate::kit::Lcg;

/// What a fault is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Store,
    Queue,
    Sink,
}

/// A window in which every call to one dependency fails.
struct Outage {
    dependency: Dependency,
    from: Instant,
    until: Instant,
}

/// The faults of one scenario, shared by its wrappers, and what they did.
pub struct Faults {
    rng: Mutex<Lcg>,
    /// The share of calls to a dependency that fail (0 to 1).
    rates: Mutex<HashMap<Dependency, f64>>,
    outages: Mutex<Vec<Outage>>,
    /// How long the store holds every commit before making it (a slow batch).
    commit_delay: Mutex<Duration>,
    /// Calls failed on purpose.
    pub injected: AtomicU64,
}

/// What the wrapper does after letting a call through.
enum After {
    /// Return what the service answered.
    Answer,
    /// The call took effect, but its answer is lost: report a timeout.
    LoseResponse,
}

impl Faults {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            rng: Mutex::new(Lcg(seed)),
            rates: Mutex::default(),
            outages: Mutex::default(),
            commit_delay: Mutex::new(Duration::ZERO),
            injected: AtomicU64::new(0),
        })
    }

    /// Fails this share of the calls to `dependency` from now on.
    pub fn set_rate(&self, dependency: Dependency, rate: f64) {
        self.rates.lock().unwrap().insert(dependency, rate);
    }

    /// Takes `dependency` down from `after` from now, for `lasting`.
    pub fn outage(&self, dependency: Dependency, after: Duration, lasting: Duration) {
        let from = Instant::now() + after;
        self.outages.lock().unwrap().push(Outage {
            dependency,
            from,
            until: from + lasting,
        });
    }

    /// Ends every outage now.
    pub fn recover(&self) {
        self.outages.lock().unwrap().clear();
    }

    /// Makes every commit wait this long before it is made.
    pub fn delay_commits(&self, delay: Duration) {
        *self.commit_delay.lock().unwrap() = delay;
    }

    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn inject(&self, what: &str, reason: &str) -> PortError {
        self.injected.fetch_add(1, Ordering::Relaxed);
        PortError::transient(what.to_string(), format!("{reason} (injected)"))
    }

    /// Decides the fate of one call before it is made: refused, or let through.
    async fn before(&self, dependency: Dependency, what: &str) -> PortResult<After> {
        let now = Instant::now();
        let down = self
            .outages
            .lock()
            .unwrap()
            .iter()
            .any(|o| o.dependency == dependency && o.from <= now && now < o.until);
        if down {
            return Err(self.inject(what, "connection refused: the service is down"));
        }
        let rate = self.rates.lock().unwrap().get(&dependency).copied();
        let Some(rate) = rate else {
            return Ok(After::Answer);
        };
        let (roll, kind) = {
            let mut rng = self.rng.lock().unwrap();
            ((rng.next() % 1_000_000) as f64 / 1e6, rng.below(4))
        };
        if roll >= rate {
            return Ok(After::Answer);
        }
        match kind {
            0 => Err(PortError {
                retry_after: Some(Duration::from_millis(20)),
                ..self.inject(what, "429 too many requests")
            }),
            1 => Err(self.inject(what, "503 service unavailable")),
            2 => {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Err(self.inject(what, "timed out before the service answered"))
            }
            _ => {
                self.injected.fetch_add(1, Ordering::Relaxed);
                Ok(After::LoseResponse)
            }
        }
    }

    /// Runs one call to `dependency` through the faults.
    async fn call<T>(
        &self,
        dependency: Dependency,
        what: &str,
        call: impl Future<Output = PortResult<T>>,
    ) -> PortResult<T> {
        let after = self.before(dependency, what).await?;
        let answer = call.await;
        match (after, answer) {
            (After::LoseResponse, Ok(_)) => Err(PortError::transient(
                what.to_string(),
                "timed out after the call was applied (injected: response lost)",
            )),
            (_, answer) => answer,
        }
    }
}

/// The series-day store behind the faults.
pub struct FaultyStore {
    pub inner: Arc<dyn SeriesDayStore>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl SeriesDayStore for FaultyStore {
    async fn prepare(&self, days: &[DayPoints]) -> PortResult<Vec<PreparedMerge>> {
        let call = self.inner.prepare(days);
        self.faults.call(Dependency::Store, "prepare", call).await
    }

    async fn commit(&self, merges: &[PreparedMerge]) -> PortResult<Vec<WriteOutcome>> {
        let delay = *self.faults.commit_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let call = self.inner.commit(merges);
        self.faults.call(Dependency::Store, "commit", call).await
    }

    async fn read_states(
        &self,
        keys: &[SeriesDayKey],
    ) -> PortResult<Vec<Option<Versioned<DayState>>>> {
        let call = self.inner.read_states(keys);
        self.faults
            .call(Dependency::Store, "read_states", call)
            .await
    }

    async fn write_states(&self, writes: &[StateWrite]) -> PortResult<Vec<WriteOutcome>> {
        let call = self.inner.write_states(writes);
        self.faults
            .call(Dependency::Store, "write_states", call)
            .await
    }

    async fn read_days(&self, keys: &[SeriesDayKey]) -> PortResult<Vec<Option<StoredDay>>> {
        let call = self.inner.read_days(keys);
        self.faults.call(Dependency::Store, "read_days", call).await
    }

    async fn pending_due_before(
        &self,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<SeriesDayKey>> {
        let call = self.inner.pending_due_before(due_before, limit);
        self.faults
            .call(Dependency::Store, "pending_due_before", call)
            .await
    }

    async fn series_of_day(&self, day: NaiveDate) -> PortResult<Vec<SeriesDayKey>> {
        let call = self.inner.series_of_day(day);
        self.faults
            .call(Dependency::Store, "series_of_day", call)
            .await
    }
}

/// One queue behind the faults, counting what it delivers.
pub struct FaultyQueue<Q> {
    pub inner: Q,
    pub faults: Arc<Faults>,
    /// Messages handed to receivers, redeliveries included.
    pub delivered: AtomicU64,
}

impl<Q> FaultyQueue<Q> {
    pub fn new(inner: Q, faults: Arc<Faults>) -> Self {
        Self {
            inner,
            faults,
            delivered: AtomicU64::new(0),
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl<Q: MessageSender + MessageReceiver> MessageSender for FaultyQueue<Q> {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> PortResult<()> {
        let call = self.inner.send(messages);
        self.faults.call(Dependency::Queue, "send", call).await
    }
}

#[async_trait]
impl<Q: MessageSender + MessageReceiver> MessageReceiver for FaultyQueue<Q> {
    async fn receive(&self, max: usize) -> PortResult<Vec<ReceivedMessage>> {
        let call = self.inner.receive(max);
        let received = self.faults.call(Dependency::Queue, "receive", call).await?;
        self.delivered
            .fetch_add(received.len() as u64, Ordering::Relaxed);
        Ok(received)
    }

    async fn complete(&self, lock_tokens: &[String]) -> PortResult<()> {
        let call = self.inner.complete(lock_tokens);
        self.faults.call(Dependency::Queue, "complete", call).await
    }

    async fn abandon(&self, lock_tokens: &[String]) -> PortResult<()> {
        let call = self.inner.abandon(lock_tokens);
        self.faults.call(Dependency::Queue, "abandon", call).await
    }

    async fn renew(&self, lock_tokens: &[String]) -> PortResult<usize> {
        let call = self.inner.renew(lock_tokens);
        self.faults.call(Dependency::Queue, "renew", call).await
    }
}

/// The summary sink behind the faults, writing row by row so it knows which rows each write
/// changed: a row changed twice at the same revision is a row written twice.
pub struct FaultySink {
    pub inner: Arc<dyn SummarySink>,
    pub faults: Arc<Faults>,
    applied: Mutex<HashMap<(String, NaiveDate, String), usize>>,
}

impl FaultySink {
    pub fn new(inner: Arc<dyn SummarySink>, faults: Arc<Faults>) -> Self {
        Self {
            inner,
            faults,
            applied: Mutex::default(),
        }
    }

    /// Rows that changed the table again at a revision they had already written.
    pub fn written_twice(&self) -> usize {
        self.applied.lock().unwrap().values().map(|n| n - 1).sum()
    }
}

#[async_trait]
impl SummarySink for FaultySink {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
        let write = async {
            let mut written = 0;
            for row in rows {
                if self.inner.upsert(std::slice::from_ref(row)).await? == 1 {
                    written += 1;
                    let key = (
                        row.series.to_string(),
                        row.day,
                        format!("{:?}", row.revision),
                    );
                    *self.applied.lock().unwrap().entry(key).or_insert(0) += 1;
                }
            }
            Ok(written)
        };
        self.faults.call(Dependency::Sink, "upsert", write).await
    }

    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> PortResult<Vec<SummaryRow>> {
        self.inner.read(series, day).await
    }
}
