//! Every setting of Eventide, typed. Each one is a flag with an `EVENTIDE_*` environment variable
//! behind it: app settings configure a deployment, flags a shell. Values are parsed here, once,
//! into the types the application builder needs — a backend choice is an enum, a connection
//! string a [`Secret`] — so nothing downstream matches free strings.
//!
//! [`Config::defaults`] builds the same values without reading the environment, for tests and
//! tools that must not pick up a developer's own settings.

use std::path::PathBuf;

use chrono::Duration;
use clap::builder::TypedValueParser as _;
use clap::{Args, FromArgMatches};

use crate::adapters::cosmos::CosmosArgs;
use crate::domain::calendar::Calendar;
use crate::infra_settings::infra_settings;
use crate::pipeline::Settings;
use azure_core::credentials::Secret;
use azure_core::http::Url;

/// The longest duration any setting accepts (a century): longer ones are typing mistakes, and
/// date arithmetic on them would overflow.
const MAX_DURATION_DAYS: i64 = 36_525;

/// Parses `250ms`, `90s`, `10m`, `1h`, `2d` or a plain number of seconds, up to a century.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 10m, 1h or 2d"))?;
    let duration = match unit {
        "ms" => Duration::try_milliseconds(n),
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (use ms, s, m, h or d)"
            ));
        }
    };
    duration
        .filter(|d| *d <= Duration::days(MAX_DURATION_DAYS))
        .ok_or_else(|| format!("{text:?} is longer than a century"))
}

/// All settings of one process.
#[derive(Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub pipeline: PipelineConfig,
    #[command(flatten)]
    pub runtime: RuntimeConfig,
    #[command(flatten)]
    pub embedded: EmbeddedConfig,
    #[command(flatten)]
    pub backends: BackendConfig,
    #[command(flatten)]
    pub identity: IdentityConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

/// Parses the defaults of every setting, nothing else.
#[derive(clap::Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// Checks that every day closes before the chosen series-day store may forget it: the store
    /// keeps a day for its retention after the later of its end and its last write, so a
    /// lateness shorter than that retention means data is only ever merged into a day whose
    /// points are all still there.
    pub fn check_lateness(&self, store: StoreBackend) -> anyhow::Result<()> {
        let lateness = self.pipeline.max_lateness;
        let (retention, setting) = match store {
            StoreBackend::Embedded => (
                Duration::days(i64::from(self.embedded.retention_days)),
                "EVENTIDE_RETENTION_DAYS",
            ),
            StoreBackend::Cosmos => (
                Duration::from_std(self.backends.cosmos.ttl())?,
                "EVENTIDE_COSMOS_TTL_SECONDS",
            ),
        };
        if lateness >= retention {
            anyhow::bail!(
                "EVENTIDE_MAX_LATENESS ({}s) must be shorter than {setting} ({}s): a day must \
                 close before the store may forget its points",
                lateness.num_seconds(),
                retention.num_seconds()
            );
        }
        Ok(())
    }

    /// Every setting at its default, ignoring the environment: the starting point of tests and
    /// of runtimes built in code (`eventide demo`), which must not pick up ambient settings.
    pub fn defaults() -> Self {
        use clap::CommandFactory;
        let command = DefaultsOnly::command().mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["eventide"])
            .expect("every setting has a default or is optional");
        DefaultsOnly::from_arg_matches(&matches)
            .expect("defaults parse")
            .config
    }

    /// The defaults with the embedded file at `db` and the HTTP server on a free port.
    pub fn on_file(db: PathBuf) -> Self {
        let mut config = Self::defaults();
        config.embedded.db = db;
        config.runtime.port = 0;
        config
    }
}

