//! The command line: `eventide local`, `eventide summarize`, `eventide demo`, `eventide migrate`.

use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use super::config::LocalArgs;
use super::demo::{self, DemoArgs};
use super::local::{Embedded, LocalApp};
use crate::pipeline::clock::SystemClock;
use crate::pipeline::ports::Clock;

#[derive(Parser, Debug)]
#[command(
    name = "eventide",
    version,
    about = "Time-series observations in, daily statistics out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole flow on one SQLite file: local API, queue workers and summarize timer.
    Local(LocalArgs),
    /// Summarize every series of one day now, whatever is scheduled (backfill, manual runs).
    Summarize {
        /// The day, YYYY-MM-DD, in the configured time zone.
        #[arg(long)]
        day: NaiveDate,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Run a synthetic day through the real HTTP ingest of an embedded runtime and report.
    Demo(DemoArgs),
    /// Apply pending schema migrations (embedded database and summary sink) and exit.
    Migrate {
        #[command(flatten)]
        local: LocalArgs,
    },
}

/// Runs the parsed command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Local(args) => {
            let app = LocalApp::start(args, Arc::new(SystemClock)).await?;
            println!(
                "eventide local: http://{}/api/ingest (Ctrl-C or SIGTERM stops)",
                app.addr
            );
            shutdown_signal().await?;
            app.shutdown().await;
            Ok(())
        }
        Command::Summarize { day, local } => {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let embedded = Embedded::open(&local, clock.clone())?;
            let pipeline = embedded.pipeline(&local, clock).await?;
            let (computed, written) = pipeline
                .summarize_day(day)
                .await
                .with_context(|| format!("summarizing {day}"))?;
            println!(
                "{day}: {computed} series-days computed, {written} rows written (others were already current)"
            );
            Ok(())
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Migrate { local } => {
            let db = crate::adapters::embedded::EmbeddedDb::open(&local.db)?;
            let sink = super::backends::migrate_summary_sink(&local.backends, &db).await?;
            println!(
                "embedded database: schema version {}; summary sink: {sink}",
                db.schema_version().await?
            );
            Ok(())
        }
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = terminate.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
