//! The application builder: the one place that turns [`Config`] into adapters and a
//! [`Pipeline`]. Every driver — `eventide local`, `eventide serve`, the one-shot commands, the
//! demo, the tests and the examples — builds its application here, so a setting means the same
//! thing everywhere, and the behaviour drivers share (the end of day) lives here once.

pub mod choices;
pub mod config;
pub mod identity;
pub mod open;

use std::sync::Arc;

use serde::Serialize;

use crate::adapters::embedded::Embedded;
use crate::adapters::embedded::queue::{EmbeddedQueue, QueueDepth, QueueSettings};
use crate::adapters::embedded::store::Expiry;
use crate::adapters::servicebus::{DeadLetterQueue, ServiceBusQueue};
use crate::pipeline::metrics::{AdapterCounters, BACKLOG_QUEUES, HistogramSnapshot, Metrics};
use crate::pipeline::ports::{Clock, KeptQuarantine, PortResult, QuarantineSource};
use crate::pipeline::summarize::TickReport;
use crate::pipeline::{Pipeline, Ports};
use choices::PortChoices;
pub use config::Config;
use config::{EmbeddedConfig, QueueBackend};
use identity::Identity;
use open::QueuePort;

/// Who runs the application: it decides what an unset backend means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `eventide local` and the one-shot commands: unset ports run on the embedded file.
    Local,
    /// `eventide serve` under the Azure Functions host: every port must be chosen explicitly.
    Functions,
}

/// A built application: the pipeline over its chosen adapters, and what drivers need beside it.
#[derive(Clone)]
pub struct App {
    pub pipeline: Pipeline,
    /// The observations queue port (what in-process workers pump when it is embedded).
    pub observations: QueuePort,
    /// Everything operators list and replay, the pipeline's quarantine first: with the
    /// quarantine elsewhere, embedded queues still quarantine messages delivered too often in
    /// the embedded table; a queue on Service Bus has its dead-letter queue. Operators see and
    /// replay them all.
    pub quarantines: Vec<Arc<dyn QuarantineSource>>,
    /// The embedded adapters, when some port runs on the embedded file.
    pub embedded: Option<Embedded>,
    /// How long series-days stay in the embedded store after their end and their last write.
    retention: chrono::Duration,
    /// What the sink reported when it was opened (backend and schema version).
    pub sink_description: String,
}

#[async_trait::async_trait]
impl crate::telemetry::Backlog for App {
    async fn backlog(&self) -> Vec<(&'static str, u64)> {
        App::backlog(self).await
    }
}

impl App {
    /// Chooses and opens every port's backend, then builds the pipeline over them. The
    /// embedded file is opened only when some port runs on it.
    pub async fn build(
        config: &Config,
        driver: Driver,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let choices = PortChoices::decide(&config.backends, driver)?;
        config.check_lateness(choices.store)?;
        let settings = config.pipeline.settings()?;
        let embedded = open_embedded(&choices, &config.embedded, clock.clone())?;
        let identity = Identity::new(config.identity.clone());
        let backends = &config.backends;
        let service_bus = if choices.uses_service_bus() {
            Some(open::service_bus_client(backends, &identity)?)
        } else {
            None
        };
        let queue =
            |backend: QueueBackend, name: &str, embedded_queue: Option<&EmbeddedQueue>| match (
                backend,
                embedded_queue,
                &service_bus,
            ) {
                (QueueBackend::Embedded, Some(queue), _) => Ok(QueuePort::embedded(queue)),
                (QueueBackend::Servicebus, _, Some(client)) => Ok(QueuePort::service_bus(
                    ServiceBusQueue::new(client.clone(), name.to_string()),
                )),
                _ => Err(anyhow::anyhow!("the {name} queue's backend was not opened")),
            };
        let observations = queue(
            choices.observations,
            &backends.servicebus.observations_queue,
            embedded.as_ref().map(|e| &e.observations),
        )?;
        let summaries = queue(
            choices.summaries,
            &backends.servicebus.summaries_queue,
            embedded.as_ref().map(|e| &e.summaries),
        )?;
        let quarantine =
            open::quarantine(&choices.quarantine, backends, embedded.as_ref(), &identity).await?;
        let mut quarantines: Vec<Arc<dyn QuarantineSource>> =
            vec![Arc::new(KeptQuarantine(quarantine.clone()))];
        if let Some(embedded) = &embedded
            && choices.uses_embedded_queue()
            && choices.quarantine != config::QuarantineTarget::Embedded
        {
            quarantines.push(Arc::new(KeptQuarantine(Arc::new(
                embedded.quarantine.clone(),
            ))));
        }
        if let Some(client) = &service_bus {
            for (backend, name, function) in [
                (
                    choices.observations,
                    &backends.servicebus.observations_queue,
                    "process",
                ),
                (
                    choices.summaries,
                    &backends.servicebus.summaries_queue,
                    "summarize",
                ),
            ] {
                if backend == QueueBackend::Servicebus {
                    quarantines.push(Arc::new(DeadLetterQueue::new(
                        client.clone(),
                        name.clone(),
                        function,
                    )));
                }
            }
        }
        let sink = open::summary_sink(&choices.sink, embedded.as_ref(), &identity).await?;
        let days = open::DayClock {
            calendar: settings.calendar,
            clock: clock.clone(),
            due_margin: settings.due_margin,
        };
        let store =
            open::store(choices.store, backends, embedded.as_ref(), &identity, days).await?;
        let ports = Ports {
            observations: observations.sender.clone(),
            summaries: summaries.sender,
            due_summaries: summaries.receiver,
            store: store.store,
            idempotency: store.keys,
            sink: sink.sink,
            quarantine,
            clock,
        };
        let pipeline = Pipeline::new(ports, settings);
        let adapter_counters = service_bus
            .iter()
            .map(|client| client.calls() as Arc<dyn AdapterCounters>)
            .chain(store.counters);
        for counters in adapter_counters {
            pipeline.metrics.attach(counters);
        }
        Ok(Self {
            pipeline,
            observations,
            quarantines,
            embedded,
            retention: chrono::Duration::days(i64::from(config.embedded.retention_days)),
            sink_description: sink.description,
        })
    }