/// Settings of the use cases.
#[derive(Args, Debug, Clone)]
pub struct PipelineConfig {
    /// IANA time zone whose calendar days are summarized.
    #[arg(long, env = "EVENTIDE_TIME_ZONE", default_value = "UTC")]
    pub time_zone: String,
    /// How long after a day ends its summary is due.
    #[arg(long, env = "EVENTIDE_GRACE", default_value = "10m", value_parser = parse_duration)]
    pub grace: Duration,
    /// How long late data waits for more before the day is summarized again.
    #[arg(long, env = "EVENTIDE_SETTLE", default_value = "5m", value_parser = parse_duration)]
    pub settle: Duration,
    /// How long past due a pending summary may stay before reconcile reschedules it.
    #[arg(long, env = "EVENTIDE_RECONCILE_AFTER", default_value = "1h", value_parser = parse_duration)]
    pub reconcile_after: Duration,
    /// How long after its end a day still takes data; later, ingest refuses it and process
    /// quarantines it ("day … closed"). Must be shorter than the store's retention.
    #[arg(long, env = "EVENTIDE_MAX_LATENESS", default_value = "1d", value_parser = parse_duration)]
    pub max_lateness: Duration,
    /// Summarize messages handled per receive.
    #[arg(long, env = "EVENTIDE_SUMMARIZE_BATCH", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub summarize_batch: u32,
    /// How long a batch waits out a dependency's transient failures (trying again with
    /// exponential, jittered backoff) before it goes back to its queue. Keep it below the
    /// function timeout and the host's lock renewal (`maxAutoLockRenewalDuration`).
    #[arg(long, env = "EVENTIDE_OUTAGE_PATIENCE", default_value = "2m", value_parser = parse_duration)]
    pub outage_patience: Duration,
}

impl PipelineConfig {
    /// The use cases' settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        Ok(Settings {
            calendar: Calendar::from_name(&self.time_zone)
                .map_err(|e| anyhow::anyhow!("EVENTIDE_TIME_ZONE: {e}"))?,
            grace: self.grace,
            settle: self.settle,
            reconcile_after: self.reconcile_after,
            max_lateness: self.max_lateness,
            summarize_batch: self.summarize_batch as usize,
            patience: self.outage_patience.to_std().unwrap_or_default(),
            ..Settings::default()
        })
    }
}

/// Settings of the drivers: the HTTP server, the in-process triggers.
#[derive(Args, Debug, Clone)]
pub struct RuntimeConfig {
    /// Port of the HTTP server on 127.0.0.1 (7071 is the port `func start` uses; `serve` takes
    /// FUNCTIONS_CUSTOMHANDLER_PORT instead).
    #[arg(long, env = "EVENTIDE_PORT", default_value_t = 7071)]
    pub port: u16,
    /// Folder holding the function folders; the timer schedule comes from summarize/function.json.
    #[arg(long, env = "EVENTIDE_FUNCTIONS_DIR", default_value = "functions")]
    pub functions_dir: PathBuf,
    /// Overrides the summarize schedule (NCRONTAB with seconds).
    #[arg(long, env = "EVENTIDE_SUMMARIZE_SCHEDULE")]
    pub summarize_schedule: Option<String>,
    /// Time one summarize tick may take before it leaves the rest to the next tick (keep it
    /// below the function timeout).
    #[arg(long, env = "EVENTIDE_SUMMARIZE_BUDGET", default_value = "4m", value_parser = parse_duration)]
    pub summarize_budget: Duration,
    // One by default: batches taken side by side share series-days (every request of a
    // multi-series source touches them all), so their merges conflict and one of each pair is
    // redone from a fresh read; W1 through `eventide local` was merged after 3.77 s with two
    // workers and 2.95 s with one (docs/configuration.md).
    /// Concurrent workers pumping an embedded observations queue.
    #[arg(long, env = "EVENTIDE_WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Messages per process batch of the in-process workers (the Functions host batches by
    /// host.json instead); an embedded queue also stops a batch at 16 MiB of bodies.
    #[arg(long, env = "EVENTIDE_PROCESS_BATCH", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub process_batch: u32,
    /// Largest accepted ingest body, in bytes (at most 1 GiB).
    #[arg(long, env = "EVENTIDE_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(1..=1 << 30).map(|n| n as usize))]
    pub max_body_bytes: usize,
    /// Address `eventide local` listens on. Any address other than loopback requires
    /// EVENTIDE_API_KEY; `serve` always listens on 127.0.0.1, where the host calls it.
    #[arg(long, env = "EVENTIDE_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Key every request to the local API must carry in its `X-API-Key` header (unset: no key,
    /// and the API listens on loopback only).
    #[arg(
        long,
        env = "EVENTIDE_API_KEY",
        hide_env_values = true,
        value_parser = crate::adapters::secret_setting
    )]
    pub api_key: Option<Secret>,
}

