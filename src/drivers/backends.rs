//! Choosing each port's backend by its own setting. With nothing set, every port uses the
//! embedded SQLite adapters, so any driver runs on a bare machine; any mix of backends is
//! configuration, not code.

use std::sync::Arc;

use anyhow::{Context, bail};

use crate::adapters::blob::{BlobAccess, BlobQuarantine, StorageConnection};
use crate::adapters::cosmos::{CosmosArgs, CosmosStore};
use crate::adapters::embedded::EmbeddedDb;
use crate::adapters::embedded::queue::EmbeddedQueue;
use crate::adapters::servicebus::{ClientOptions, ServiceBusClient, ServiceBusQueue};
use crate::adapters::sql::SinkOptions;
use crate::adapters::sql::entra::CredentialTokenSource;
use crate::adapters::sql::mssql::{self, Auth, MssqlSink, Target};
use crate::adapters::sql::postgres::PostgresSink;
use crate::adapters::sql::sqlite::SqliteSink;
use crate::pipeline::ports::{
    MessageReceiver, MessageSender, Quarantine, SeriesDayStore, SummarySink,
};

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
    /// Where ingest sends observations and `process` reads them: `embedded` or `servicebus`
    /// (the default when Service Bus is configured).
    #[arg(long, env = "EVENTIDE_OBSERVATIONS_BACKEND")]
    pub observations_backend: Option<String>,
    /// Where summarize messages are scheduled and received: `embedded` or `servicebus` (the
    /// default when Service Bus is configured).
    #[arg(long, env = "EVENTIDE_SUMMARIES_BACKEND")]
    pub summaries_backend: Option<String>,
    /// Where bad items and messages are kept: unset or `embedded` for the embedded table; a
    /// storage connection string (`…;AccountName=…;AccountKey=…`, or `UseDevelopmentStorage=true`
    /// for Azurite) or a Blob service URL (`https://ACCOUNT.blob.core.windows.net`, Microsoft
    /// Entra ID) for Azure Blob Storage.
    #[arg(long, env = "EVENTIDE_QUARANTINE", hide_env_values = true)]
    pub quarantine: Option<String>,
    /// The Blob container of the quarantine (created if missing).
    #[arg(
        long,
        env = "EVENTIDE_QUARANTINE_CONTAINER",
        default_value = "quarantine"
    )]
    pub quarantine_container: String,
    /// With a Blob service URL: `managed-identity` (default) or `developer`.
    #[arg(long, env = "EVENTIDE_QUARANTINE_CREDENTIAL")]
    pub quarantine_credential: Option<String>,
    /// Client ID of a user-assigned managed identity for the Blob quarantine.
    #[arg(long, env = "EVENTIDE_QUARANTINE_CLIENT_ID")]
    pub quarantine_client_id: Option<String>,
    /// Where series-day documents live: `embedded` (the default) or `cosmos` (Azure Cosmos DB,
    /// configured by the `EVENTIDE_COSMOS_*` settings).
    #[arg(long, env = "EVENTIDE_SERIES_DAY_STORE")]
    pub series_day_store: Option<String>,
    #[command(flatten)]
    pub cosmos: CosmosArgs,
}

impl BackendArgs {
    /// The quarantine setting, when it names something other than the embedded table.
    fn remote_quarantine(&self) -> Option<&str> {
        let target = self.quarantine.as_deref().map(str::trim).unwrap_or("");
        (!target.is_empty() && target != "embedded").then_some(target)
    }

    /// Whether the quarantine is somewhere other than the embedded table.
    pub fn quarantine_is_remote(&self) -> bool {
        self.remote_quarantine().is_some()
    }
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
            let credential = entra_credential(
                "EVENTIDE_SERVICEBUS_CREDENTIAL",
                args.servicebus_credential.as_deref(),
                args.servicebus_client_id.as_deref(),
            )?;
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

/// A Microsoft Entra ID credential: `managed-identity` (system-assigned unless `client_id`
/// names a user-assigned one) or `developer` (Azure CLI / Azure Developer CLI sign-in).
fn entra_credential(
    setting: &str,
    kind: Option<&str>,
    client_id: Option<&str>,
) -> anyhow::Result<Arc<dyn azure_core::credentials::TokenCredential>> {
    use azure_identity::{
        DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
        UserAssignedId,
    };
    match kind.unwrap_or("managed-identity") {
        "managed-identity" => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: client_id
                    .filter(|id| !id.trim().is_empty())
                    .map(|id| UserAssignedId::ClientId(id.to_string())),
                ..Default::default()
            };
            Ok(ManagedIdentityCredential::new(Some(options))?)
        }
        "developer" => Ok(DeveloperToolsCredential::new(None)?),
        other => bail!("{setting}: unknown credential {other:?} (managed-identity or developer)"),
    }
}

/// Which backend one queue port uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueBackend {
    Embedded,
    ServiceBus,
}

