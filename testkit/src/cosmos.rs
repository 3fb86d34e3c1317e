//! Wiring the Cosmos adapter to the SDK's in-memory emulator (a real Cosmos DB request pipeline
//! over an in-process store that models RU charges, provisioned throughput and 429s), optionally
//! with the SDK's fault-injection rules. Used by the Cosmos tests and the `cosmos_ru` report.

use std::sync::Arc;

use azure_core::credentials::Secret;
use azure_core::http::Url;
use azure_data_cosmos::fault_injection::FaultInjectionRule;
use azure_data_cosmos::options::Region;
use azure_data_cosmos::{AccountReference, CosmosClient, CosmosRuntimeBuilder, RoutingStrategy};
use azure_data_cosmos_driver::in_memory_emulator::{
    ContainerConfig, EmulatorStore, InMemoryEmulatorHttpClient, VirtualAccountConfig, VirtualRegion,
};
use eventide::adapters::cosmos::client::{client_builder, open_container};
use eventide::adapters::cosmos::{CosmosAuth, CosmosSettings, CosmosStore};

/// The virtual account's gateway; the endpoint host must equal it.
pub const URL: &str = "https://eastus.emulator.local/";

/// One in-memory account.
pub struct Emulator {
    pub http: Arc<InMemoryEmulatorHttpClient>,
    pub store: Arc<EmulatorStore>,
}

impl Emulator {
    /// An account with throttling enforced (429 once a partition's RU/s are spent).
    #[expect(
        clippy::new_without_default,
        reason = "each call makes a new in-memory account; there is no default one to share"
    )]
    pub fn new() -> Self {
        let config = VirtualAccountConfig::new(vec![VirtualRegion::new(
            "East US",
            Url::parse(URL).unwrap(),
        )])
        .unwrap()
        .with_throttling_enabled(true);
        let http = Arc::new(InMemoryEmulatorHttpClient::new(config));
        let store = http.store();
        Self { http, store }
    }

    /// A client with the adapter's operation defaults and these fault rules.
    pub async fn client(
        &self,
        settings: &CosmosSettings,
        rules: Vec<Arc<FaultInjectionRule>>,
    ) -> CosmosClient {
        let runtime = CosmosRuntimeBuilder::from(self.http.runtime_builder())
            .build()
            .await
            .unwrap();
        let account = AccountReference::with_authentication_key(
            URL.parse().unwrap(),
            Secret::new("dGVzdGtleQ=="), // the emulator checks no key
        );
        client_builder(settings)
            .with_runtime(runtime)
            .with_fault_injection_rules(rules)
            .unwrap()
            .build(account, RoutingStrategy::ProximityTo(Region::EAST_US))
            .await
            .unwrap()
    }

    /// Creates a container through the emulator's own hook: one physical partition (what a
    /// real 400 RU/s container has) with this provisioned throughput.
    pub fn provision(&self, settings: &CosmosSettings, partitions: u32, throughput: u64) {
        self.store.create_database(&settings.database);
        self.store.create_container_with_config(
            &settings.database,
            &settings.container,
            "/seriesId".into(),
            ContainerConfig::new()
                .with_partition_count(partitions)
                .with_throughput(throughput)
                .build()
                .unwrap(),
        );
    }

    /// A store on this account; the container is created by the adapter's own start-up setup
    /// when `settings.create_if_missing` is set.
    pub async fn open(
        &self,
        settings: &CosmosSettings,
        rules: Vec<Arc<FaultInjectionRule>>,
    ) -> (CosmosClient, CosmosStore) {
        let client = self.client(settings, rules).await;
        let container = open_container(&client, settings).await.unwrap();
        let store = CosmosStore::new(container, settings);
        (client, store)
    }
}

/// Settings for the emulator: key auth, a budget of `ru_per_second`.
pub fn settings(ru_per_second: f64) -> CosmosSettings {
    let mut s = CosmosSettings::new(URL, CosmosAuth::Key(Secret::new("dGVzdGtleQ==")));
    s.database = "eventide".into();
    s.container = "series_days".into();
    s.budget.ru_per_second = ru_per_second;
    s
}