impl RuntimeConfig {
    /// Refuses to serve the local API beyond loopback without a key: it has no other
    /// protection.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        if !self.bind.is_loopback() && self.api_key.is_none() {
            anyhow::bail!(
                "EVENTIDE_BIND {} is not a loopback address: set EVENTIDE_API_KEY, which every \
                 request must then carry, or keep the default 127.0.0.1",
                self.bind
            );
        }
        Ok(())
    }

    /// The summarize budget as the timer and the tick take it.
    pub fn summarize_budget(&self) -> std::time::Duration {
        self.summarize_budget.to_std().unwrap_or_default()
    }
}

/// Settings of the embedded SQLite backends (used only by the ports that run on them).
#[derive(Args, Debug, Clone)]
pub struct EmbeddedConfig {
    /// The SQLite file of the embedded backends; opened only when some port uses it.
    #[arg(long, env = "EVENTIDE_DB", default_value = "eventide.db")]
    pub db: PathBuf,
    /// Days a series-day is kept after the later of its end and its last write, and as long as
    /// its summary is pending (the embedded TTL).
    #[arg(long, env = "EVENTIDE_RETENTION_DAYS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub retention_days: u32,
    /// Peek-lock duration of the embedded queues.
    #[arg(long, env = "EVENTIDE_LOCK_DURATION", default_value = "1m", value_parser = parse_duration)]
    pub lock_duration: Duration,
    /// Deliveries after which an embedded queue quarantines a message.
    #[arg(long, env = "EVENTIDE_MAX_DELIVERIES", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_deliveries: u32,
    /// Duplicate-detection window of the embedded summaries queue.
    #[arg(long, env = "EVENTIDE_DEDUP_WINDOW", default_value = "2d", value_parser = parse_duration)]
    pub dedup_window: Duration,
}

/// Where series-day documents live.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded SQLite file.
    Embedded,
    /// Azure Cosmos DB (the `EVENTIDE_COSMOS_*` settings).
    Cosmos,
}

/// Which broker one queue port uses.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueBackend {
    /// A queue table in the embedded SQLite file, pumped by in-process workers.
    Embedded,
    /// Azure Service Bus (`EVENTIDE_SERVICEBUS` or `EVENTIDE_SERVICEBUS_NAMESPACE`).
    Servicebus,
}

/// Where daily summaries go, parsed from `EVENTIDE_SUMMARY_SINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    /// The `daily_summary` table of the embedded file.
    Embedded,
    /// A separate SQLite file.
    SqliteFile(PathBuf),
    /// A PostgreSQL URL.
    Postgres(Secret),
    /// A SQL Server / Azure SQL connection string.
    SqlServer(Secret),
}

impl SinkTarget {
    /// `embedded`, `sqlite:PATH`, `postgres://…` / `postgresql://…`, or a SQL Server connection
    /// string (`Server=…;Database=…` or `sqlserver://…`). Errors never echo the value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "embedded" {
            return Ok(Self::Embedded);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            return Ok(Self::SqliteFile(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(Secret::new(text.to_string())));
        }
        if crate::adapters::sql::mssql::is_mssql_connection_string(text) {
            return Ok(Self::SqlServer(Secret::new(text.to_string())));
        }
        Err(
            "expected `embedded`, `sqlite:PATH`, `postgres://…`, or a SQL Server connection \
             string (`Server=…;Database=…` or `sqlserver://…`)"
                .into(),
        )
    }
}

/// Where bad items and messages are kept, parsed from `EVENTIDE_QUARANTINE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineTarget {
    /// The quarantine table of the embedded file.
    Embedded,
    /// Azure Blob Storage by connection string (account key, or Azurite's
    /// `UseDevelopmentStorage=true`).
    BlobConnectionString(Secret),
    /// Azure Blob Storage by service URL, with the application's Microsoft Entra ID credential.
    BlobServiceUrl(Url),
}

impl QuarantineTarget {
    /// `embedded`, a Blob service URL (`https://ACCOUNT.blob.core.windows.net`), or a storage
    /// connection string. Errors never echo the value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "embedded" {
            return Ok(Self::Embedded);
        }
        if text.starts_with("https://") || text.starts_with("http://") {
            let url = Url::parse(text).map_err(|e| format!("not a Blob service URL: {e}"))?;
            return Ok(Self::BlobServiceUrl(url));
        }
        if text.contains('=') {
            return Ok(Self::BlobConnectionString(Secret::new(text.to_string())));
        }
        Err("expected `embedded`, a Blob service URL, or a storage connection string".into())
    }
}

