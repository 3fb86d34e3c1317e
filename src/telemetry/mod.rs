//! Telemetry: `tracing` is the one instrumentation API; OpenTelemetry carries what it records
//! out of the process. Spans become traces (head-sampled, parent-based), warnings and errors
//! become exported log records, and the pipeline's in-process counters
//! ([`crate::pipeline::metrics::Metrics`]) are mirrored into OpenTelemetry counters and exported
//! on an interval — the same figures `/api/status` and `/metrics` show.
//!
//! Where the telemetry goes is chosen by the standard settings ([`Destination`]): Application
//! Insights (with Live Metrics), an OTLP collector, or nowhere. Successful work is never logged
//! line by line: it is counted, so the exported volume is flat with the message volume (see
//! docs/telemetry.md for the figures).

mod context;
mod destination;
mod mirror;
pub mod prometheus;

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::EnvResourceDetector;
use opentelemetry_sdk::trace::Sampler;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::app::config::TelemetryConfig;
use crate::pipeline::metrics::Metrics;
pub use context::{TraceContext, adopt_or_link, link};
use destination::Providers;
pub use destination::{APP_INSIGHTS_METRIC_INTERVAL, Destination, OTLP_METRIC_INTERVAL};
pub use mirror::Backlog;
use mirror::Mirror;

/// The instrumentation scope of every span, log record and metric Eventide exports.
const SCOPE: &str = "eventide";

/// Targets whose events are never exported: the OpenTelemetry crates and the HTTP stack they
/// send with.
const EXPORTER_TARGETS: [&str; 5] = ["opentelemetry", "reqwest", "hyper", "h2", "rustls"];

/// The installed telemetry of one process; [`Telemetry::shutdown`] flushes what is pending.
pub struct Telemetry {
    providers: Option<Providers>,
    mirror: Option<Mirror>,
}

impl Telemetry {
    /// Installs the process-wide `tracing` subscriber: console logs on standard error (filtered
    /// by `EVENTIDE_LOG`), and — when a destination is configured — spans and exported log
    /// records through OpenTelemetry. Call once, inside the tokio runtime (the exporters run
    /// on it).
    pub fn install(config: &TelemetryConfig) -> anyhow::Result<Self> {
        let console = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter("EVENTIDE_LOG", &config.log)?);
        let destination = Destination::from_config(config);
        let providers = destination.providers(&resource(config), sampler(config), config)?;
        let Some(providers) = providers else {
            tracing_subscriber::registry().with(console).try_init()?;
            return Ok(Self {
                providers: None,
                mirror: None,
            });
        };
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        // Spans of Eventide's own code only: the dependencies' spans (HTTP clients, SDKs)
        // would multiply the items per message.
        let traces = tracing_opentelemetry::layer()
            .with_tracer(providers.tracer.tracer(SCOPE))
            .with_filter(EnvFilter::new("warn,eventide=info"));
        // The exporters' own diagnostics (and their HTTP stack's) reach the console only:
        // exported, a failing export would feed itself.
        let not_the_exporters = tracing_subscriber::filter::filter_fn(|event| {
            !EXPORTER_TARGETS
                .iter()
                .any(|target| event.target().starts_with(target))
        });
        let logs = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
            &providers.logger,
        )
        .with_filter(filter("EVENTIDE_EXPORT_LOG", &config.export_log)?.and(not_the_exporters));
        tracing_subscriber::registry()
            .with(console)
            .with(traces)
            .with(logs)
            .try_init()?;
        Ok(Self {
            providers: Some(providers),
            mirror: None,
        })
    }

    /// Where telemetry is exported, for the start-up line (never the connection string).
    pub fn describe(config: &TelemetryConfig) -> &'static str {
        Destination::from_config(config).name()
    }

    /// Starts exporting `metrics` and the queues' `backlog` (nothing happens when no
    /// destination is configured).
    pub fn observe(
        &mut self,
        metrics: Arc<Metrics>,
        backlog: Arc<dyn Backlog>,
        config: &TelemetryConfig,
    ) {
        if let Some(providers) = &self.providers {
            let interval = Destination::from_config(config).metric_export_interval(config);
            self.mirror = Some(Mirror::start(&providers.meter, metrics, backlog, interval));
        }
    }

    /// Mirrors the counters one last time and flushes every pending span, metric and log
    /// record; errors are reported on standard error, never fatal.
    pub async fn shutdown(self) {
        if let Some(mirror) = self.mirror {
            mirror.stop().await;
        }
        if let Some(providers) = self.providers {
            providers.shutdown().await;
        }
    }
}

/// A `tracing` filter from a setting's directives, named in the error when they do not parse.
fn filter(setting: &str, directives: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(directives).map_err(|e| anyhow::anyhow!("{setting}: {e}"))
}

/// The resource every item carries: the service name (Application Insights' cloud role), the
/// version and whatever `OTEL_RESOURCE_ATTRIBUTES` adds. Not the SDK's `telemetry.sdk.*`
/// attributes: Application Insights copies the resource into every metric item, where those
/// three constants would be a third of its bytes (the exporter names itself in a tag anyway).
fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(EnvResourceDetector::new()))
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION").to_string(),
        ))
        .build()
}

/// The head sampler chosen by `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`. The default keeps
/// 1% of new traces and follows the caller's decision when a parent is given.
fn sampler(config: &TelemetryConfig) -> Sampler {
    let ratio = config.traces_sampler_arg;
    let parent_based = |root| Sampler::ParentBased(Box::new(root));
    match config.traces_sampler.as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        _ => parent_based(Sampler::TraceIdRatioBased(ratio)),
    }
}
