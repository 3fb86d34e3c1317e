//! Opening the adapter of each chosen backend. Connection strings are secrets: errors name the
//! setting and the part that is wrong, never the value.

use std::sync::Arc;

use anyhow::Context;

use super::config::{BackendConfig, QuarantineTarget, SinkTarget, StoreBackend};
use super::identity::Identity;
use crate::adapters::blob::{BlobAccess, BlobQuarantine, StorageConnection};
use crate::adapters::cosmos::CosmosStore;
use crate::adapters::embedded::queue::EmbeddedQueue;
use crate::adapters::embedded::{Embedded, EmbeddedDb};
use crate::adapters::servicebus::{ClientOptions, ServiceBusClient, ServiceBusQueue};
use crate::adapters::sql::SinkOptions;
use crate::adapters::sql::entra::CredentialTokenSource;
use crate::adapters::sql::mssql::{self, Auth, EntraAuth, MssqlSink, Target};
use crate::adapters::sql::postgres::PostgresSink;
use crate::adapters::sql::sqlite::SqliteSink;
use crate::domain::calendar::Calendar;
use crate::pipeline::metrics::AdapterCounters;
use crate::pipeline::ports::{
    Clock, IdempotencyKeys, MessageReceiver, MessageSender, Quarantine, SeriesDayStore, SummarySink,
};

/// The embedded adapters, for a port that chose them; only opened when one did.
fn embedded_for<'a>(embedded: Option<&'a Embedded>, port: &str) -> anyhow::Result<&'a Embedded> {
    embedded.with_context(|| format!("{port} uses the embedded file, which was not opened"))
}

/// The calendar and clock a store tells the days' ends and the time by.
pub struct DayClock {
    pub calendar: Calendar,
    pub clock: Arc<dyn Clock>,
    /// The pipeline's due margin: until this long before its due time, a pending state read
    /// earlier stands in for a new read.
    pub due_margin: chrono::Duration,
}

/// An opened series-day store and the idempotency keys kept beside it.
pub struct OpenedStore {
    pub store: Arc<dyn SeriesDayStore>,
    pub keys: Arc<dyn IdempotencyKeys>,
    /// The store's own counters (Cosmos DB request units), when it keeps some.
    pub counters: Option<Arc<dyn AdapterCounters>>,
}

/// The series-day store; a Cosmos DB store counts its documents' retention on `clock` from
/// the end of the `calendar`'s days.
pub async fn store(
    choice: StoreBackend,
    backends: &BackendConfig,
    embedded: Option<&Embedded>,
    identity: &Identity,
    days: DayClock,
) -> anyhow::Result<OpenedStore> {
    match choice {
        StoreBackend::Embedded => {
            let embedded = embedded_for(embedded, "the series-day store")?;
            Ok(OpenedStore {
                store: Arc::new(embedded.store.clone()),
                keys: Arc::new(embedded.keys.clone()),
                counters: None,
            })
        }
        StoreBackend::Cosmos => {
            let settings = backends
                .cosmos
                .settings(|| identity.credential())
                .map_err(anyhow::Error::msg)?
                .context("EVENTIDE_SERIES_DAY_STORE=cosmos needs EVENTIDE_COSMOS_ENDPOINT")?;
            let store = CosmosStore::connect(&settings)
                .await?
                .with_expiry(days.calendar, days.clock)
                .remembering_pending(days.due_margin);
            let store = Arc::new(store);
            Ok(OpenedStore {
                counters: Some(store.stats().clone()),
                store: store.clone(),
                keys: store,
            })
        }
    }
}

/// One queue port: who sends to it and who receives from it.
#[derive(Clone)]
pub struct QueuePort {
    pub sender: Arc<dyn MessageSender>,
    pub receiver: Arc<dyn MessageReceiver>,
    /// The embedded queue behind the port, when it is one: its arrivals wake idle workers,
    /// and no trigger but ours delivers it.
    pub embedded: Option<EmbeddedQueue>,
}

impl QueuePort {
    pub fn embedded(queue: &EmbeddedQueue) -> Self {
        Self {
            sender: Arc::new(queue.clone()),
            receiver: Arc::new(queue.clone()),
            embedded: Some(queue.clone()),
        }
    }

    pub fn service_bus(queue: ServiceBusQueue) -> Self {
        Self {
            sender: Arc::new(queue.clone()),
            receiver: Arc::new(queue),
            embedded: None,
        }
    }
}