/// Which backend each port uses, and how to reach the remote ones.
#[derive(Args, Debug, Clone)]
pub struct BackendConfig {
    /// Where series-day documents live. Unset: `embedded` locally; required under the
    /// Functions host.
    #[arg(long, env = "EVENTIDE_SERIES_DAY_STORE", value_enum)]
    pub series_day_store: Option<StoreBackend>,
    /// Where ingest sends observations and `process` reads them. Unset: `servicebus` when
    /// Service Bus is configured, otherwise `embedded` (locally only).
    #[arg(long, env = "EVENTIDE_OBSERVATIONS_BACKEND", value_enum)]
    pub observations_backend: Option<QueueBackend>,
    /// Where summarize messages are scheduled and received. Unset: as for observations.
    #[arg(long, env = "EVENTIDE_SUMMARIES_BACKEND", value_enum)]
    pub summaries_backend: Option<QueueBackend>,
    /// Where daily summaries go: `embedded`, `sqlite:PATH`, `postgres://…`, or a SQL Server /
    /// Azure SQL connection string. Unset: `embedded` locally; required under the Functions host.
    #[arg(long, env = "EVENTIDE_SUMMARY_SINK", hide_env_values = true, value_parser = SinkTarget::parse)]
    pub summary_sink: Option<SinkTarget>,
    /// Where bad items and messages are kept: `embedded`, a Blob service URL (Microsoft Entra
    /// ID), or a storage connection string (`UseDevelopmentStorage=true` for Azurite). Unset:
    /// `embedded` locally; required under the Functions host.
    #[arg(long, env = "EVENTIDE_QUARANTINE", hide_env_values = true, value_parser = QuarantineTarget::parse)]
    pub quarantine: Option<QuarantineTarget>,
    /// The Blob container of the quarantine (created if missing).
    #[arg(
        long,
        env = "EVENTIDE_QUARANTINE_CONTAINER",
        default_value = infra_settings().storage.quarantine_container.as_str()
    )]
    pub quarantine_container: String,
    #[command(flatten)]
    pub servicebus: ServiceBusConfig,
    #[command(flatten)]
    pub cosmos: CosmosArgs,
}

/// How to reach Service Bus: a SAS connection string or a namespace with Microsoft Entra ID.
#[derive(Args, Debug, Clone)]
pub struct ServiceBusConfig {
    /// Service Bus by connection string (SAS): `Endpoint=sb://…;SharedAccessKeyName=…;
    /// SharedAccessKey=…`.
    #[arg(long = "servicebus", env = "EVENTIDE_SERVICEBUS", hide_env_values = true, value_parser = crate::adapters::secret_setting)]
    pub connection: Option<Secret>,
    /// Service Bus by Microsoft Entra ID (the application's credential): the namespace host,
    /// e.g. `myns.servicebus.windows.net`.
    #[arg(long = "servicebus-namespace", env = "EVENTIDE_SERVICEBUS_NAMESPACE")]
    pub namespace: Option<String>,
    /// The queue of observation chunks.
    #[arg(
        long,
        env = "EVENTIDE_OBSERVATIONS_QUEUE",
        default_value = infra_settings().service_bus.observations.name.as_str()
    )]
    pub observations_queue: String,
    /// The queue of summarize messages (duplicate detection on, sessions off).
    #[arg(
        long,
        env = "EVENTIDE_SUMMARIES_QUEUE",
        default_value = infra_settings().service_bus.summaries.name.as_str()
    )]
    pub summaries_queue: String,
}

impl ServiceBusConfig {
    /// Whether either form of access is set.
    pub fn is_configured(&self) -> bool {
        self.connection.is_some() || self.namespace.as_deref().is_some_and(|n| !n.is_empty())
    }
}

/// Which Microsoft Entra ID credential the application uses.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// The managed identity of the Function App or VM (user-assigned with
    /// `EVENTIDE_AZURE_CLIENT_ID`, otherwise system-assigned).
    ManagedIdentity,
    /// The sign-in of the Azure CLI or Azure Developer CLI, for a workstation.
    Developer,
}

