//! The emulated Azure stack on one machine, for load tests and the suite's small run of it:
//!
//! | part | here | real or stand-in |
//! |---|---|---|
//! | custom handler | the real contract router of `eventide serve`, in process | real |
//! | Functions host | [`FunctionsHost`]: HTTP front, Service Bus trigger loops, timer | **stand-in** |
//! | series-day documents | the Cosmos DB SDK's in-memory emulator, provisioned RU/s, throttling on | the SDK's emulator |
//! | observations, summaries queues | [`FakeServiceBus`] through Eventide's REST client | **fake** |
//! | quarantine | Azure Blob Storage on Azurite | real (Azurite) |
//! | summary sink | PostgreSQL, a schema of its own | real |
//!
//! Time is a manual clock (queues, due times and retention follow it), so a run can end its day
//! at once; everything else runs at full speed on the wall clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration as StdDuration, Instant};

use azure_data_cosmos::CosmosClient;
use chrono::{DateTime, Utc};
use eventide::adapters::cosmos::CosmosStore;
use eventide::adapters::cosmos::stats::OperationCharge;
use eventide::adapters::servicebus::{ClientOptions, ServiceBusClient, ServiceBusQueue};
use eventide::adapters::sql::SinkOptions;
use eventide::adapters::sql::postgres::PostgresSink;
use eventide::app::config::QuarantineTarget;
use eventide::app::{App, Driver};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::SummarySink;

use crate::cosmos::Emulator;
use crate::fake_service_bus::{FakeQueueSettings, FakeServiceBus, QueueStats};
use crate::functions_host::{FunctionsHost, TriggerSettings};

pub const OBSERVATIONS: &str = "observations";
pub const SUMMARIES: &str = "summaries";

/// How to build the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The container's provisioned throughput, RU/s (the store's budget is the same).
    pub provisioned_ru: u64,
    /// Physical partitions the throughput is split over.
    pub partitions: u32,
    /// The PostgreSQL server of the sink (`EVENTIDE_TEST_POSTGRES`).
    pub postgres: String,
    /// Azurite's storage connection string (`EVENTIDE_TEST_AZURITE`).
    pub azurite: String,
    /// Names this run's PostgreSQL schema and quarantine container (lower case, digits).
    pub name: String,
    /// Where the manual clock starts.
    pub now: DateTime<Utc>,
    /// The Service Bus trigger's settings (default: `host.json`'s).
    pub trigger: TriggerSettings,
    /// Shards of the Cosmos DB store's day log (0: merges rewrite buckets).
    pub log_shards: u32,
}

/// The running stack.
pub struct AzureStack {
    pub clock: Arc<ManualClock>,
    pub fake: FakeServiceBus,
    pub emulator: Emulator,
    _cosmos_client: CosmosClient,
    pub store: CosmosStore,
    pub app: App,
    pub sink: Arc<dyn SummarySink>,
    /// The handler's base URL (`http://127.0.0.1:PORT`), as the host reaches it.
    pub handler: String,
    pub host: FunctionsHost,
    pub options: StackOptions,
    _stop_handler: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl AzureStack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let clock = Arc::new(ManualClock::new(options.now));
        let queue_settings = FakeQueueSettings {
            // Longer than any batch takes here, so a slow invocation never loses its lock.
            lock_duration: chrono::Duration::minutes(5),
            ..FakeQueueSettings::default()
        };
        let fake = FakeServiceBus::start(
            clock.clone(),
            &[
                (OBSERVATIONS, queue_settings.clone()),
                (SUMMARIES, queue_settings),
            ],
        )
        .await;
        let sb = Arc::new(ServiceBusClient::from_connection_string(
            &fake.connection_string(),
            ClientOptions::default(),
        )?);
        // Zero: an empty queue answers at once (production waits a second; with nothing to
        // wait for here that would only add idle time to the end-of-day figure).
        let observations =
            ServiceBusQueue::new(sb.clone(), OBSERVATIONS).with_receive_wait(StdDuration::ZERO);
        let summaries = ServiceBusQueue::new(sb, SUMMARIES).with_receive_wait(StdDuration::ZERO);

        let emulator = Emulator::new();
        let mut cosmos = crate::cosmos::settings(options.provisioned_ru as f64);
        emulator.provision(&cosmos, options.partitions, options.provisioned_ru);
        cosmos.budget.concurrency = cosmos.budget.concurrency.max(64);
        cosmos.log_shards = options.log_shards;
        let (cosmos_client, store) = emulator.open(&cosmos, Vec::new()).await;

        let dir = tempfile::tempdir()?;
        let mut config = crate::settings(dir.path().join("eventide.db"));
        config.backends.quarantine =
            Some(QuarantineTarget::parse(&options.azurite).map_err(|e| anyhow::anyhow!("{e}"))?);
        config.backends.quarantine_container = options.name.clone();
        let mut app = App::build(&config, Driver::Local, clock.clone()).await?;
        let settings = app.pipeline.settings.clone();
        let store = store
            .with_expiry(settings.calendar, clock.clone())
            .remembering_pending(settings.due_margin);
        let sink: Arc<dyn SummarySink> = Arc::new(
            PostgresSink::connect(
                &options.postgres,
                SinkOptions {
                    schema: Some(options.name.clone()),
                    max_connections: 4,
                    ..SinkOptions::default()
                },
            )
            .await?,
        );
        let ports = &mut app.pipeline.ports;
        ports.store = Arc::new(store.clone());
        ports.idempotency = Arc::new(store.clone());
        ports.sink = sink.clone();
        ports.observations = Arc::new(observations.clone());
        ports.summaries = Arc::new(summaries.clone());
        ports.due_summaries = Arc::new(summaries);