/// The Service Bus client the settings ask for: by connection string (SAS) or by namespace
/// with the application's credential.
pub fn service_bus_client(
    backends: &BackendConfig,
    identity: &Identity,
) -> anyhow::Result<Arc<ServiceBusClient>> {
    let config = &backends.servicebus;
    let namespace = config.namespace.as_deref().filter(|n| !n.trim().is_empty());
    let client = match (&config.connection, namespace) {
        (Some(_), Some(_)) => anyhow::bail!(
            "set either EVENTIDE_SERVICEBUS (connection string) or EVENTIDE_SERVICEBUS_NAMESPACE \
             (Microsoft Entra ID), not both"
        ),
        // The error names the bad part of the string, never the key.
        (Some(connection), None) => {
            ServiceBusClient::from_connection_string(connection.secret(), ClientOptions::default())
                .map_err(|e| anyhow::anyhow!("EVENTIDE_SERVICEBUS: {e}"))?
        }
        (None, Some(host)) => {
            let credential = identity.credential().map_err(anyhow::Error::msg)?;
            ServiceBusClient::with_entra_id(host, credential, ClientOptions::default())
                .map_err(|e| anyhow::anyhow!("EVENTIDE_SERVICEBUS_NAMESPACE: {e}"))?
        }
        (None, None) => anyhow::bail!(
            "Service Bus is chosen but neither EVENTIDE_SERVICEBUS nor \
             EVENTIDE_SERVICEBUS_NAMESPACE is set"
        ),
    };
    Ok(Arc::new(client))
}

/// The quarantine; a Blob container is created if it does not exist.
pub async fn quarantine(
    target: &QuarantineTarget,
    backends: &BackendConfig,
    embedded: Option<&Embedded>,
    identity: &Identity,
) -> anyhow::Result<Arc<dyn Quarantine>> {
    let (endpoint, access) = match target {
        QuarantineTarget::Embedded => {
            let embedded = embedded_for(embedded, "the quarantine")?;
            return Ok(Arc::new(embedded.quarantine.clone()));
        }
        QuarantineTarget::BlobServiceUrl(url) => {
            let credential = identity.credential().map_err(anyhow::Error::msg)?;
            (url.clone(), BlobAccess::Entra(credential))
        }
        QuarantineTarget::BlobConnectionString(text) => {
            // The error names the bad part of the string, never the key.
            let connection = StorageConnection::parse(text.secret()).map_err(|e| {
                anyhow::anyhow!("EVENTIDE_QUARANTINE: storage connection string: {e}")
            })?;
            (
                connection.blob_endpoint,
                BlobAccess::AccountKey(connection.key),
            )
        }
    };
    let mut shown = endpoint.clone();
    shown.set_query(None);
    let quarantine = BlobQuarantine::connect(&endpoint, &backends.quarantine_container, access)
        .await
        .with_context(|| format!("opening the Blob quarantine at {shown}"))?;
    Ok(Arc::new(quarantine))
}

/// An opened summary sink, its schema migrated.
pub struct OpenedSink {
    pub sink: Arc<dyn SummarySink>,
    /// What is in force, for `eventide migrate`: the backend and its schema version.
    pub description: String,
}

/// The summary sink; server-backed sinks apply their pending migrations, once, before this
/// returns.
pub async fn summary_sink(
    target: &SinkTarget,
    embedded: Option<&Embedded>,
    identity: &Identity,
) -> anyhow::Result<OpenedSink> {
    match target {
        SinkTarget::Embedded => {
            let embedded = embedded_for(embedded, "the summary sink")?;
            let version = embedded.db.schema_version().await?;
            Ok(OpenedSink {
                sink: Arc::new(SqliteSink::new(embedded.db.clone())),
                description: format!("embedded SQLite, schema version {version}"),
            })
        }
        SinkTarget::SqliteFile(path) => {
            let db = EmbeddedDb::open(path)?;
            let version = db.schema_version().await?;
            Ok(OpenedSink {
                sink: Arc::new(SqliteSink::new(db)),
                description: format!("SQLite file, schema version {version}"),
            })
        }
        SinkTarget::Postgres(url) => {
            // Connecting applies the pending migrations, once.
            let sink = PostgresSink::connect(url.secret(), SinkOptions::default()).await?;
            let version = sink.schema_version();
            Ok(OpenedSink {
                sink: Arc::new(sink),
                description: format!("PostgreSQL, schema version {version}"),
            })
        }
        SinkTarget::SqlServer(text) => {
            let mssql::ConnectionSettings { config, entra } =
                mssql::parse_connection_string(text.secret())
                    .context("EVENTIDE_SUMMARY_SINK: SQL Server connection string")?;
            let auth = match entra {
                None => Auth::FromConnectionString,
                Some(EntraAuth::ManagedIdentity {
                    client_id: Some(_), ..
                }) => anyhow::bail!(
                    "EVENTIDE_SUMMARY_SINK: leave `User Id` out of a managed-identity connection \
                     string; the identity of every Azure connection is EVENTIDE_AZURE_CLIENT_ID"
                ),
                Some(_) => {
                    let credential = identity.credential().map_err(anyhow::Error::msg)?;
                    Auth::Token(Arc::new(CredentialTokenSource::new(credential)))
                }
            };
            // Connecting applies the pending migrations, once.
            let sink = MssqlSink::connect(Target { config, auth }, SinkOptions::default()).await?;
            let version = sink.schema_version();
            Ok(OpenedSink {
                sink: Arc::new(sink),
                description: format!("SQL Server, schema version {version}"),
            })
        }
    }
}