/// The one Microsoft Entra ID identity every Azure adapter and the SQL Server sink use.
#[derive(Args, Debug, Clone)]
pub struct IdentityConfig {
    /// The Microsoft Entra ID credential of every Azure connection that uses no key.
    #[arg(
        long = "azure-credential",
        env = "EVENTIDE_AZURE_CREDENTIAL",
        value_enum,
        default_value = "managed-identity"
    )]
    pub kind: CredentialKind,
    /// Client ID of a user-assigned managed identity (unset: the system-assigned one).
    #[arg(long = "azure-client-id", env = "EVENTIDE_AZURE_CLIENT_ID")]
    pub client_id: Option<String>,
}

/// Where telemetry goes and how much of it. The exporter settings are OpenTelemetry's and Azure
/// Monitor's standard variables, so a collector or an Application Insights resource is attached
/// the way any other service attaches it; see docs/telemetry.md.
#[derive(Args, Debug, Clone)]
pub struct TelemetryConfig {
    /// The console log filter, in `tracing` directive syntax (e.g. `eventide=debug`); logs go to
    /// standard error.
    #[arg(
        long = "log",
        env = "EVENTIDE_LOG",
        default_value = "warn,eventide=info"
    )]
    pub log: String,
    /// The filter of exported log records (warnings and errors by default); successful work is
    /// counted, never exported line by line.
    #[arg(
        long = "export-log",
        env = "EVENTIDE_EXPORT_LOG",
        default_value = "warn"
    )]
    pub export_log: String,
    /// Exports traces, metrics and logs to this Application Insights resource (unset: not there).
    #[arg(long = "applicationinsights-connection-string", env = "APPLICATIONINSIGHTS_CONNECTION_STRING",
          hide_env_values = true, value_parser = crate::adapters::secret_setting)]
    pub applicationinsights: Option<Secret>,
    /// Posts Live Metrics to Application Insights while a portal session watches (only with a
    /// connection string).
    #[arg(long = "live-metrics", env = "EVENTIDE_LIVE_METRICS", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub live_metrics: bool,
    /// Exports traces, metrics and logs over OTLP/HTTP (protobuf) to this collector base URL,
    /// e.g. `http://localhost:4318` (unset: not there).
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The service name on every exported item (the cloud role in Application Insights).
    #[arg(
        long = "service-name",
        env = "OTEL_SERVICE_NAME",
        default_value = "eventide"
    )]
    pub service_name: String,
    /// Milliseconds between metric exports (default 3600000 to Application Insights, whose
    /// Live Metrics show the live view for free; 60000 over OTLP)
    #[arg(long = "metric-export-interval", env = "OTEL_METRIC_EXPORT_INTERVAL",
          value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub metric_export_interval_ms: Option<u64>,
    /// Head sampler of traces: `parentbased_traceidratio` (default), `traceidratio`,
    /// `parentbased_always_on`, `always_on`, `parentbased_always_off` or `always_off`.
    #[arg(long = "traces-sampler", env = "OTEL_TRACES_SAMPLER", default_value = "parentbased_traceidratio",
          value_parser = ["parentbased_traceidratio", "traceidratio", "parentbased_always_on",
                          "always_on", "parentbased_always_off", "always_off"])]
    pub traces_sampler: String,
    /// The ratio of the `*traceidratio` samplers: the share of new traces kept (a parent's
    /// decision is followed).
    #[arg(long = "traces-sampler-arg", env = "OTEL_TRACES_SAMPLER_ARG", default_value_t = 0.01,
          value_parser = parse_ratio)]
    pub traces_sampler_arg: f64,
}

