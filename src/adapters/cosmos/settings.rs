//! Settings of the Cosmos DB series-day store. Every one is a flag with an `EVENTIDE_COSMOS_*`
//! app setting behind it. The account key is a secret: it is never logged, echoed or shown in
//! `--help` values.

use std::time::Duration;

use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};

use super::budget::BudgetSettings;
use crate::infra_settings::infra_settings;

/// How the store authenticates.
#[derive(Clone)]
pub enum CosmosAuth {
    /// An account key (the local emulator, development accounts).
    Key(Secret),
    /// Microsoft Entra ID with the application's one credential (managed identity or
    /// developer sign-in, chosen by the identity settings).
    Entra(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for CosmosAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(_) => f.write_str("Key(<redacted>)"),
            Self::Entra(_) => f.write_str("Entra"),
        }
    }
}

/// Everything the store needs to know.
#[derive(Debug, Clone)]
pub struct CosmosSettings {
    pub endpoint: String,
    pub database: String,
    pub container: String,
    pub auth: CosmosAuth,
    /// The region to prefer (`None`: the account's own order).
    pub region: Option<String>,
    /// Create the database and container at start-up when they are missing.
    pub create_if_missing: bool,
    /// Manual throughput (RU/s) given to a container this store creates; `None` leaves it to the
    /// database (shared or serverless).
    pub provisioned_throughput: Option<u32>,
    /// How long a series-day's documents are kept after the later of the day's end and its
    /// last summary (and the container's default TTL, which idempotency keys follow).
    pub ttl: Duration,
    /// The request-unit budget of this instance.
    pub budget: BudgetSettings,
    /// Timeout of one request attempt.
    pub request_timeout: Duration,
    /// Attempts per request on transient failures (429, 5xx, timeouts), the first included.
    pub max_attempts: u32,
    /// How often the SDK itself retries a 429 before surfacing it (0: every 429 reaches the
    /// budget, which is the point).
    pub sdk_throttle_retries: u32,
    /// Shards of each day's log (see `layout`), which pending days' merges append to instead
    /// of rewriting their buckets; 0 turns the log off. More shards spread a day's compaction
    /// over more, smaller units; fewer put more series-days of a batch in each log document.
    pub log_shards: u32,
}

impl CosmosSettings {
    /// Defaults for an account at `endpoint`.
    pub fn new(endpoint: impl Into<String>, auth: CosmosAuth) -> Self {
        Self {
            endpoint: endpoint.into(),
            database: infra_settings().cosmos.database.clone(),
            container: infra_settings().cosmos.container.clone(),
            auth,
            region: None,
            create_if_missing: false,
            provisioned_throughput: None,
            ttl: default_ttl(),
            budget: BudgetSettings::new(400.0, 16),
            request_timeout: Duration::from_secs(10),
            max_attempts: 6,
            sdk_throttle_retries: 0,
            log_shards: DEFAULT_LOG_SHARDS,
        }
    }
}

/// Shards of a day's log unless configured otherwise. A trigger batch of 100 series-days then
/// writes about 25 of them to each shard, a few kilobytes, and a day's log is spread over up to
/// four physical partitions. On W1 (200 series) with the emulator's charges, 1, 2, 4 and 8
/// shards cost 0.69, 0.71, 0.75 and 0.82 RU per observation; one shard throttled its partition.
pub const DEFAULT_LOG_SHARDS: u32 = 4;

/// How long documents are kept unless configured otherwise: the container's default TTL in
/// `infra/eventide.settings.json` (two days).
pub fn default_ttl() -> Duration {
    Duration::from_secs(infra_settings().cosmos.default_ttl_seconds)
}

/// The key of the Azure Cosmos DB emulator, published in its documentation; not a secret.
pub const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU9DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

/// The local emulator's endpoint (what `local.settings.json` points `func start` users at).
pub const EMULATOR_ENDPOINT: &str = "https://localhost:8081/";