        let router = eventide::drivers::functions::router(
            app.clone(),
            config.runtime.summarize_budget(),
            config.runtime.max_body_bytes,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let handler = format!("http://{}", listener.local_addr()?);
        let (stop_handler, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        let host = FunctionsHost::start(handler.clone(), observations, options.trigger).await;
        Ok(Self {
            clock,
            fake,
            emulator,
            _cosmos_client: cosmos_client,
            store,
            app,
            sink,
            handler,
            host,
            options,
            _stop_handler: stop_handler,
            _dir: dir,
        })
    }

    /// Waits until every observation message was processed and completed (the queue is empty
    /// and no trigger loop is inside an invocation); the wall time it took.
    pub async fn processed(&self, timeout: StdDuration) -> anyhow::Result<StdDuration> {
        let started = Instant::now();
        loop {
            if self.fake.len(OBSERVATIONS) == 0 && !self.host.busy() {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "{} observation messages still queued after {timeout:?}",
                self.fake.len(OBSERVATIONS)
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }

    /// Fires the timer back to back until `rows` summary rows were written and no summarize
    /// message is left; the wall time it took.
    pub async fn summarized(&self, rows: u64, timeout: StdDuration) -> anyhow::Result<StdDuration> {
        let started = Instant::now();
        loop {
            self.host.timer_tick().await;
            let written = self.app.pipeline.metrics.snapshot()["summaries_written"];
            if written >= rows && self.fake.len(SUMMARIES) == 0 {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "{written} of {rows} summary rows written after {timeout:?}"
            );
        }
    }

    /// Service Bus operations so far, as the fake counted them.
    pub fn service_bus(&self) -> ServiceBusOperations {
        ServiceBusOperations {
            observations: self.fake.stats(OBSERVATIONS),
            summaries: self.fake.stats(SUMMARIES),
        }
    }

    /// Cosmos DB figures so far.
    pub fn cosmos(&self) -> CosmosFigures {
        let stats = self.store.stats();
        CosmosFigures {
            request_units: stats.request_units(),
            wasted_request_units: stats.wasted_request_units(),
            requests: stats.requests.load(Ordering::Relaxed),
            throttled: stats.throttled.load(Ordering::Relaxed),
            by_operation: stats.by_operation(),
        }
    }

    /// Stops the host's loops.
    pub async fn stop(self) {
        self.host.stop().await;
    }
}

/// The fake's counts on both queues.
#[derive(Debug, Clone)]
pub struct ServiceBusOperations {
    pub observations: QueueStats,
    pub summaries: QueueStats,
}

impl ServiceBusOperations {
    /// Billed messaging operations: sends, receives that returned a message, schedules (the
    /// figure `servicebus_ops` reports; settles and empty receives are shown apart).
    pub fn billed(&self) -> u64 {
        self.observations.messages_sent
            + self.observations.received
            + self.summaries.messages_scheduled
            + self.summaries.received
    }

    /// Completes and abandons.
    pub fn settles(&self) -> u64 {
        self.observations.completed
            + self.observations.abandoned
            + self.summaries.completed
            + self.summaries.abandoned
    }

    /// What changed since `before`.
    pub fn since(&self, before: &Self) -> u64 {
        self.billed() - before.billed()
    }
}

/// Request units and requests of the Cosmos DB store.
#[derive(Debug, Clone, Default)]
pub struct CosmosFigures {
    pub request_units: f64,
    /// Spent on answers that did no work (lost conditional writes, failed attempts).
    pub wasted_request_units: f64,
    pub requests: u64,
    pub throttled: u64,
    /// Request units and attempts by operation.
    pub by_operation: Vec<OperationCharge>,
}

impl CosmosFigures {
    /// What changed since `before`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            request_units: self.request_units - before.request_units,
            wasted_request_units: self.wasted_request_units - before.wasted_request_units,
            requests: self.requests - before.requests,
            throttled: self.throttled - before.throttled,
            by_operation: self
                .by_operation
                .iter()
                .map(|now| {
                    let then = before
                        .by_operation
                        .iter()
                        .find(|b| b.operation == now.operation);
                    OperationCharge {
                        operation: now.operation,
                        request_units: now.request_units - then.map_or(0.0, |t| t.request_units),
                        requests: now.requests - then.map_or(0, |t| t.requests),
                    }
                })
                .collect(),
        }
    }

    /// `read 1,234 RU in 1,000 (1.23 each); …` over the operations that ran.
    pub fn breakdown(&self) -> String {
        self.by_operation
            .iter()
            .filter(|o| o.requests > 0)
            .map(|o| {
                format!(
                    "{} {:.0} RU in {} ({:.2} each)",
                    o.operation.name(),
                    o.request_units,
                    o.requests,
                    o.request_units / o.requests as f64
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Share of requests answered 429.
    pub fn throttled_share(&self) -> f64 {
        self.throttled as f64 / self.requests.max(1) as f64
    }

    /// Share of `provisioned` RU/s over `elapsed` spent on successful work.
    pub fn goodput(&self, provisioned: u64, elapsed: StdDuration) -> f64 {
        (self.request_units - self.wasted_request_units)
            / (provisioned as f64 * elapsed.as_secs_f64().max(f64::EPSILON))
    }
}
