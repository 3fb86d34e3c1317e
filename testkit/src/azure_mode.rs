//! The pipeline in Azure mode for tests and reports: both queues are Service Bus queues on the
//! loopback `FakeServiceBus`, reached through the real REST client; documents, the summary sink
//! and the quarantine are the embedded SQLite adapters (the Cosmos DB and SQL Server adapters
//! are separate parts).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use eventide::adapters::embedded::Embedded;
use eventide::adapters::servicebus::{ClientOptions, ServiceBusClient, ServiceBusQueue};
use eventide::app::{App, Driver};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{MessageReceiver, SummarySink};
use eventide::pipeline::process::InboundMessage;
use eventide::pipeline::{Pipeline, Ports, Settings};

use crate::fake_service_bus::{FakeQueueSettings, FakeServiceBus};

pub const OBSERVATIONS: &str = "observations";
pub const SUMMARIES: &str = "summaries";

pub struct AzureMode {
    pub fake: FakeServiceBus,
    pub pipeline: Pipeline,
    pub observations: ServiceBusQueue,
    pub summaries: ServiceBusQueue,
    pub embedded: Embedded,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
}

/// Wraps the embedded sink (to count or fail writes).
pub type WrapSink = Box<dyn FnOnce(Arc<dyn SummarySink>) -> Arc<dyn SummarySink>>;

/// What to adjust before the pipeline is built.
pub struct Setup {
    pub observations: FakeQueueSettings,
    pub summaries: FakeQueueSettings,
    pub settings: Settings,
    pub client: ClientOptions,
    pub wrap_sink: WrapSink,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            observations: FakeQueueSettings::default(),
            summaries: FakeQueueSettings::default(),
            settings: Settings::default(),
            client: ClientOptions::default(),
            wrap_sink: Box::new(|sink| sink),
        }
    }
}

pub async fn start(clock: Arc<ManualClock>, setup: Setup) -> AzureMode {
    let fake = FakeServiceBus::start(
        clock.clone(),
        &[
            (OBSERVATIONS, setup.observations),
            (SUMMARIES, setup.summaries),
        ],
    )
    .await;
    let client = Arc::new(
        ServiceBusClient::from_connection_string(&fake.connection_string(), setup.client).unwrap(),
    );
    // Zero: an empty queue answers at once (the fake honours it; production waits 1 s).
    let observations =
        ServiceBusQueue::new(client.clone(), OBSERVATIONS).with_receive_wait(StdDuration::ZERO);
    let summaries = ServiceBusQueue::new(client, SUMMARIES).with_receive_wait(StdDuration::ZERO);

    let dir = tempfile::tempdir().unwrap();
    let config = crate::settings(dir.path().join("eventide.db"));
    let local = App::build(&config, Driver::Local, clock.clone())
        .await
        .unwrap();
    let embedded = local.embedded.clone().expect("every port is embedded");
    let ports = Ports {
        observations: Arc::new(observations.clone()),
        summaries: Arc::new(summaries.clone()),
        due_summaries: Arc::new(summaries.clone()),
        sink: (setup.wrap_sink)(local.pipeline.ports.sink.clone()),
        ..local.pipeline.ports.clone()
    };
    AzureMode {
        fake,
        pipeline: Pipeline::new(ports, setup.settings),
        observations,
        summaries,
        embedded,
        clock,
        dir,
    }
}

impl AzureMode {
    /// Plays the host's Service Bus trigger until the observations queue is empty: receive a
    /// batch of up to `batch`, process it, complete it.
    pub async fn drain_observations(&self, batch: usize) {
        loop {
            let received = self.observations.receive(batch).await.unwrap();
            if received.is_empty() {
                return;
            }
            let messages: Vec<_> = received.iter().map(InboundMessage::from).collect();
            self.pipeline.process(&messages).await.unwrap();
            let locks: Vec<_> = received.into_iter().map(|m| m.lock_token).collect();
            self.observations.complete(&locks).await.unwrap();
        }
    }
}

/// Receives everything visible on a queue, counting deliveries per MessageId, and abandons it
/// again (so it can still be processed).
pub async fn count_visible(queue: &ServiceBusQueue) -> std::collections::HashMap<String, usize> {
    let mut ids = std::collections::HashMap::new();
    let mut locks = Vec::new();
    loop {
        let batch = queue.receive(256).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for m in batch {
            *ids.entry(m.message_id.clone()).or_insert(0) += 1;
            locks.push(m.lock_token);
        }
    }
    queue.abandon(&locks).await.unwrap();
    ids
}
