//! Where telemetry goes, chosen by the standard settings: `APPLICATIONINSIGHTS_CONNECTION_STRING`
//! (Azure Monitor), else `OTEL_EXPORTER_OTLP_ENDPOINT` (any OpenTelemetry collector), else
//! nowhere. Every exporter runs on the tokio runtime through one reqwest client (the reqwest
//! 0.13 + rustls already in the binary).

use std::time::Duration;

use azure_core::credentials::Secret;
use opentelemetry_application_insights::{
    Exporter as AppInsightsExporter, LiveMetricsSpanProcessor,
};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::app::config::TelemetryConfig;

/// The default metric export interval to Application Insights (see
/// [`Destination::metric_export_interval`]).
pub const APP_INSIGHTS_METRIC_INTERVAL: Duration = Duration::from_secs(3_600);

/// The default metric export interval over OTLP: the OpenTelemetry specification's.
pub const OTLP_METRIC_INTERVAL: Duration = Duration::from_secs(60);

/// The exporter the settings chose.
pub enum Destination {
    /// Azure Monitor / Application Insights, through its ingestion endpoint (gzip'd JSON
    /// envelopes) and, when enabled, its Live Metrics (QuickPulse) endpoint.
    AppInsights {
        connection: Secret,
        live_metrics: bool,
    },
    /// An OpenTelemetry collector, over OTLP/HTTP with protobuf bodies.
    Otlp { endpoint: String },
    /// Nothing leaves the process; the counters stay readable at `/api/status` and `/metrics`.
    Nowhere,
}

/// The three SDK providers of an exporting process.
pub struct Providers {
    pub tracer: SdkTracerProvider,
    pub meter: SdkMeterProvider,
    pub logger: SdkLoggerProvider,
}

impl Destination {
    pub fn from_config(config: &TelemetryConfig) -> Self {
        match (&config.applicationinsights, &config.otlp_endpoint) {
            (Some(connection), _) => Self::AppInsights {
                connection: connection.clone(),
                live_metrics: config.live_metrics,
            },
            (None, Some(endpoint)) if !endpoint.trim().is_empty() => Self::Otlp {
                endpoint: endpoint.trim().trim_end_matches('/').to_string(),
            },
            _ => Self::Nowhere,
        }
    }

    /// How often metrics are exported: `OTEL_METRIC_EXPORT_INTERVAL` when set, else an hour to
    /// Application Insights and a minute over OTLP.
    ///
    /// Application Insights bills every exported item, and an export holds one item per
    /// instrument that moved, so its daily bytes are exports a day × bytes per export, whatever
    /// the traffic: at one export a minute that is ≈ 60 KB per 1,000 messages at W1's rate, at
    /// one an hour ≈ 1 KB (docs/telemetry.md). Nothing is hidden by the longer interval: the
    /// figures are sums over it, errors are exported as they happen, and Live Metrics (not
    /// billed) shows the live view while someone watches.
    pub fn metric_export_interval(&self, config: &TelemetryConfig) -> Duration {
        let default = match self {
            Self::AppInsights { .. } => APP_INSIGHTS_METRIC_INTERVAL,
            Self::Otlp { .. } | Self::Nowhere => OTLP_METRIC_INTERVAL,
        };
        config
            .metric_export_interval_ms
            .map_or(default, Duration::from_millis)
    }

    /// What to call it in the start-up line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AppInsights { .. } => "Application Insights",
            Self::Otlp { .. } => "OTLP",
            Self::Nowhere => "nowhere (counters at /api/status and /metrics)",
        }
    }

    /// Builds the providers exporting here, or `None` for [`Destination::Nowhere`].
    pub fn providers(
        &self,
        resource: &Resource,
        sampler: Sampler,
        config: &TelemetryConfig,
    ) -> anyhow::Result<Option<Providers>> {
        let interval = self.metric_export_interval(config);
        let client = reqwest_013::Client::new();
        let tracer = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_resource(resource.clone());
        let meter = SdkMeterProvider::builder().with_resource(resource.clone());
        let logger = SdkLoggerProvider::builder().with_resource(resource.clone());
        let providers = match self {
            Self::Nowhere => return Ok(None),
            Self::AppInsights {
                connection,
                live_metrics,
            } => {
                // The connection string is parsed here and nowhere else; its error never
                // repeats it (it holds the instrumentation key).
                let exporter = AppInsightsExporter::new_from_connection_string(
                    connection.secret(),
                    client,
                )
                .map_err(|_| {
                    anyhow::anyhow!(
                        "APPLICATIONINSIGHTS_CONNECTION_STRING is not a valid connection string"
                    )
                })?
                // Requests and dependencies are counted as 1/ratio each, so the
                // portal's counts stay right under sampling.
                .with_sample_rate(config.traces_sampler_arg * 100.0);
                let mut tracer = tracer.with_span_processor(
                    BatchSpanProcessor::builder(exporter.clone(), Tokio).build(),
                );
                if *live_metrics {
                    tracer = tracer.with_span_processor(LiveMetricsSpanProcessor::new(
                        exporter.clone(),
                        Tokio,
                    ));
                }
                Providers {
                    tracer: tracer.build(),
                    meter: meter
                        .with_reader(
                            PeriodicReader::builder(exporter.clone(), Tokio)
                                .with_interval(interval)
                                .build(),
                        )
                        .build(),
                    logger: logger
                        .with_log_processor(BatchLogProcessor::builder(exporter, Tokio).build())
                        .build(),
                }
            }
            Self::Otlp { endpoint } => {
                let url = |signal: &str| format!("{endpoint}/v1/{signal}");
                let spans = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client.clone())
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url("traces"))
                    .build()?;
                let metrics = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(client.clone())
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url("metrics"))
                    // Deltas: an idle counter exports nothing (as with Application Insights).
                    .with_temporality(Temporality::Delta)
                    .build()?;
                let logs = opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_http_client(client)
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url("logs"))
                    .build()?;
                Providers {
                    tracer: tracer
                        .with_span_processor(BatchSpanProcessor::builder(spans, Tokio).build())
                        .build(),
                    meter: meter
                        .with_reader(
                            PeriodicReader::builder(metrics, Tokio)
                                .with_interval(interval)
                                .build(),
                        )
                        .build(),
                    logger: logger
                        .with_log_processor(BatchLogProcessor::builder(logs, Tokio).build())
                        .build(),
                }
            }
        };
        Ok(Some(providers))
    }
}

impl Providers {
    /// Flushes and stops every provider; a failure is reported on standard error (the
    /// subscriber that would log it is going away).
    pub async fn shutdown(self) {
        // The async-runtime processors flush on the runtime while this blocks a thread of it.
        let result = tokio::task::spawn_blocking(move || {
            [
                ("traces", self.tracer.shutdown()),
                ("metrics", self.meter.shutdown()),
                ("logs", self.logger.shutdown()),
            ]
        })
        .await;
        for (signal, outcome) in result.into_iter().flatten() {
            if let Err(e) = outcome {
                eprintln!("telemetry: flushing {signal} failed: {e}");
            }
        }
    }
}
