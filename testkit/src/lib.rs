//! What Eventide's integration tests (`tests/suite`) and example reports (`examples/reports`)
//! share, as a crate of its own so both reach it through a real API instead of including test
//! files by path, and so the Cosmos SDK's emulator features stay out of the library.
//!
//! - [`settings`]: the runtime's default settings, built without reading the environment, and
//!   [`every_port_embedded`] for the Functions driver's single-instance trials;
//! - [`command`]: a child process that inherits none of the caller's `EVENTIDE_*` variables;
//! - [`child`]: the `eventide` binary as a child process, started the way the Functions host
//!   starts it;
//! - [`fake_app_insights`]: `FakeAppInsights`, a loopback STAND-IN for the Application Insights
//!   ingestion and Live Metrics endpoints, recording what the exporter sends;
//! - [`fake_otlp`]: `FakeOtlp`, a loopback STAND-IN for an OpenTelemetry collector's OTLP/HTTP
//!   receiver, decoding the protobuf the exporter sends;
//! - [`fake_service_bus`]: `FakeServiceBus`, a loopback FAKE of the Service Bus REST contract;
//! - [`azure_mode`]: the pipeline with both queues on that fake, through the real REST client;
//! - [`functions_host`]: `FunctionsHost`, a host-like STAND-IN driver for the Functions host
//!   (HTTP front, Service Bus trigger loops sized by `host.json`, timer);
//! - [`azure_stack`]: the emulated Azure stack on one machine — the handler behind that host,
//!   the Cosmos DB emulator, the Service Bus fake, Azurite and PostgreSQL;
//! - [`cosmos`]: the Cosmos DB adapter on the SDK's in-memory emulator.
//!
//! Everything that builds runtime settings goes through [`settings`], and every child process
//! through [`command`], so a developer's shell (say, one with `EVENTIDE_SERVICEBUS` set) never
//! changes what a test or a report runs against.

pub mod azure_mode;
pub mod azure_stack;
pub mod child;
pub mod cosmos;
pub mod fake_app_insights;
pub mod fake_otlp;
pub mod fake_service_bus;
pub mod functions_host;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;

use eventide::app::Config;
use eventide::app::config::{QuarantineTarget, QueueBackend, SinkTarget, StoreBackend};

/// The runtime's default settings on the SQLite file `db`, on a free port.
///
/// The defaults are the CLI's own (one source of truth), built with every setting's
/// environment lookup switched off ([`Config::on_file`]), so whatever `EVENTIDE_*` variables the
/// calling process has never reach a test or a report.
///
/// One deviation from the defaults: the tests' days (2026-11-18 and -19, on clocks set to
/// 2026-11-20 12:00) are a day and more behind their clock, so days stay open for three days
/// (`EVENTIDE_MAX_LATENESS`), within a retention that still outlasts that.
pub fn settings(db: impl Into<PathBuf>) -> Config {
    let mut config = Config::on_file(db.into());
    config.pipeline.max_lateness = chrono::Duration::days(TEST_LATENESS_DAYS);
    config.embedded.retention_days = TEST_RETENTION_DAYS;
    config
}

/// The use cases' settings for pipelines the tests wire by hand, with the same lateness as
/// [`settings`].
pub fn pipeline_settings() -> eventide::pipeline::Settings {
    eventide::pipeline::Settings {
        max_lateness: chrono::Duration::days(TEST_LATENESS_DAYS),
        ..eventide::pipeline::Settings::default()
    }
}

/// How long the tests' days stay open (see [`settings`]).
pub const TEST_LATENESS_DAYS: i64 = 3;
/// How long the tests' series-days are kept (see [`settings`]).
pub const TEST_RETENTION_DAYS: u32 = 4;

/// Chooses every port explicitly on the embedded file, as a single-instance trial under the
/// Functions driver must (it refuses implicit backends); a test that points one port elsewhere
/// changes that one afterwards.
pub fn every_port_embedded(config: &mut Config) {
    let backends = &mut config.backends;
    backends.series_day_store = Some(StoreBackend::Embedded);
    backends.observations_backend = Some(QueueBackend::Embedded);
    backends.summaries_backend = Some(QueueBackend::Embedded);
    backends.summary_sink = Some(SinkTarget::Embedded);
    backends.quarantine = Some(QuarantineTarget::Embedded);
}

/// Variables that would configure a child process behind the caller's back: Eventide's own
/// settings, the Functions host's (whose port makes the binary act as a custom handler), and
/// the telemetry exporters' (which would send a test's telemetry somewhere).
const AMBIENT_PREFIXES: [&str; 4] = ["EVENTIDE_", "FUNCTIONS_", "OTEL_", "APPLICATIONINSIGHTS_"];

/// `binary` with no command yet and no exporter chosen, with the settings every exporting
/// test and the `telemetry_bytes` report share (the stand-ins add their endpoint): the default
/// telemetry settings, on the embedded file `{name}.db` in `dir`, summarizing every second with
/// no grace and keeping every day open; its standard error goes to `{name}.log` in `dir`.
pub fn exporting_command(
    binary: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
) -> std::process::Command {
    let mut command = crate::command(binary);
    command
        .env_clear()
        .env("EVENTIDE_DB", dir.join(format!("{name}.db")))
        .env("EVENTIDE_SUMMARIZE_SCHEDULE", "* * * * * *")
        .env("EVENTIDE_GRACE", "0s")
        .env("EVENTIDE_SETTLE", "0s")
        .env("EVENTIDE_MAX_LATENESS", "3000d")
        .env("EVENTIDE_RETENTION_DAYS", "3650")
        .env("EVENTIDE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap());
    command
}

/// A command for `program` that inherits the caller's environment except every `EVENTIDE_*`,
/// `FUNCTIONS_*`, `OTEL_*` and `APPLICATIONINSIGHTS_*` variable, so only what the caller sets on it configures the child.
pub fn command(program: impl AsRef<OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if AMBIENT_PREFIXES.iter().any(|p| text.starts_with(p)) {
            command.env_remove(&name);
        }
    }
    command
}

/// Serves `app` on a free port of 127.0.0.1, on the calling tokio runtime, until the returned
/// sender is dropped: the loopback stand-ins' and fakes' one way to listen.
pub async fn serve_on_loopback(
    app: axum::Router,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    (addr, stop)
}
