//! Choosing each port's backend by its own setting. With nothing set, every port uses the
//! embedded SQLite adapters, so any driver runs on a bare machine; any mix of backends is
//! configuration, not code.

use std::sync::Arc;

use anyhow::{Context, bail};

use crate::adapters::embedded::EmbeddedDb;
use crate::adapters::sql::SinkOptions;
use crate::adapters::sql::entra::CredentialTokenSource;
use crate::adapters::sql::mssql::{self, Auth, MssqlSink, Target};
use crate::adapters::sql::postgres::PostgresSink;
use crate::adapters::sql::sqlite::SqliteSink;
use crate::pipeline::ports::SummarySink;

/// Backend settings. Connection strings are secrets: they are never logged or echoed.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BackendArgs {
    /// Where daily summaries go: `postgres://…` (or `postgresql://…`), a SQL Server / Azure SQL
    /// connection string (ADO.NET `Server=…;Database=…` or `sqlserver://host:port;…`),
    /// `sqlite:PATH` for a separate SQLite file; unset for the embedded database's table.
    #[arg(long, env = "EVENTIDE_SUMMARY_SINK", hide_env_values = true)]
    pub summary_sink: Option<String>,
}

/// The summary sink the settings ask for; server-backed sinks apply their schema migrations
/// before this returns.
pub async fn summary_sink(
    args: &BackendArgs,
    embedded: &EmbeddedDb,
) -> anyhow::Result<Arc<dyn SummarySink>> {
    Ok(open_summary_sink(args, embedded).await?.0)
}

/// Applies the summary sink's schema migrations (by opening it); describes what is in force.
pub async fn migrate_summary_sink(
    args: &BackendArgs,
    embedded: &EmbeddedDb,
) -> anyhow::Result<String> {
    Ok(open_summary_sink(args, embedded).await?.1)
}

async fn open_summary_sink(
    args: &BackendArgs,
    embedded: &EmbeddedDb,
) -> anyhow::Result<(Arc<dyn SummarySink>, String)> {
    let Some(target) = args.summary_sink.as_deref().filter(|s| !s.is_empty()) else {
        let version = embedded.schema_version().await?;
        let sink = Arc::new(SqliteSink::new(embedded.clone()));
        return Ok((sink, format!("embedded SQLite, schema version {version}")));
    };
    if let Some(path) = target.strip_prefix("sqlite:") {
        let db = EmbeddedDb::open(std::path::Path::new(path))?;
        let version = db.schema_version().await?;
        let sink = Arc::new(SqliteSink::new(db));
        return Ok((sink, format!("SQLite file, schema version {version}")));
    }
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        let sink = PostgresSink::connect(target, SinkOptions::default()).await?;
        let version = sink.migrate().await?;
        return Ok((
            Arc::new(sink),
            format!("PostgreSQL, schema version {version}"),
        ));
    }
    if mssql::is_mssql_connection_string(target) {
        let (config, entra) = mssql::parse_connection_string(target)
            .context("EVENTIDE_SUMMARY_SINK: SQL Server connection string")?;
        let auth = match entra {
            None => Auth::FromConnectionString,
            Some(flow) => Auth::Token(Arc::new(
                CredentialTokenSource::for_auth(&flow)
                    .map_err(|e| anyhow::anyhow!("setting up Microsoft Entra ID: {e}"))?,
            )),
        };
        let sink = MssqlSink::connect(Target { config, auth }, SinkOptions::default()).await?;
        let version = sink.migrate().await?;
        return Ok((
            Arc::new(sink),
            format!("SQL Server, schema version {version}"),
        ));
    }
    let scheme = target.split([':', ';', '=']).next().unwrap_or("");
    bail!(
        "EVENTIDE_SUMMARY_SINK: unsupported backend {scheme:?} (supported: postgres://…, \
         Server=…;Database=… or sqlserver://…, sqlite:PATH)"
    )
}
