//! `eventide local`: the whole flow in one process on one SQLite file.
//!
//! The same pipeline as under the Functions host, wired to the embedded adapters, with the
//! triggers run in-process: an HTTP server for ingest, workers pumping the observations queue,
//! and the summarize timer on the NCRONTAB schedule of `functions/summarize/function.json`.

mod http;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::adapters::embedded::EmbeddedDb;
use crate::adapters::embedded::quarantine::EmbeddedQuarantine;
use crate::adapters::embedded::queue::{EmbeddedQueue, QueueDepth};
use crate::adapters::embedded::store::EmbeddedStore;
use crate::domain::schedule::Schedule;
use crate::pipeline::ports::{Clock, PortResult, Quarantine};
use crate::pipeline::summarize::TickReport;
use crate::pipeline::{Pipeline, Ports};

use super::backends::{self, QueuePort, queue_ports, series_day_store, summary_sink};
use super::config::LocalArgs;
use super::timer_schedule::summarize_schedule;

/// The embedded adapters of one database file.
#[derive(Clone)]
pub struct Embedded {
    pub db: EmbeddedDb,
    pub store: EmbeddedStore,
    pub observations: EmbeddedQueue,
    pub summaries: EmbeddedQueue,
    pub quarantine: EmbeddedQuarantine,
}

impl Embedded {
    pub fn open(args: &LocalArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let db = EmbeddedDb::open(&args.db)?;
        let queues = args.queue_settings();
        Ok(Self {
            store: EmbeddedStore::new(db.clone(), clock.clone()),
            observations: EmbeddedQueue::new(
                db.clone(),
                "observations",
                queues.clone(),
                clock.clone(),
            ),
            summaries: EmbeddedQueue::new(db.clone(), "summaries", queues, clock),
            quarantine: EmbeddedQuarantine::new(db.clone()),
            db,
        })
    }

