//! The command line: `eventide local`, `serve`, `summarize`, `demo`, `quarantine`, `backfill`,
//! `migrate`, `loadgen`, `cost`.
//! Each command parses the one [`Config`], builds the application with [`App::build`] and runs.

use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use super::cost::{self, CostArgs};
use super::demo::{self, DemoArgs};
use super::loadgen::{self, LoadgenArgs};
use super::quarantine;
use super::server::Server;
use crate::app::config::TelemetryConfig;
use crate::app::{App, Config, Driver};
use crate::domain::parse::{BodyFormat, SUPPORTED_CONTENT_TYPES};
use crate::pipeline::clock::SystemClock;
use crate::pipeline::ports::Clock;
use crate::pipeline::summarize::DaySummaryReport;
use crate::telemetry::Telemetry;

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
    /// Run the whole flow in one process (on one SQLite file unless configured otherwise):
    /// local API, queue workers and summarize timer.
    Local(Config),
    /// Summarize every stored series of one day now, whatever is scheduled (manual runs). To
    /// replace a closed day's data, use `backfill`.
    Summarize {
        /// The day, YYYY-MM-DD, in the configured time zone.
        #[arg(long)]
        day: NaiveDate,
        #[command(flatten)]
        config: Config,
    },
    /// Serve the Azure Functions custom-handler contract on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
    Serve {
        /// The port the host chose (it replaces `--port`).
        #[arg(long, env = "FUNCTIONS_CUSTOMHANDLER_PORT")]
        handler_port: u16,
        #[command(flatten)]
        config: Config,
    },
    /// Run a synthetic day through the real HTTP ingest of an embedded runtime and report.
    Demo(DemoArgs),
    /// Inspect or replay quarantined items and messages, and what Service Bus dead-lettered.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
        #[command(flatten)]
        config: Config,
    },
    /// Restate closed days: replace each day's row by the statistics of exactly the
    /// observations FILE holds for it (every day in the file must be complete). Open days are
    /// refused; send them through ingest.
    Backfill {
        /// Observations as JSON, NDJSON or CSV (by extension: .json, .ndjson/.jsonl, .csv).
        file: std::path::PathBuf,
        /// The file's content type, when its extension does not tell (e.g. text/csv).
        #[arg(long)]
        content_type: Option<String>,
        #[command(flatten)]
        config: Config,
    },
    /// Apply pending schema migrations (embedded database and summary sink) and exit.
    Migrate {
        #[command(flatten)]
        config: Config,
    },
    /// Drive an ingest endpoint (`eventide local`, or a Function App) with a reproducible
    /// workload and report rates, latencies, errors and when the target had merged it all.
    Loadgen(LoadgenArgs),
    /// Price measured per-observation figures per million observations and per month, by
    /// component, next to the seed's first design priced the same way.
    Cost(CostArgs),
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

/// The telemetry settings of a command that has no [`Config`] of its own, from the environment.
#[derive(Parser)]
struct TelemetryOnly {
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

impl Command {
    /// The command's telemetry settings.
    fn telemetry(&self) -> anyhow::Result<TelemetryConfig> {
        let config = match self {
            Command::Local(config)
            | Command::Summarize { config, .. }
            | Command::Serve { config, .. }
            | Command::Quarantine { config, .. }
            | Command::Backfill { config, .. }
            | Command::Migrate { config } => config,
            Command::Demo(_) | Command::Loadgen(_) | Command::Cost(_) => {
                return Ok(TelemetryOnly::try_parse_from(["eventide"])?.telemetry);
            }
        };
        Ok(config.telemetry.clone())
    }
}

/// Runs the parsed command to completion, with logging and telemetry installed from its
/// settings and flushed at the end.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or_else(Command::default_for_environment);
    let settings = command.telemetry()?;
    let mut telemetry = Telemetry::install(&settings)?;
    let result = execute(command, &mut telemetry, &settings).await;
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "the command failed");
    }
    telemetry.shutdown().await;
    result
}