/// The flags and app settings.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CosmosArgs {
    /// Account endpoint, e.g. `https://ACCOUNT.documents.azure.com:443/`
    /// (the local emulator: `https://localhost:8081/`).
    #[arg(long = "cosmos-endpoint", env = "EVENTIDE_COSMOS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Account key; when unset, Microsoft Entra ID with the application's credential is used.
    #[arg(
        long = "cosmos-key",
        env = "EVENTIDE_COSMOS_KEY",
        hide_env_values = true,
        value_parser = crate::adapters::secret_setting
    )]
    pub key: Option<Secret>,
    /// Preferred region, e.g. `West Europe` (unset: the account's order).
    #[arg(long = "cosmos-region", env = "EVENTIDE_COSMOS_REGION")]
    pub region: Option<String>,
    /// Database name (default `eventide`).
    #[arg(long = "cosmos-database", env = "EVENTIDE_COSMOS_DATABASE")]
    pub database: Option<String>,
    /// Container name (default `series_days`); partition key `/seriesId`.
    #[arg(long = "cosmos-container", env = "EVENTIDE_COSMOS_CONTAINER")]
    pub container: Option<String>,
    /// Create database and container at start-up when missing (`true`/`false`, default false).
    #[arg(long = "cosmos-create", env = "EVENTIDE_COSMOS_CREATE")]
    pub create_if_missing: Option<bool>,
    /// Manual RU/s for a container created at start-up.
    #[arg(long = "cosmos-throughput", env = "EVENTIDE_COSMOS_THROUGHPUT")]
    pub provisioned_throughput: Option<u32>,
    /// Seconds a series-day's documents are kept after the later of the day's end and its
    /// summary (the container's default TTL; default two days). Pending days never expire.
    #[arg(long = "cosmos-ttl-seconds", env = "EVENTIDE_COSMOS_TTL_SECONDS")]
    pub ttl_seconds: Option<u64>,
    /// This instance's request-unit budget in RU/s (default 400).
    #[arg(long = "cosmos-ru-per-second", env = "EVENTIDE_COSMOS_RU_PER_SECOND")]
    pub ru_per_second: Option<f64>,
    /// Cosmos requests in flight at most (default 16).
    #[arg(long = "cosmos-concurrency", env = "EVENTIDE_COSMOS_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Shards of each day's log, which merges of pending days append to (default 4; 0: every
    /// merge rewrites the day's buckets).
    #[arg(long = "cosmos-log-shards", env = "EVENTIDE_COSMOS_LOG_SHARDS")]
    pub log_shards: Option<u32>,
}

impl CosmosArgs {
    /// The documents' time to live: the setting, or the default of [`CosmosSettings::new`].
    pub fn ttl(&self) -> Duration {
        self.ttl_seconds
            .map_or_else(default_ttl, Duration::from_secs)
    }

    /// The settings, or `None` when no endpoint is configured. Without a key, `entra` is asked
    /// for the application's Microsoft Entra ID credential.
    pub fn settings(
        &self,
        entra: impl FnOnce() -> Result<Arc<dyn TokenCredential>, String>,
    ) -> Result<Option<CosmosSettings>, String> {
        let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        let parsed = azure_core::http::Url::parse(endpoint)
            .map_err(|_| "EVENTIDE_COSMOS_ENDPOINT is not a URL".to_string())?;
        if !crate::adapters::connection_string::is_secure_or_loopback(&parsed) {
            return Err(
                "EVENTIDE_COSMOS_ENDPOINT must use https (http only for a loopback emulator)"
                    .into(),
            );
        }
        let auth = match &self.key {
            Some(key) => CosmosAuth::Key(key.clone()),
            None => CosmosAuth::Entra(entra()?),
        };
        let mut s = CosmosSettings::new(endpoint, auth);
        if let Some(v) = &self.database {
            s.database = v.clone();
        }
        if let Some(v) = &self.container {
            s.container = v.clone();
        }
        s.region = self.region.clone().filter(|r| !r.is_empty());
        s.create_if_missing = self.create_if_missing.unwrap_or(false);
        s.provisioned_throughput = self.provisioned_throughput;
        if let Some(ttl) = self.ttl_seconds {
            if ttl == 0 || ttl > i32::MAX as u64 {
                return Err(format!(
                    "EVENTIDE_COSMOS_TTL_SECONDS must be between 1 and {}",
                    i32::MAX
                ));
            }
            s.ttl = Duration::from_secs(ttl);
        }
        if let Some(ru) = self.ru_per_second {
            if !(ru.is_finite() && ru >= 1.0) {
                return Err("EVENTIDE_COSMOS_RU_PER_SECOND must be at least 1".into());
            }
            s.budget.ru_per_second = ru;
        }
        if let Some(shards) = self.log_shards {
            s.log_shards = shards;
        }
        if let Some(n) = self.concurrency {
            if n == 0 {
                return Err("EVENTIDE_COSMOS_CONCURRENCY must be at least 1".into());
            }
            s.budget.concurrency = n;
        }
        Ok(Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_args() {
        let no_entra = || -> Result<Arc<dyn TokenCredential>, String> {
            panic!("a key was configured; no credential is needed")
        };
        assert!(CosmosArgs::default().settings(no_entra).unwrap().is_none());
        let args = CosmosArgs {
            endpoint: Some(EMULATOR_ENDPOINT.into()),
            key: Some(Secret::new(EMULATOR_KEY)),
            ttl_seconds: Some(3600),
            ru_per_second: Some(1000.0),
            ..Default::default()
        };
        let s = args.settings(no_entra).unwrap().unwrap();
        assert!(matches!(s.auth, CosmosAuth::Key(_)));
        assert_eq!(s.ttl, Duration::from_secs(3600));
        assert_eq!(s.budget.ru_per_second, 1000.0);
        assert!(
            !format!("{s:?}").contains(EMULATOR_KEY),
            "the key is never printed"
        );

        let entra = CosmosArgs {
            endpoint: Some("https://acct.documents.azure.com:443/".into()),
            ..Default::default()
        };
        let refused = entra.settings(|| Err("no credential here".into()));
        assert_eq!(refused.unwrap_err(), "no credential here");
        let bad = CosmosArgs {
            ttl_seconds: Some(0),
            ..args
        };
        assert!(bad.settings(no_entra).is_err());
    }
}