    /// The pipeline over these adapters and whatever the settings put in their place.
    pub async fn pipeline(
        &self,
        args: &LocalArgs,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Pipeline> {
        Ok(self.wire(args, clock).await?.pipeline)
    }

    /// Chooses each port's backend by its own setting, falling back to these adapters.
    pub async fn wire(&self, args: &LocalArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Wired> {
        let (observations, summaries) =
            queue_ports(&args.backends, &self.observations, &self.summaries)?;
        let embedded_quarantine: Arc<dyn Quarantine> = Arc::new(self.quarantine.clone());
        let quarantine = backends::quarantine(&args.backends, embedded_quarantine.clone()).await?;
        // The embedded queues quarantine messages delivered too often in their own table; when
        // they are in use beside another quarantine, operators see and replay both.
        let mut quarantines = vec![quarantine.clone()];
        if args.backends.quarantine_is_remote()
            && (observations.embedded.is_some() || summaries.embedded.is_some())
        {
            quarantines.push(embedded_quarantine);
        }
        let ports = Ports {
            observations: observations.sender.clone(),
            summaries: summaries.sender,
            due_summaries: summaries.receiver,
            store: series_day_store(&args.backends, Arc::new(self.store.clone())).await?,
            sink: summary_sink(&args.backends, &self.db).await?,
            quarantine,
            clock,
        };
        let mut settings = args.pipeline.settings()?;
        settings.summarize_batch = args.batch.max(1);
        Ok(Wired {
            pipeline: Pipeline::new(ports, settings),
            observations,
            quarantines,
        })
    }

    /// Queue depths, counters and quarantine size.
    pub async fn status(&self, pipeline: &Pipeline) -> PortResult<Status> {
        Ok(Status {
            queues: QueueDepths {
                observations: self.observations.depth().await?,
                summaries: self.summaries.depth().await?,
            },
            quarantine: self.quarantine.size().await?,
            counters: pipeline.metrics.snapshot(),
            schema_version: self.db.schema_version().await?,
        })
    }
}

/// A pipeline with its ports chosen, and what the drivers need beside it.
pub struct Wired {
    pub pipeline: Pipeline,
    /// The observations queue port (what in-process workers pump).
    pub observations: QueuePort,
    /// Every quarantine in use, the pipeline's first.
    pub quarantines: Vec<Arc<dyn Quarantine>>,
}

/// What `/api/status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub queues: QueueDepths,
    pub quarantine: u64,
    pub counters: std::collections::BTreeMap<&'static str, u64>,
    pub schema_version: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueDepths {
    pub observations: QueueDepth,
    pub summaries: QueueDepth,
}

/// What the runtime's HTTP server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The local API (`/api/ingest`, `/api/summaries`, `/api/status`) and the in-process timer.
    LocalApi,
    /// The Functions custom-handler contract (`/ingest`, `/process`, `/summarize`); the host
    /// fires the timer and the Service Bus trigger. An embedded observations queue is still
    /// pumped in-process, so the handler works end to end with no cloud queue configured.
    FunctionsHost,
}

/// A running local runtime.
pub struct LocalApp {
    pub embedded: Embedded,
    pub pipeline: Pipeline,
    /// Every quarantine in use (see [`Wired::quarantines`]).
    pub quarantines: Vec<Arc<dyn Quarantine>>,
    pub addr: SocketAddr,
    args: LocalArgs,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl LocalApp {
    /// Opens the database, binds `127.0.0.1:args.port` (0 picks a free port) and starts the
    /// HTTP server, the queue workers and the summarize timer.
    pub async fn start(args: LocalArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::start_as(Driver::LocalApi, args, clock).await
    }

    /// Starts the runtime behind the given driver.
    pub async fn start_as(
        driver: Driver,
        args: LocalArgs,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let schedule = match &args.summarize_schedule {
            Some(expr) => expr.parse::<Schedule>().map_err(anyhow::Error::msg)?,
            None => summarize_schedule(&args.functions_dir)?,
        };
        let embedded = Embedded::open(&args, clock.clone())?;
        let Wired {
            pipeline,
            observations,
            quarantines,
        } = embedded.wire(&args, clock.clone()).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let budget = args.summarize_budget.to_std().unwrap_or_default();
        let router = match driver {
            Driver::LocalApi => http::router(http::AppState {
                pipeline: pipeline.clone(),
                embedded: embedded.clone(),
                max_body_bytes: args.max_body_bytes,
            }),
            Driver::FunctionsHost => {
                crate::drivers::functions::router(pipeline.clone(), budget, args.max_body_bytes)
            }
        };
        let mut http_stop = stop.clone();
        tasks.spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "local API server failed");
            }
        });
        // Under the Functions host, the host's Service Bus trigger delivers observations; an
        // embedded observations queue has no trigger, so it is pumped here in either driver.
        let pumped = driver == Driver::LocalApi || observations.embedded.is_some();
        let workers = if pumped { args.workers.max(1) } else { 0 };
        for _ in 0..workers {
            tasks.spawn(workers::pump_observations(
                pipeline.clone(),
                observations.clone(),
                args.batch.max(1),
                stop.clone(),
            ));
        }
        // Under the Functions host, the host's timer calls `/summarize`.
        if driver == Driver::LocalApi {
            tasks.spawn(workers::summarize_timer(
                pipeline.clone(),
                embedded.clone(),
                schedule,
                workers::TimerSettings {
                    budget,
                    retention_days: args.retention_days,
                },
                stop,
            ));
        }
        tracing::info!(%addr, ?driver, db = %args.db.display(), "eventide is running");
        Ok(Self {
            embedded,
            pipeline,
            quarantines,
            addr,
            args,
            shutdown,
            tasks,
        })
    }

    /// Runs reconcile and one summarize tick now, as the timer would.
    pub async fn summarize_now(&self) -> TickReport {
        workers::end_of_day_tick(
            &self.pipeline,
            self.args.summarize_budget.to_std().unwrap_or_default(),
        )
        .await
    }

    pub async fn status(&self) -> PortResult<Status> {
        self.embedded.status(&self.pipeline).await
    }

    /// Stops accepting requests, lets in-flight work finish and waits for every task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