/// Parses a ratio between 0 and 1.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a ratio between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::seconds(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::minutes(10));
        assert_eq!(
            parse_duration("250ms").unwrap(),
            Duration::milliseconds(250)
        );
        assert_eq!(parse_duration("2d").unwrap(), Duration::days(2));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn huge_durations_are_refused_instead_of_overflowing() {
        for text in [
            "99999999999999d",
            "9223372036854775807",
            "40000d",
            "1000000h",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("century"), "{text}: {err}");
        }
        assert_eq!(parse_duration("36525d").unwrap(), Duration::days(36_525));
    }

    #[test]
    fn defaults_ignore_the_environment() {
        // The settings are read through clap's `env`; `defaults()` removes every lookup, so
        // whatever the shell running the tests holds, the defaults are the documented ones.
        let config = Config::defaults();
        assert_eq!(config.embedded.db, PathBuf::from("eventide.db"));
        assert_eq!(config.backends.series_day_store, None);
        assert_eq!(config.backends.summary_sink, None);
        assert!(!config.backends.servicebus.is_configured());
        assert_eq!(config.runtime.process_batch, 65_536);
        assert_eq!(config.pipeline.summarize_batch, 256);
        assert_eq!(config.identity.kind, CredentialKind::ManagedIdentity);
    }

    #[test]
    fn sink_targets_parse_into_their_kind() {
        assert_eq!(SinkTarget::parse("embedded").unwrap(), SinkTarget::Embedded);
        assert_eq!(
            SinkTarget::parse("sqlite:/tmp/x.db").unwrap(),
            SinkTarget::SqliteFile("/tmp/x.db".into())
        );
        assert!(matches!(
            SinkTarget::parse("postgres://u:pw@h/db").unwrap(),
            SinkTarget::Postgres(_)
        ));
        assert!(matches!(
            SinkTarget::parse("Server=tcp:h,1433;Database=d;Authentication=ActiveDirectoryDefault")
                .unwrap(),
            SinkTarget::SqlServer(_)
        ));
        let err = SinkTarget::parse("mysql://user:hunter2@h/db").unwrap_err();
        assert!(
            !err.contains("hunter2"),
            "errors never echo the value: {err}"
        );
    }

    #[test]
    fn quarantine_targets_parse_into_their_kind() {
        assert_eq!(
            QuarantineTarget::parse("embedded").unwrap(),
            QuarantineTarget::Embedded
        );
        assert!(matches!(
            QuarantineTarget::parse("https://acct.blob.core.windows.net").unwrap(),
            QuarantineTarget::BlobServiceUrl(_)
        ));
        assert!(matches!(
            QuarantineTarget::parse("UseDevelopmentStorage=true").unwrap(),
            QuarantineTarget::BlobConnectionString(_)
        ));
        assert!(QuarantineTarget::parse("somewhere").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = DefaultsOnly::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from([
                "eventide",
                "--summary-sink",
                "postgres://u:hunter2@h/db",
                "--servicebus",
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=hunter3",
                "--quarantine",
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=hunter4",
                "--applicationinsights-connection-string",
                "InstrumentationKey=hunter5;IngestionEndpoint=https://in.example/",
            ])
            .map(|m| DefaultsOnly::from_arg_matches(&m).unwrap().config)
            .unwrap();
        let shown = format!("{config:?}");
        for secret in ["hunter2", "hunter3", "hunter4", "hunter5"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    /// The settings table of docs/configuration.md, generated from the flags themselves.
    fn settings_table() -> String {
        let command = DefaultsOnly::command();
        let mut table = String::from(
            "| Environment variable | Flag | Default | What it sets |\n|---|---|---|---|\n",
        );
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" || long == "version" {
                continue;
            }
            let env = arg
                .get_env()
                .map(|e| format!("`{}`", e.to_string_lossy()))
                .unwrap_or_default();
            let default = arg
                .get_default_values()
                .iter()
                .map(|v| format!("`{}`", v.to_string_lossy()))
                .collect::<Vec<_>>()
                .join(", ");
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string().replace('\n', " ").replace('|', "\\|"))
                .unwrap_or_default();
            table.push_str(&format!("| {env} | `--{long}` | {default} | {help} |\n"));
        }
        table
    }

    #[test]
    fn the_documented_settings_table_is_the_one_the_code_defines() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let docs = std::fs::read_to_string(path).expect("docs/configuration.md exists");
        let (start, end) = (
            "<!-- settings-table:start -->\n",
            "<!-- settings-table:end -->",
        );
        let from = docs.find(start).expect("start marker") + start.len();
        let to = docs.find(end).expect("end marker");
        let expected = settings_table();
        assert!(
            docs[from..to] == expected,
            "docs/configuration.md's settings table is out of date; replace the block between \
             the markers with:\n{expected}"
        );
    }
}
