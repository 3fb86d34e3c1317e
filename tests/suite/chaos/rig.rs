//! One scenario's application: built from settings like any other, on the embedded backends
//! or on the real peers, with the fault wrappers between the pipeline and the adapters.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use azure_data_cosmos::CosmosClient;
use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use eventide::adapters::embedded::Embedded;
use eventide::adapters::embedded::queue::EmbeddedQueue;
use eventide::adapters::sql::SinkOptions;
use eventide::adapters::sql::postgres::PostgresSink;
use eventide::app::config::QuarantineTarget;
use eventide::app::{App, Config, Driver};
use eventide::domain::parse::BodyFormat;
use eventide::drivers::server::Server;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ingest::IngestError;
use eventide::pipeline::ports::{MessageReceiver, QuarantineEntry};
use eventide::pipeline::process::InboundMessage;
use eventide_testkit::cosmos::{Emulator, settings as cosmos_settings};

use super::faults::{Faults, FaultyQueue, FaultySink, FaultyStore};
use super::{Figures, Workload};
use crate::kit::{Expected, Lcg, start, table_differences};

/// Which adapters sit under the faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    /// Every port on the embedded SQLite file.
    Embedded,
    /// Series-days on the Cosmos DB SDK's emulator, summaries in PostgreSQL, the quarantine in
    /// Azurite (queues embedded).
    Real,
}