    /// Applies the pending schema migrations of the embedded file (when some port uses it)
    /// and of the summary sink, opening nothing else; describes what is in force.
    pub async fn migrate(config: &Config) -> anyhow::Result<String> {
        let choices = PortChoices::decide(&config.backends, Driver::Local)?;
        let clock: Arc<dyn Clock> = Arc::new(crate::pipeline::clock::SystemClock);
        let embedded = open_embedded(&choices, &config.embedded, clock)?;
        let identity = Identity::new(config.identity.clone());
        let sink = open::summary_sink(&choices.sink, embedded.as_ref(), &identity).await?;
        let mut described = format!("summary sink: {}", sink.description);
        if let Some(embedded) = &embedded {
            let version = embedded.db.schema_version().await?;
            described = format!("embedded database: schema version {version}; {described}");
        }
        Ok(described)
    }

    /// The end of day, as both the in-process timer and the host's timer run it: reconcile
    /// lost summarize messages, drain the due summaries under `budget`, and expire old
    /// embedded data. A failing reconcile is logged and counted but never stops the summaries:
    /// it runs again on the next tick.
    #[tracing::instrument(name = "summarize", skip_all, fields(otel.kind = "server"))]
    pub async fn end_of_day(&self, budget: std::time::Duration) -> TickReport {
        if let Err(e) = self.pipeline.reconcile().await {
            Metrics::add(&self.pipeline.metrics.transient_failures, 1);
            tracing::error!(error = %e, "reconcile failed; it runs again on the next tick");
        }
        let report = self.pipeline.summarize_tick(budget).await;
        if let Some(embedded) = &self.embedded {
            let now = self.pipeline.ports.clock.now();
            let calendar = &self.pipeline.settings.calendar;
            embedded
                .housekeeping(Expiry::at(now, self.retention, calendar))
                .await;
        }
        report
    }

    /// Messages deliverable now in each queue whose backend can count them (the embedded
    /// ones; Service Bus is not asked). Empty when the count fails: a gauge, not an alarm.
    pub async fn backlog(&self) -> Vec<(&'static str, u64)> {
        let Some(embedded) = &self.embedded else {
            return Vec::new();
        };
        match (
            embedded.observations.depth().await,
            embedded.summaries.depth().await,
        ) {
            (Ok(observations), Ok(summaries)) => BACKLOG_QUEUES
                .into_iter()
                .zip([observations.active, summaries.active])
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Queue depths, counters and quarantine size, as `/api/status` shows them.
    pub async fn status(&self) -> PortResult<Status> {
        let (queues, quarantine, schema_version) = match &self.embedded {
            Some(embedded) => (
                Some(QueueDepths {
                    observations: embedded.observations.depth().await?,
                    summaries: embedded.summaries.depth().await?,
                }),
                Some(embedded.quarantine.size().await?),
                Some(embedded.db.schema_version().await?),
            ),
            None => (None, None, None),
        };
        Ok(Status {
            queues,
            quarantine,
            counters: self.pipeline.metrics.snapshot(),
            histograms: self
                .pipeline
                .metrics
                .histograms()
                .into_iter()
                .map(|(name, histogram)| (name, histogram.snapshot()))
                .collect(),
            schema_version,
        })
    }
}

/// The embedded file's adapters, when some port chose them; the file is not touched otherwise.
fn open_embedded(
    choices: &PortChoices,
    config: &EmbeddedConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<Embedded>> {
    if !choices.uses_embedded() {
        return Ok(None);
    }
    let queues = QueueSettings {
        lock_duration: config.lock_duration,
        max_deliveries: config.max_deliveries,
        dedup_window: config.dedup_window,
    };
    Ok(Some(Embedded::open(&config.db, queues, clock)?))
}

/// What `/api/status` reports. The embedded figures are absent when nothing runs on the
/// embedded file.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub queues: Option<QueueDepths>,
    /// Entries in the embedded quarantine table.
    pub quarantine: Option<u64>,
    pub counters: std::collections::BTreeMap<&'static str, u64>,
    /// Durations in seconds, bucketed by `pipeline::metrics::BUCKET_BOUNDS`.
    pub histograms: std::collections::BTreeMap<&'static str, HistogramSnapshot>,
    /// The embedded file's schema version.
    pub schema_version: Option<i64>,
}

/// Message counts of the embedded queues.
#[derive(Debug, Clone, Serialize)]
pub struct QueueDepths {
    pub observations: QueueDepth,
    pub summaries: QueueDepth,
}