fn queue_backend(
    setting_name: &str,
    setting: Option<&str>,
    service_bus: bool,
) -> anyhow::Result<QueueBackend> {
    match setting.map(str::trim).filter(|s| !s.is_empty()) {
        None if service_bus => Ok(QueueBackend::ServiceBus),
        None | Some("embedded") => Ok(QueueBackend::Embedded),
        Some("servicebus") if service_bus => Ok(QueueBackend::ServiceBus),
        Some("servicebus") => bail!(
            "{setting_name}=servicebus needs EVENTIDE_SERVICEBUS or EVENTIDE_SERVICEBUS_NAMESPACE"
        ),
        Some(other) => {
            bail!("{setting_name}: unsupported backend {other:?} (embedded or servicebus)")
        }
    }
}

/// One queue port: who sends to it and who receives from it.
#[derive(Clone)]
pub struct QueuePort {
    pub sender: Arc<dyn MessageSender>,
    pub receiver: Arc<dyn MessageReceiver>,
    /// The embedded queue behind the port, when it is one (its arrivals wake idle workers).
    pub embedded: Option<EmbeddedQueue>,
}

impl QueuePort {
    fn embedded(queue: &EmbeddedQueue) -> Self {
        Self {
            sender: Arc::new(queue.clone()),
            receiver: Arc::new(queue.clone()),
            embedded: Some(queue.clone()),
        }
    }

    fn service_bus(queue: ServiceBusQueue) -> Self {
        Self {
            sender: Arc::new(queue.clone()),
            receiver: Arc::new(queue),
            embedded: None,
        }
    }
}

/// The observations and summaries queue ports the settings ask for.
pub fn queue_ports(
    args: &BackendArgs,
    observations: &EmbeddedQueue,
    summaries: &EmbeddedQueue,
) -> anyhow::Result<(QueuePort, QueuePort)> {
    let service_bus = service_bus_queues(args)?;
    let choose = |name,
                  setting: &Option<String>,
                  embedded: &EmbeddedQueue,
                  pick: fn(&ServiceBusQueues) -> ServiceBusQueue| {
        Ok::<_, anyhow::Error>(
            match queue_backend(name, setting.as_deref(), service_bus.is_some())? {
                QueueBackend::Embedded => QueuePort::embedded(embedded),
                QueueBackend::ServiceBus => QueuePort::service_bus(pick(
                    service_bus.as_ref().expect("checked by queue_backend"),
                )),
            },
        )
    };
    Ok((
        choose(
            "EVENTIDE_OBSERVATIONS_BACKEND",
            &args.observations_backend,
            observations,
            |q| q.observations.clone(),
        )?,
        choose(
            "EVENTIDE_SUMMARIES_BACKEND",
            &args.summaries_backend,
            summaries,
            |q| q.summaries.clone(),
        )?,
    ))
}

/// The quarantine the settings ask for; `embedded` is used when none is chosen. The Blob
/// container is created if it does not exist.
pub async fn quarantine(
    args: &BackendArgs,
    embedded: Arc<dyn Quarantine>,
) -> anyhow::Result<Arc<dyn Quarantine>> {
    let Some(target) = args.remote_quarantine() else {
        return Ok(embedded);
    };
    let (endpoint, access) = if target.starts_with("https://") || target.starts_with("http://") {
        let endpoint = azure_core::http::Url::parse(target)
            .context("EVENTIDE_QUARANTINE: not a Blob service URL")?;
        let credential = entra_credential(
            "EVENTIDE_QUARANTINE_CREDENTIAL",
            args.quarantine_credential.as_deref(),
            args.quarantine_client_id.as_deref(),
        )?;
        (endpoint, BlobAccess::Entra(credential))
    } else {
        // The error names the bad part of the string, never the key.
        let connection = StorageConnection::parse(target)
            .map_err(|e| anyhow::anyhow!("EVENTIDE_QUARANTINE: storage connection string: {e}"))?;
        (
            connection.blob_endpoint,
            BlobAccess::AccountKey(connection.key),
        )
    };
    let mut shown = endpoint.clone();
    shown.set_query(None);
    let quarantine = BlobQuarantine::connect(&endpoint, &args.quarantine_container, access)
        .await
        .with_context(|| format!("opening the Blob quarantine at {shown}"))?;
    Ok(Arc::new(quarantine))
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
        let version = sink.schema_version();
        return Ok((
            Arc::new(sink),
            format!("PostgreSQL, schema version {version}"),
        ));
    }
    if mssql::is_mssql_connection_string(target) {
        let mssql::ConnectionSettings { config, entra } = mssql::parse_connection_string(target)
            .context("EVENTIDE_SUMMARY_SINK: SQL Server connection string")?;
        let auth = match entra {
            None => Auth::FromConnectionString,
            Some(flow) => Auth::Token(Arc::new(
                CredentialTokenSource::for_auth(&flow)
                    .map_err(|e| anyhow::anyhow!("setting up Microsoft Entra ID: {e}"))?,
            )),
        };
        let sink = MssqlSink::connect(Target { config, auth }, SinkOptions::default()).await?;
        let version = sink.schema_version();
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
