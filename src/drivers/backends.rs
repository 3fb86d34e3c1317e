//! Choosing each port's backend by its own setting. With nothing set, every port uses the
//! embedded SQLite adapters, so any driver runs on a bare machine; any mix of backends is
//! configuration, not code.

use std::sync::Arc;

use anyhow::{Context, bail};

use crate::adapters::cosmos::{CosmosArgs, CosmosStore};
use crate::adapters::embedded::EmbeddedDb;
use crate::adapters::servicebus::{ClientOptions, ServiceBusClient, ServiceBusQueue};
use crate::adapters::sql::SinkOptions;
use crate::adapters::sql::entra::CredentialTokenSource;
use crate::adapters::sql::mssql::{self, Auth, MssqlSink, Target};
use crate::adapters::sql::postgres::PostgresSink;
use crate::adapters::sql::sqlite::SqliteSink;
use crate::pipeline::ports::{SeriesDayStore, SummarySink};

/// Backend settings. Connection strings are secrets: they are never logged or echoed.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BackendArgs {
    /// Where daily summaries go: `postgres://…` (or `postgresql://…`), a SQL Server / Azure SQL
    /// connection string (ADO.NET `Server=…;Database=…` or `sqlserver://host:port;…`),
    /// `sqlite:PATH` for a separate SQLite file; unset for the embedded database's table.
    #[arg(long, env = "EVENTIDE_SUMMARY_SINK", hide_env_values = true)]
    pub summary_sink: Option<String>,
    /// Service Bus by connection string (SAS): `Endpoint=sb://…;SharedAccessKeyName=…;
    /// SharedAccessKey=…`. Unset (and no namespace): the embedded queues.
    #[arg(long, env = "EVENTIDE_SERVICEBUS", hide_env_values = true)]
    pub servicebus: Option<String>,
    /// Service Bus by Microsoft Entra ID: the namespace host, e.g. `myns.servicebus.windows.net`.
    #[arg(long, env = "EVENTIDE_SERVICEBUS_NAMESPACE")]
    pub servicebus_namespace: Option<String>,
    /// With a namespace: `managed-identity` (default; system-assigned unless
    /// `EVENTIDE_SERVICEBUS_CLIENT_ID` names a user-assigned one) or `developer` (Azure CLI /
    /// Azure Developer CLI sign-in, for a workstation).
    #[arg(long, env = "EVENTIDE_SERVICEBUS_CREDENTIAL")]
    pub servicebus_credential: Option<String>,
    /// Client ID of a user-assigned managed identity for Service Bus.
    #[arg(long, env = "EVENTIDE_SERVICEBUS_CLIENT_ID")]
    pub servicebus_client_id: Option<String>,
    /// Service Bus queue ingest sends observation chunks to (default `observations`).
    #[arg(long, env = "EVENTIDE_OBSERVATIONS_QUEUE")]
    pub observations_queue: Option<String>,
    /// Service Bus queue of summarize messages (default `summaries`; duplicate detection on,
    /// sessions off — see the README).
    #[arg(long, env = "EVENTIDE_SUMMARIES_QUEUE")]
    pub summaries_queue: Option<String>,
    /// Where series-day documents live: `embedded` (the default) or `cosmos` (Azure Cosmos DB,
    /// configured by the `EVENTIDE_COSMOS_*` settings).
    #[arg(long, env = "EVENTIDE_SERIES_DAY_STORE")]
    pub series_day_store: Option<String>,
    #[command(flatten)]
    pub cosmos: CosmosArgs,
}

/// The series-day store the settings ask for; `embedded` is used when none is chosen.
pub async fn series_day_store(
    args: &BackendArgs,
    embedded: Arc<dyn SeriesDayStore>,
) -> anyhow::Result<Arc<dyn SeriesDayStore>> {
    match args.series_day_store.as_deref().unwrap_or("embedded") {
        "" | "embedded" => Ok(embedded),
        "cosmos" => {
            let Some(settings) = args.cosmos.settings().map_err(anyhow::Error::msg)? else {
                bail!("EVENTIDE_SERIES_DAY_STORE=cosmos needs EVENTIDE_COSMOS_ENDPOINT");
            };
            Ok(Arc::new(CosmosStore::connect(&settings).await?))
        }
        other => bail!(
            "EVENTIDE_SERIES_DAY_STORE: unsupported backend {other:?} (supported: embedded, cosmos)"
        ),
    }
}

/// The two Service Bus queues the pipeline uses.
#[derive(Clone)]
pub struct ServiceBusQueues {
    pub observations: ServiceBusQueue,
    pub summaries: ServiceBusQueue,
}

/// The Service Bus queues the settings ask for, or `None` when neither a connection string nor
/// a namespace is set (the embedded queues serve then).
pub fn service_bus_queues(args: &BackendArgs) -> anyhow::Result<Option<ServiceBusQueues>> {
    let connection = args.servicebus.as_deref().filter(|s| !s.trim().is_empty());
    let namespace = args
        .servicebus_namespace
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let client = match (connection, namespace) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => bail!(
            "set either EVENTIDE_SERVICEBUS (connection string) or EVENTIDE_SERVICEBUS_NAMESPACE (Entra ID), not both"
        ),
        // The error names the bad part of the string, never the key.
        (Some(text), None) => {
            ServiceBusClient::from_connection_string(text, ClientOptions::default())
                .map_err(|e| anyhow::anyhow!("EVENTIDE_SERVICEBUS: {e}"))?
        }
        (None, Some(host)) => {
            let credential = entra_credential(args)?;
            ServiceBusClient::with_entra_id(host, credential, ClientOptions::default())
                .map_err(|e| anyhow::anyhow!("EVENTIDE_SERVICEBUS_NAMESPACE: {e}"))?
        }
    };
    let client = Arc::new(client);
    let name = |setting: &Option<String>, default: &str| {
        setting
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(default)
            .to_string()
    };
    Ok(Some(ServiceBusQueues {
        observations: ServiceBusQueue::new(
            client.clone(),
            name(&args.observations_queue, "observations"),
        ),
        summaries: ServiceBusQueue::new(client, name(&args.summaries_queue, "summaries")),
    }))
}

fn entra_credential(
    args: &BackendArgs,
) -> anyhow::Result<Arc<dyn azure_core::credentials::TokenCredential>> {
    use azure_identity::{
        DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
        UserAssignedId,
    };
    match args
        .servicebus_credential
        .as_deref()
        .unwrap_or("managed-identity")
    {
        "managed-identity" => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: args
                    .servicebus_client_id
                    .clone()
                    .filter(|id| !id.trim().is_empty())
                    .map(UserAssignedId::ClientId),
                ..Default::default()
            };
            Ok(ManagedIdentityCredential::new(Some(options))?)
        }
        "developer" => Ok(DeveloperToolsCredential::new(None)?),
        other => bail!(
            "EVENTIDE_SERVICEBUS_CREDENTIAL: unknown credential {other:?} (managed-identity or developer)"
        ),
    }
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