/// Starts `config`'s application behind `driver`, exports its counters until SIGTERM or
/// Ctrl-C, then shuts it down.
async fn serve_until_stopped(
    config: &Config,
    driver: Driver,
    telemetry: &mut Telemetry,
    settings: &TelemetryConfig,
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let server = Server::launch(config, driver, clock).await?;
    telemetry.observe(
        server.app.pipeline.metrics.clone(),
        Arc::new(server.app.clone()),
        settings,
    );
    tracing::info!(
        telemetry = Telemetry::describe(settings),
        "telemetry is exported"
    );
    if driver == Driver::Local {
        println!(
            "eventide local: http://{}/api/ingest (Ctrl-C or SIGTERM stops)",
            server.addr
        );
    }
    shutdown_signal().await?;
    server.shutdown().await;
    Ok(())
}

async fn execute(
    command: Command,
    telemetry: &mut Telemetry,
    settings: &TelemetryConfig,
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match command {
        Command::Serve {
            handler_port,
            mut config,
        } => {
            config.runtime.port = handler_port;
            serve_until_stopped(&config, Driver::Functions, telemetry, settings).await
        }
        Command::Local(config) => {
            serve_until_stopped(&config, Driver::Local, telemetry, settings).await
        }
        Command::Summarize { day, config } => {
            let app = App::build(&config, Driver::Local, clock).await?;
            let report = app
                .pipeline
                .summarize_day(day)
                .await
                .with_context(|| format!("summarizing {day}"))?;
            let DaySummaryReport {
                computed,
                written,
                out_of_range,
                refused,
            } = &report;
            println!(
                "{day}: {computed} series-days computed, {written} rows written (others were already current), {out_of_range} with a statistic beyond double precision stored as NULL"
            );
            for refused in refused {
                eprintln!("{}: not written: {}", refused.key, refused.reason);
            }
            if !refused.is_empty() {
                anyhow::bail!(
                    "{day}: {} series-days could not be written (every other series was)",
                    refused.len()
                );
            }
            Ok(())
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Quarantine { action, config } => {
            let app = App::build(&config, Driver::Local, clock).await?;
            match action {
                QuarantineAction::List { limit } => {
                    for entry in quarantine::list(&app.quarantines, limit).await? {
                        let listed = quarantine::ListedEntry::from(&entry);
                        println!("{}", serde_json::to_string(&listed)?);
                    }
                }
                QuarantineAction::Replay { ids } => {
                    let report =
                        quarantine::replay(&app.quarantines, &app.pipeline.ports, &ids).await?;
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
            }
            Ok(())
        }
        Command::Backfill {
            file,
            content_type,
            config,
        } => {
            let format = file_format(&file, content_type.as_deref())?;
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let app = App::build(&config, Driver::Local, clock).await?;
            let report = app
                .pipeline
                .restate(format, &body)
                .await
                .with_context(|| format!("restating the days of {}", file.display()))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Migrate { config } => {
            println!("{}", App::migrate(&config).await?);
            Ok(())
        }
        Command::Loadgen(args) => loadgen::run(args).await,
        Command::Cost(args) => cost::run(args),
    }
}

/// The format of a file: named by `content_type`, or told by the file's extension.
fn file_format(path: &std::path::Path, content_type: Option<&str>) -> anyhow::Result<BodyFormat> {
    let by_extension = || match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Some("application/json"),
        Some("ndjson" | "jsonl") => Some("application/x-ndjson"),
        Some("csv") => Some("text/csv"),
        _ => None,
    };
    let content_type = content_type.or_else(by_extension).with_context(|| {
        format!(
            "{}: name its format with --content-type ({SUPPORTED_CONTENT_TYPES})",
            path.display()
        )
    })?;
    BodyFormat::from_content_type(content_type).with_context(|| {
        format!("unsupported content type {content_type:?}; use one of {SUPPORTED_CONTENT_TYPES}")
    })
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

    #[test]
    fn backfill_files_are_read_by_extension_or_content_type() {
        let format = |path: &str, content_type| file_format(path.as_ref(), content_type);
        assert_eq!(format("a.csv", None).unwrap(), BodyFormat::Csv);
        assert_eq!(format("a.jsonl", None).unwrap(), BodyFormat::Ndjson);
        assert_eq!(format("a.json", None).unwrap(), BodyFormat::Json);
        assert_eq!(format("a.txt", Some("text/csv")).unwrap(), BodyFormat::Csv);
        assert!(
            format("a.txt", None)
                .unwrap_err()
                .to_string()
                .contains("--content-type")
        );
        assert!(format("a.csv", Some("text/plain")).is_err());
    }
}
