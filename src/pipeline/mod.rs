//! The use cases — `ingest`, `process`, `summarize`, `reconcile` — written against the small
//! traits in [`ports`]. Nothing here knows which backend or driver it runs under: the same code
//! serves the Functions host and `eventide local`.

pub mod clock;
mod counted;
pub mod ingest;
pub mod metrics;
pub mod overview;
mod patience;
pub mod ports;
pub mod process;
pub mod reconcile;
pub mod renewal;
pub mod restate;
pub mod retry;
mod scheduling;
pub mod summarize;

use std::sync::Arc;

use chrono::Duration;

use crate::domain::calendar::Calendar;
use crate::domain::lateness::DayWindow;
use crate::domain::message::MAX_CHUNK_BYTES;
use ingest::StampSequence;
use metrics::Metrics;
use ports::{
    Clock, IdempotencyKeys, MessageReceiver, MessageSender, Quarantine, SeriesDayStore, SummarySink,
};

/// The adapters one pipeline runs on.
#[derive(Clone)]
pub struct Ports {
    /// Where ingest sends observation chunks.
    pub observations: Arc<dyn MessageSender>,
    /// Where process and reconcile schedule summarize messages.
    pub summaries: Arc<dyn MessageSender>,
    /// Where summarize receives the due summarize messages.
    pub due_summaries: Arc<dyn MessageReceiver>,
    pub store: Arc<dyn SeriesDayStore>,
    /// Where ingest remembers the idempotency keys of requests (beside the series-days).
    pub idempotency: Arc<dyn IdempotencyKeys>,
    pub sink: Arc<dyn SummarySink>,
    pub quarantine: Arc<dyn Quarantine>,
    pub clock: Arc<dyn Clock>,
}

/// Tunables of the use cases (see the README's configuration reference).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Day boundaries.
    pub calendar: Calendar,
    /// How long after a day ends its summary is due, so stragglers make it in.
    pub grace: Duration,
    /// For data that arrives after the day's due time: how long to wait for more of it before
    /// summarizing again.
    pub settle: Duration,
    /// Tolerated clock difference between instances when deciding whether a summary may
    /// already be running.
    pub due_margin: Duration,
    /// How long past due a pending summary may stay before `reconcile` assumes its message lost.
    pub reconcile_after: Duration,
    /// How long after its end a day still takes data (see `domain::lateness`).
    pub max_lateness: Duration,
    /// Summarize messages handled per receive.
    pub summarize_batch: usize,
    /// Largest observation chunk body.
    pub max_chunk_bytes: usize,
    /// How long a batch waits out a dependency's transient failures, trying again with
    /// backoff, before it is given back to its queue (see `patience`).
    pub patience: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            calendar: Calendar::default(),
            grace: Duration::minutes(10),
            settle: Duration::minutes(5),
            due_margin: Duration::minutes(1),
            reconcile_after: Duration::hours(1),
            max_lateness: Duration::days(1),
            summarize_batch: 256,
            max_chunk_bytes: MAX_CHUNK_BYTES,
            patience: std::time::Duration::from_secs(120),
        }
    }
}

/// The use cases over one set of ports.
#[derive(Clone)]
pub struct Pipeline {
    pub ports: Ports,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// The stamps of this process's ingest requests.
    stamps: Arc<StampSequence>,
}

impl Pipeline {
    /// The days that take data as of `now`.
    pub fn day_window(&self, now: chrono::DateTime<chrono::Utc>) -> DayWindow {
        DayWindow::at(self.settings.calendar, self.settings.max_lateness, now)
    }

    /// The pipeline over `ports`, each wrapped to count its failures in [`Metrics`].
    pub fn new(ports: Ports, settings: Settings) -> Self {
        let metrics = Arc::new(Metrics::default());
        Self {
            ports: counted::count_failures(ports, &metrics),
            settings: Arc::new(settings),
            metrics,
            stamps: Arc::new(StampSequence::default()),
        }
    }
}
