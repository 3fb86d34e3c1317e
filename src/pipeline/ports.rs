//! The small traits the use cases are written against. Each backend (embedded SQLite, Azure,
//! SQL servers) implements the ones it serves; drivers choose implementations by configuration.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::idempotency::IdempotencyKey;
use crate::domain::series::SeriesId;
use crate::domain::series_day::{DayState, Point, SeriesDayKey};
use crate::domain::stats::SummaryRow;
use crate::pipeline::retry::Verdict;
use crate::telemetry::TraceContext;

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, timeouts, a dependency that is down: retry later.
    Transient,
    /// The request itself is wrong: retrying cannot help.
    Permanent,
}

/// An error from a port, with the context of the call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct PortError {
    pub kind: ErrorKind,
    pub context: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
    /// How long the dependency asked callers to wait (`Retry-After`, `x-ms-retry-after-ms`),
    /// when it said: the use cases' patience waits at least that long before trying again.
    pub retry_after: Option<std::time::Duration>,
}

impl PortError {
    pub fn transient(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind: ErrorKind::Transient,
            context: context.into(),
            source: source.into(),
            retry_after: None,
        }
    }

    pub fn permanent(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            context: context.into(),
            source: source.into(),
            retry_after: None,
        }
    }

    /// The error as an adapter's classifier judged it, with the dependency's hint kept.
    pub fn classified(
        verdict: Verdict,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        match verdict {
            Verdict::Transient { retry_after } => Self {
                retry_after,
                ..Self::transient(context, source)
            },
            Verdict::Permanent => Self::permanent(context, source),
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Where time comes from, so tests and demos can move through a day in seconds.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// Used by the queue's duplicate detection.
    pub message_id: String,
    pub session_id: Option<String>,
    pub body: Vec<u8>,
    /// Not visible to receivers before this instant.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The span that sent it, for the receiver's span to follow (only when exporting).
    pub trace_context: Option<TraceContext>,
}

/// A message received under a peek-lock.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub body: Vec<u8>,
    pub enqueued_at: DateTime<Utc>,
    pub delivery_count: u32,
    /// Settles the message; invalid once the lock expired.
    pub lock_token: String,
    /// When the lock expires unless renewed, by the queue's clock.
    pub locked_until: DateTime<Utc>,
    /// The sender's span, when the message carried a valid one.
    pub trace_context: Option<TraceContext>,
}

/// Sends messages to one queue.
#[async_trait]
pub trait MessageSender: Send + Sync {
    /// Sends all messages or fails; a message whose id was seen within the queue's duplicate
    /// detection window is accepted and dropped.
    async fn send(&self, messages: Vec<OutgoingMessage>) -> PortResult<()>;
}

/// Receives messages from one queue under peek-lock.
#[async_trait]
pub trait MessageReceiver: Send + Sync {
    /// Up to `max` visible messages, locked for the queue's lock duration.
    async fn receive(&self, max: usize) -> PortResult<Vec<ReceivedMessage>>;
    /// Removes settled messages. A lock that expired is reported as an error for that message
    /// only by logging; the message will be delivered again, which is safe.
    async fn complete(&self, lock_tokens: &[String]) -> PortResult<()>;
    /// Releases the locks so the messages are delivered again.
    async fn abandon(&self, lock_tokens: &[String]) -> PortResult<()>;
    /// Extends the locks of messages still being worked on by the queue's lock duration.
    /// Returns how many locks were already lost: those messages will be delivered again, which
    /// is safe.
    async fn renew(&self, lock_tokens: &[String]) -> PortResult<usize>;
}

/// A versioned value: the version is the store's concurrency token (an etag).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: String,
}

/// The points to merge into one series-day.
#[derive(Debug, Clone)]
pub struct DayPoints {
    pub key: SeriesDayKey,
    /// Normalized: sorted by timestamp, one point per timestamp.
    pub points: Vec<Point>,
}

/// The writes a store's `prepare` computed for one series-day, sealed for its own `commit`.
///
/// How a day is laid out (hour rows, buckets and slots, one document) and which version each
/// stored piece had is the adapter's business; the pipeline only carries this from `prepare` to
/// `commit` and cannot look inside. Shared rather than boxed so that an adapter can hand it to a
/// blocking task without copying the points.
#[derive(Clone)]
pub struct PreparedWrites(Arc<dyn Any + Send + Sync>);

