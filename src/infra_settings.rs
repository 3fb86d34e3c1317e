//! The values Eventide assumes of its Azure resources — queue names and properties, the Cosmos DB
//! container's layout, storage container names, the fixed app settings — read from
//! `infra/eventide.settings.json`, the file the Bicep templates load with `loadJsonContent`.
//! The file is compiled in, so the code and the templates share one source instead of two copies
//! that could drift apart (`tests/suite/infra_settings.rs` checks both sides).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

/// The parsed file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfraSettings {
    pub service_bus: ServiceBusQueues,
    pub cosmos: CosmosContainer,
    pub storage: StorageContainers,
    pub service_bus_trigger: TriggerConcurrency,
    /// App settings with a fixed value; the templates add the ones that name resources.
    pub app_settings: BTreeMap<String, String>,
}

/// The two queues.
#[derive(Debug, Deserialize)]
pub struct ServiceBusQueues {
    pub observations: Queue,
    pub summaries: Queue,
}

/// A queue: its name and its ARM properties (`Microsoft.ServiceBus/namespaces/queues`), kept as
/// JSON because the templates pass them through unchanged.
#[derive(Debug, Deserialize)]
pub struct Queue {
    pub name: String,
    pub properties: BTreeMap<String, Value>,
}

/// The series-day container.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CosmosContainer {
    pub database: String,
    pub container: String,
    pub partition_key_path: String,
    pub default_ttl_seconds: u64,
    pub indexing_policy: IndexingPaths,
}

/// The paths of the container's indexing policy (the rest of the policy is fixed: consistent,
/// automatic).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexingPaths {
    pub included_paths: Vec<IndexedPath>,
    pub excluded_paths: Vec<IndexedPath>,
}

#[derive(Debug, Deserialize)]
pub struct IndexedPath {
    pub path: String,
}

/// Blob containers of the storage account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageContainers {
    pub quarantine_container: String,
    pub deployment_container: String,
}

/// How many messages the Service Bus trigger hands one instance at a time (`host.json`'s
/// `extensions.serviceBus`, which must hold the same numbers).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerConcurrency {
    pub max_concurrent_calls: u32,
    pub max_message_batch_size: u32,
}

/// The file's text, as compiled in.
pub const INFRA_SETTINGS_JSON: &str = include_str!("../infra/eventide.settings.json");

static PARSED: LazyLock<InfraSettings> = LazyLock::new(|| {
    serde_json::from_str(INFRA_SETTINGS_JSON)
        .expect("infra/eventide.settings.json is valid (checked by infra_settings tests)")
});

/// The settings; parsed on first use.
pub fn infra_settings() -> &'static InfraSettings {
    &PARSED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_file_parses() {
        let settings = infra_settings();
        assert!(!settings.service_bus.observations.name.is_empty());
        assert!(settings.cosmos.default_ttl_seconds > 0);
    }
}