/// One scenario's running application.
pub struct Rig {
    pub name: String,
    pub app: App,
    pub config: Config,
    pub clock: Arc<ManualClock>,
    pub faults: Arc<Faults>,
    pub sink: Arc<FaultySink>,
    pub observations: Arc<FaultyQueue<EmbeddedQueue>>,
    pub summaries: Arc<FaultyQueue<EmbeddedQueue>>,
    pub embedded: Embedded,
    /// The PostgreSQL URL and schema of the sink, on the real peers.
    pub postgres: Option<(String, String)>,
    started: tokio::time::Instant,
    _cosmos: Option<(Emulator, CosmosClient)>,
    pub dir: tempfile::TempDir,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The real peers' addresses, or why the scenario is skipped on them.
fn peer_addresses(scenario: &str) -> Option<(String, String)> {
    let postgres = std::env::var("EVENTIDE_TEST_POSTGRES").ok();
    let azurite = std::env::var("EVENTIDE_TEST_AZURITE").ok();
    match (postgres, azurite) {
        (Some(p), Some(a)) if !p.is_empty() && !a.is_empty() => Some((p, a)),
        _ => {
            println!(
                "SKIPPED chaos {scenario} on the real peers: EVENTIDE_TEST_POSTGRES and \
                 EVENTIDE_TEST_AZURITE are not both set (scripts/test and scripts/chaos set them)"
            );
            None
        }
    }
}

impl Rig {
    /// Builds the scenario's application; `None` (reported as skipped) when the real peers are
    /// asked for and not running.
    pub async fn build(
        scenario: &str,
        peers: Peers,
        configure: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        let name = format!(
            "{scenario} [{}]",
            match peers {
                Peers::Embedded => "embedded",
                Peers::Real => "Cosmos emulator + PostgreSQL + Azurite",
            }
        );
        let addresses = match peers {
            Peers::Embedded => None,
            Peers::Real => Some(peer_addresses(scenario)?),
        };
        let unique = format!(
            "chaos{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        let mut config = eventide_testkit::settings(dir.path().join("eventide.db"));
        if let Some((_, azurite)) = &addresses {
            config.backends.quarantine = Some(QuarantineTarget::parse(azurite).unwrap());
            config.backends.quarantine_container = unique.clone();
        }
        configure(&mut config);
        let clock = Arc::new(ManualClock::new(start()));
        let mut app = App::build(&config, Driver::Local, clock.clone())
            .await
            .unwrap();
        let embedded = app.embedded.clone().expect("the queues are embedded");
        let faults = Faults::new(7);

        let (store, cosmos, postgres) = match addresses {
            None => (app.pipeline.ports.store.clone(), None, None),
            Some((postgres_url, _)) => {
                let emulator = Emulator::new();
                let mut settings = cosmos_settings(100_000.0);
                settings.create_if_missing = true;
                settings.provisioned_throughput = Some(100_000);
                let (client, store) = emulator.open(&settings, Vec::new()).await;
                let sink = PostgresSink::connect(
                    &postgres_url,
                    SinkOptions {
                        schema: Some(unique.clone()),
                        max_connections: 4,
                        timeout: StdDuration::from_secs(20),
                        ..SinkOptions::default()
                    },
                )
                .await
                .unwrap();
                app.pipeline.ports.sink = Arc::new(sink);
                (
                    Arc::new(store) as Arc<_>,
                    Some((emulator, client)),
                    Some((postgres_url, unique)),
                )
            }
        };
        app.pipeline.ports.store = Arc::new(FaultyStore {
            inner: store,
            faults: faults.clone(),
        });
        let sink = Arc::new(FaultySink::new(
            app.pipeline.ports.sink.clone(),
            faults.clone(),
        ));
        app.pipeline.ports.sink = sink.clone();
        let observations = Arc::new(FaultyQueue::new(
            embedded.observations.clone(),
            faults.clone(),
        ));
        app.pipeline.ports.observations = observations.clone();
        app.observations.sender = observations.clone();
        app.observations.receiver = observations.clone();
        let summaries = Arc::new(FaultyQueue::new(embedded.summaries.clone(), faults.clone()));
        app.pipeline.ports.summaries = summaries.clone();
        app.pipeline.ports.due_summaries = summaries.clone();
        Some(Self {
            name,
            app,
            config,
            clock,
            faults,
            sink,
            observations,
            summaries,
            embedded,
            postgres,
            started: tokio::time::Instant::now(),
            _cosmos: cosmos,
            dir,
        })
    }

    /// Starts the application behind the local driver: its workers pump the observations and
    /// its timer runs the end of day.
    pub async fn serve(&self) -> Server {
        Server::start(self.app.clone(), &self.config.runtime, Driver::Local)
            .await
            .unwrap()
    }

    /// Sends every request of the workload through ingest, a second apart by the clock, as a
    /// client would: a request refused for a dependency is sent again after a pause.
    pub async fn ingest(&self, workload: &Workload) {
        for body in &workload.requests {
            self.ingest_one(body).await;
            self.clock.advance(Duration::seconds(1));
        }
    }

    /// Sends one NDJSON request until ingest takes it (a 503 is retried, as clients must).
    pub async fn ingest_one(&self, body: &str) {
        loop {
            match self
                .app
                .pipeline
                .ingest(BodyFormat::Ndjson, body.as_bytes())
                .await
            {
                Ok(report) => {
                    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
                    return;
                }
                Err(IngestError::Dependency(_)) => {
                    tokio::time::sleep(StdDuration::from_millis(100)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Takes every observation message off the queue (bypassing the faults), for the scenario
    /// to deliver as it likes.
    pub async fn take_observations(&self) -> Vec<InboundMessage> {
        let received = self.embedded.observations.receive(1_000_000).await.unwrap();
        received.iter().map(InboundMessage::from).collect()
    }

    /// Delivers `deliveries` in random batches of up to 40 on `workers` concurrent workers, as
    /// a broker would: a batch that fails is delivered again later.
    pub async fn deliver(&self, deliveries: Vec<InboundMessage>, workers: usize, seed: u64) {
        let share = deliveries.len().div_ceil(workers).max(1);
        let tasks = deliveries
            .chunks(share)
            .enumerate()
            .map(|(worker, part)| {
                let pipeline = self.app.pipeline.clone();
                let mut rest: Vec<InboundMessage> = part.to_vec();
                let mut rng = Lcg(seed + worker as u64);
                tokio::spawn(async move {
                    let mut redeliveries = 0;
                    while !rest.is_empty() {
                        let n = (1 + rng.below(40)).min(rest.len());
                        let batch: Vec<_> = rest.drain(..n).collect();
                        if pipeline.process_delivery(&batch).await.is_err() {
                            redeliveries += 1;
                            assert!(redeliveries < 1_000, "a batch keeps failing");
                            rest.extend(batch);
                        }
                    }
                })
            })
            .collect::<Vec<_>>();
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// Runs the end of day after the settle time until no summarize message is left, as the
    /// timer would tick.
    pub async fn summarize_all(&self) {
        self.clock.advance(Duration::minutes(6));
        for _ in 0..500 {
            let tick = self
                .app
                .pipeline
                .summarize_tick(StdDuration::from_secs(240))
                .await;
            if tick.received == 0 && tick.error.is_none() {
                return;
            }
        }
        panic!("{}: summarize never drained its queue", self.name);
    }

    /// Every entry of every quarantine in use.
    pub async fn quarantined(&self) -> Vec<QuarantineEntry> {
        let mut entries = Vec::new();
        for quarantine in &self.app.quarantines {
            entries.extend(quarantine.list(1_000_000).await.unwrap());
        }
        entries
    }

    /// The table compared with ground truth; `bad` says which quarantine entries
    /// the scenario put there on purpose.
    pub async fn figures(
        &self,
        expected: &BTreeMap<(String, NaiveDate), Expected>,
        messages: u64,
        deliveries: u64,
        bad: impl Fn(&QuarantineEntry) -> bool,
    ) -> Figures {
        let rows = crate::kit::sink_rows(self.sink.as_ref()).await;
        let differences = table_differences(&rows, expected);
        let lost = differences
            .iter()
            .map(|d| &d.key)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let quarantined_healthy = self.quarantined().await.iter().filter(|e| !bad(e)).count();
        Figures {
            scenario: self.name.clone(),
            messages,
            deliveries,
            faults: self.faults.injected(),
            compared: expected.len(),
            lost,
            written_twice: self.sink.written_twice(),
            quarantined_healthy,
            elapsed: self.started.elapsed(),
            differences: differences
                .into_iter()
                .map(|d| format!("{:?}: {}", d.key, d.what))
                .collect(),
            ..Figures::default()
        }
    }
}