impl PreparedWrites {
    /// Seals an adapter's own description of the writes.
    pub fn seal<T: Any + Send + Sync>(writes: T) -> Self {
        Self(Arc::new(writes))
    }

    /// The writes as the adapter sealed them. Writes sealed by another adapter can only come
    /// from wiring two stores to one pipeline, a defect retrying cannot fix: a permanent error.
    pub fn open<T: Any + Send + Sync>(&self) -> PortResult<Arc<T>> {
        Arc::clone(&self.0).downcast::<T>().map_err(|_| {
            PortError::permanent(
                "committing a prepared merge",
                format!(
                    "it was not prepared by this store (expected {})",
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}

impl std::fmt::Debug for PreparedWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreparedWrites(sealed)")
    }
}

/// A merge computed against the stored day but not yet written.
#[derive(Debug, Clone)]
pub struct PreparedMerge {
    pub key: SeriesDayKey,
    /// Whether writing would change the stored points.
    pub changed: bool,
    /// The day's summary state when the merge was prepared.
    pub state: Option<Versioned<DayState>>,
    /// What `commit` writes, conditional on the versions read by `prepare`.
    pub writes: PreparedWrites,
}

/// A conditional write of one day's summary state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub key: SeriesDayKey,
    /// The version the state must still have for the write to apply; `None`: the day must have
    /// no state yet (its first epoch).
    pub expected_version: Option<String>,
    /// The state to store.
    pub state: DayState,
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Someone else wrote first; read again and redo.
    Conflict,
}

/// A whole series-day as stored.
#[derive(Debug, Clone)]
pub struct StoredDay {
    pub key: SeriesDayKey,
    pub state: Option<Versioned<DayState>>,
    /// Sorted by timestamp, one per timestamp.
    pub points: Vec<Point>,
}

/// The series-day documents. Merges are two-phase so that the pipeline can schedule the day's
/// summary between computing a change and writing it (see `pipeline::process`).
#[async_trait]
pub trait SeriesDayStore: Send + Sync {
    /// Reads what merging these points needs and computes the result, writing nothing.
    async fn prepare(&self, days: &[DayPoints]) -> PortResult<Vec<PreparedMerge>>;
    /// Writes prepared merges, each conditional on the versions it was prepared against.
    async fn commit(&self, merges: &[PreparedMerge]) -> PortResult<Vec<WriteOutcome>>;
    /// Reads the summary state of each day.
    async fn read_states(
        &self,
        keys: &[SeriesDayKey],
    ) -> PortResult<Vec<Option<Versioned<DayState>>>>;
    /// Writes each state if its version is still the expected one (`None`: only if absent).
    async fn write_states(&self, writes: &[StateWrite]) -> PortResult<Vec<WriteOutcome>>;
    /// Reads whole days; `None` for a day that is not stored (never written, or expired).
    async fn read_days(&self, keys: &[SeriesDayKey]) -> PortResult<Vec<Option<StoredDay>>>;
    /// Days whose summary is pending and was due before `due_before`, oldest first.
    async fn pending_due_before(
        &self,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<SeriesDayKey>>;
    /// Every stored series of one day (for manual runs).
    async fn series_of_day(&self, day: NaiveDate) -> PortResult<Vec<SeriesDayKey>>;
}

/// What an `Idempotency-Key` was first used for.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub key: IdempotencyKey,
    /// The fingerprint of the request's body (`domain::idempotency::fingerprint`).
    pub fingerprint: String,
    /// The ingest stamp the request's chunks carry, on every attempt.
    pub stamp: i64,
    /// When the key was first used; it is forgotten a retention time later.
    pub first_seen: DateTime<Utc>,
}

/// The idempotency keys of ingest requests, kept beside the series-days (same backend, same
/// retention) so every deployment that stores days can remember them.
#[async_trait]
pub trait IdempotencyKeys: Send + Sync {
    /// Keeps `record` unless the same key is kept already, and returns the record in force:
    /// `record` itself for the first use of the key, the earlier one for any later use.
    async fn claim(&self, record: KeyRecord) -> PortResult<KeyRecord>;
}

/// Where daily statistics go.
#[async_trait]
pub trait SummarySink: Send + Sync {
    /// Upserts rows; a stored row is replaced only by a row with a higher revision. Returns how
    /// many rows were written (the others were not newer).
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize>;
    /// Stored rows, optionally of one series and/or one day, ordered by day then series.
    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> PortResult<Vec<SummaryRow>>;
}

/// One quarantined item or message.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineEntry {
    /// Deterministic, so a redelivered poison message does not produce a second entry.
    pub id: String,
    pub at: DateTime<Utc>,
    /// The function that rejected it: `ingest`, `process` or `summarize`.
    pub function: String,
    /// Where it came from (a message id, a request).
    pub source: String,
    pub reason: String,
    /// The original bytes.
    pub body: Vec<u8>,
}

/// Holds what could not be processed, with the reason, for inspection and replay.
#[async_trait]
pub trait Quarantine: Send + Sync {
    /// Keeps the entries; an entry whose id is already kept is not stored again.
    async fn put(&self, entries: &[QuarantineEntry]) -> PortResult<()>;
    /// Up to `limit` entries, newest first (for operators).
    async fn list(&self, limit: usize) -> PortResult<Vec<QuarantineEntry>>;
    /// Removes an entry (after it was replayed); returns whether it existed.
    async fn remove(&self, id: &str) -> PortResult<bool>;
}

/// What a replay did with one entry it was handed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resubmission {
    /// The entry is on its queue again, under a new MessageId: its source removes it.
    Sent,
    /// The entry cannot be replayed (no queue feeds its function): it stays where it is.
    Declined { reason: String },
}

