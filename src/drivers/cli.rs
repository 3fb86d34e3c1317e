//! The command line: `eventide local`, `eventide summarize`, `eventide demo`, `eventide migrate`.

use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use super::config::LocalArgs;
use super::demo::{self, DemoArgs};
use super::local::{Driver, Embedded, LocalApp};
use super::quarantine;
use crate::pipeline::clock::SystemClock;
use crate::pipeline::ports::Clock;
use crate::pipeline::summarize::DaySummaryReport;

#[derive(Parser, Debug)]
#[command(
    name = "eventide",
    version,
    about = "Time-series observations in, daily statistics out."
)]
pub struct Cli {
    /// Without a command: `serve` when FUNCTIONS_CUSTOMHANDLER_PORT is set (under the Functions
    /// host), otherwise `local`.
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Serve the Azure Functions custom-handler contract on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
    Serve {
        /// The port the host chose (it replaces `--port`).
        #[arg(long, env = "FUNCTIONS_CUSTOMHANDLER_PORT")]
        handler_port: u16,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Run a synthetic day through the real HTTP ingest of an embedded runtime and report.
    Demo(DemoArgs),
    /// Inspect or replay quarantined items and messages.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Apply pending schema migrations (embedded database and summary sink) and exit.
    Migrate {
        #[command(flatten)]
        local: LocalArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuarantineAction {
    /// Print entries as JSON lines, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Re-submit entries (all, or those named) to the queue their function reads.
    Replay {
        /// Entry ids; none means every entry.
        ids: Vec<String>,
    },
}

impl Command {
    /// The command to run when none was given.
    fn default_for_environment() -> Self {
        let under_host = std::env::var_os("FUNCTIONS_CUSTOMHANDLER_PORT").is_some();
        let name = if under_host { "serve" } else { "local" };
        match Cli::parse_from(["eventide", name]).command {
            Some(command) => command,
            None => unreachable!("a command was named"),
        }
    }
}

/// Runs the parsed command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or_else(Command::default_for_environment) {
        Command::Serve {
            handler_port,
            mut local,
        } => {
            local.port = handler_port;
            let app =
                LocalApp::start_as(Driver::FunctionsHost, local, Arc::new(SystemClock)).await?;
            shutdown_signal().await?;
            app.shutdown().await;
            Ok(())
        }
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
            let DaySummaryReport { computed, written } = pipeline
                .summarize_day(day)
                .await
                .with_context(|| format!("summarizing {day}"))?;
            println!(
                "{day}: {computed} series-days computed, {written} rows written (others were already current)"
            );
            Ok(())
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Quarantine { action, local } => {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let embedded = Embedded::open(&local, clock.clone())?;
            let wired = embedded.wire(&local, clock).await?;
            match action {
                QuarantineAction::List { limit } => {
                    for entry in quarantine::list(&wired.quarantines, limit).await? {
                        let listed = quarantine::ListedEntry::from(&entry);
                        println!("{}", serde_json::to_string(&listed)?);
                    }
                }
                QuarantineAction::Replay { ids } => {
                    let report =
                        quarantine::replay(&wired.quarantines, &wired.pipeline.ports, &ids).await?;
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
            }
            Ok(())
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
