//! Running a built [`App`] behind a driver: the HTTP server (the local API or the Functions
//! contract), the in-process queue workers where no trigger of the host delivers the queue, and
//! the summarize timer where no host fires it. Shutdown stops accepting requests, lets work in
//! flight finish, and waits for every task.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::local::{http, workers};
use super::timer_schedule::summarize_schedule;
use crate::app::config::RuntimeConfig;
use crate::app::{App, Config, Driver};
use crate::domain::schedule::Schedule;
use crate::pipeline::ports::Clock;
use crate::pipeline::summarize::TickReport;

/// A running application.
pub struct Server {
    pub app: App,
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// The budget of one summarize tick.
    summarize_budget: std::time::Duration,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Builds the application from `config` and starts it behind `driver`.
    pub async fn launch(
        config: &Config,
        driver: Driver,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let app = App::build(config, driver, clock).await?;
        Self::start(app, &config.runtime, driver).await
    }

    /// Binds `runtime.port` (0 picks a free port) on `runtime.bind` for the local API, or on
    /// 127.0.0.1 for the Functions host, and starts the tasks the driver needs.
    pub async fn start(app: App, runtime: &RuntimeConfig, driver: Driver) -> anyhow::Result<Self> {
        let schedule = match &runtime.summarize_schedule {
            Some(expr) => expr
                .parse::<Schedule>()
                .map_err(|e| anyhow::anyhow!("EVENTIDE_SUMMARIZE_SCHEDULE: {e}"))?,
            None => summarize_schedule(&runtime.functions_dir)?,
        };
        let ip = match driver {
            Driver::Local => {
                runtime.check_exposure()?;
                runtime.bind
            }
            Driver::Functions => std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let listener = tokio::net::TcpListener::bind((ip, runtime.port))
            .await
            .with_context(|| format!("binding {ip}:{}", runtime.port))?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let summarize_budget = runtime.summarize_budget();

        let router = match driver {
            Driver::Local => {
                http::router(app.clone(), runtime.max_body_bytes, runtime.api_key.clone())
            }
            Driver::Functions => {
                super::functions::router(app.clone(), summarize_budget, runtime.max_body_bytes)
            }
        };
        let mut http_stop = stop.clone();
        tasks.spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        // Under the host, its Service Bus trigger delivers a Service Bus queue; an embedded
        // queue has no trigger but ours, and locally ours is the only one.
        if driver == Driver::Local || app.observations.embedded.is_some() {
            for _ in 0..runtime.workers {
                tasks.spawn(workers::pump_observations(
                    app.clone(),
                    runtime.process_batch as usize,
                    stop.clone(),
                ));
            }
        }
        // Under the Functions host, the host's timer calls `/summarize`.
        if driver == Driver::Local {
            tasks.spawn(workers::summarize_timer(
                app.clone(),
                schedule,
                summarize_budget,
                stop,
            ));
        }
        tracing::info!(%addr, ?driver, "eventide is running");
        Ok(Self {
            app,
            addr,
            summarize_budget,
            shutdown,
            tasks,
        })
    }

    /// Runs the end of day now, as the timer would.
    pub async fn summarize_now(&self) -> TickReport {
        self.app.end_of_day(self.summarize_budget).await
    }

    /// Stops accepting requests, lets in-flight work finish and waits for every task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