/// Puts one entry back on the queue its function reads. The drivers decide which queue and
/// which new MessageId; the sources only decide how an entry leaves them.
#[async_trait]
pub trait Resubmit: Send + Sync {
    async fn resubmit(&self, entry: &QuarantineEntry) -> PortResult<Resubmission>;
}

/// One entry a replay handled, by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub id: String,
    pub outcome: Resubmission,
}

/// Somewhere operators list entries that were not processed, and replay them: the pipeline's
/// own [`Quarantine`] (through [`KeptQuarantine`]), or a broker's dead-letter queue, which only
/// the broker fills and so is no `Quarantine`.
#[async_trait]
pub trait QuarantineSource: Send + Sync {
    /// Up to `limit` entries, removing none of them (a dead-letter queue's listing does count
    /// as a delivery of each listed message; see `adapters::servicebus::dead_letter`).
    async fn list(&self, limit: usize) -> PortResult<Vec<QuarantineEntry>>;
    /// Hands each entry whose id is in `wanted` (every entry when `wanted` is empty) to
    /// `resubmit`, and removes it from here once it was sent — sent first, removed second, so
    /// a failure in between replays an entry twice rather than losing it (processing makes the
    /// second copy harmless). Stops at the first error.
    async fn replay(&self, wanted: &[String], resubmit: &dyn Resubmit)
    -> PortResult<Vec<Replayed>>;
}

/// A [`Quarantine`] the pipeline writes, seen as a [`QuarantineSource`].
#[derive(Clone)]
pub struct KeptQuarantine(pub Arc<dyn Quarantine>);

#[async_trait]
impl QuarantineSource for KeptQuarantine {
    async fn list(&self, limit: usize) -> PortResult<Vec<QuarantineEntry>> {
        self.0.list(limit).await
    }

    async fn replay(
        &self,
        wanted: &[String],
        resubmit: &dyn Resubmit,
    ) -> PortResult<Vec<Replayed>> {
        let mut replayed = Vec::new();
        for entry in self.0.list(usize::MAX >> 1).await? {
            if !(wanted.is_empty() || wanted.contains(&entry.id)) {
                continue;
            }
            let outcome = resubmit.resubmit(&entry).await?;
            if outcome == Resubmission::Sent {
                self.0.remove(&entry.id).await?;
            }
            replayed.push(Replayed {
                id: entry.id,
                outcome,
            });
        }
        Ok(replayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_writes_open_only_as_what_was_sealed() {
        let sealed = PreparedWrites::seal(vec![1u8, 2, 3]);
        assert_eq!(*sealed.open::<Vec<u8>>().unwrap(), vec![1, 2, 3]);
        let foreign = sealed.open::<String>().unwrap_err();
        assert_eq!(foreign.kind, ErrorKind::Permanent);
        assert!(
            foreign.to_string().contains("not prepared by this store"),
            "{foreign}"
        );
    }
}
