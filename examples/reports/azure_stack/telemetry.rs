//! The stack run's telemetry. The report is one process, so it installs the Application
//! Insights exporter once, the way the binary does when `APPLICATIONINSIGHTS_CONNECTION_STRING`
//! is set: `Telemetry::install` from the command line's default telemetry settings (the
//! environment's `OTEL_*` variables still apply), `observe` on the application under load, and
//! `shutdown` at the end, as SIGTERM does, which mirrors the counters once more and exports the
//! interval's metrics. The connection string points at `FakeAppInsights`, the loopback
//! **stand-in** of the ingestion endpoint, which counts what arrives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use eventide::app::App;
use eventide::app::config::TelemetryConfig;
use eventide::telemetry::{Destination, Telemetry};
use eventide_testkit::fake_app_insights::{FakeAppInsights, INSTRUMENTATION_KEY, TypeTotals};

/// The telemetry settings as the command line reads them.
#[derive(Parser)]
struct TelemetryOnly {
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

/// The exporter, installed and pointed at the stand-in.
pub struct Exporting {
    fake: FakeAppInsights,
    telemetry: Telemetry,
    settings: TelemetryConfig,
}

/// What the stand-in received by the flush.
pub struct Exported {
    /// Ingestion posts, and the billed bytes: the JSON after decompression.
    pub posts: usize,
    pub json_bytes: usize,
    /// The same bytes gzip'd, as on the wire.
    pub wire_bytes: usize,
    pub by_type: BTreeMap<String, TypeTotals>,
    /// The items that are not metrics, by type and name (a span's name, a log record's text):
    /// where the bytes that follow the traffic come from.
    pub by_name: BTreeMap<String, usize>,
    /// Live Metrics posts and bytes (not billed; the stand-in answers as a watching portal).
    pub live_posts: usize,
    pub live_bytes: usize,
    /// The metric export interval the settings chose.
    pub interval: Duration,
}

impl Exporting {
    /// Must run inside the tokio runtime, once per process (the subscriber is global); the
    /// process must trust [`FakeAppInsights::CA_FILE`] (`SSL_CERT_FILE`).
    pub async fn install() -> Self {
        let fake = FakeAppInsights::start().await;
        let connection = fake.connection_string(INSTRUMENTATION_KEY);
        let settings = TelemetryOnly::try_parse_from([
            "eventide",
            "--applicationinsights-connection-string",
            &connection,
        ])
        .expect("the telemetry settings parse")
        .telemetry;
        let telemetry = Telemetry::install(&settings).expect("the exporter installs");
        Self {
            fake,
            telemetry,
            settings,
        }
    }

    /// Exports `app`'s counters and backlog from now on, as `eventide serve` does.
    pub fn observe(&mut self, app: &App) {
        self.telemetry.observe(
            app.pipeline.metrics.clone(),
            Arc::new(app.clone()),
            &self.settings,
        );
    }

    /// Flushes as SIGTERM would and reads what the stand-in received.
    pub async fn flush(self) -> Exported {
        let interval =
            Destination::from_config(&self.settings).metric_export_interval(&self.settings);
        self.telemetry.shutdown().await;
        let (wire_bytes, json_bytes) = self.fake.track_bytes();
        let live = self.fake.live_requests();
        Exported {
            posts: self.fake.track_requests().len(),
            json_bytes,
            wire_bytes,
            by_type: self.fake.by_type(),
            by_name: self
                .fake
                .envelopes()
                .iter()
                .filter(|e| e["data"]["baseType"] != "MetricData")
                .fold(BTreeMap::new(), |mut names, e| {
                    let data = &e["data"];
                    let name = data["baseData"]["name"]
                        .as_str()
                        .or(data["baseData"]["message"].as_str())
                        .unwrap_or("?");
                    let key = format!("{} {name}", data["baseType"].as_str().unwrap_or("?"));
                    *names.entry(key).or_default() += 1;
                    names
                }),
            live_posts: live.len(),
            live_bytes: live.iter().map(|r| r.body.len()).sum(),
            interval,
        }
    }
}

impl Exported {
    fn metric_bytes(&self) -> usize {
        self.by_type.get("MetricData").map_or(0, |t| t.json_bytes)
    }

    /// Prints the bytes of a run of `observations` that lasted `run`, and what they come to at
    /// `per_hour` observations an hour (W1's real-time rate): the metrics are one export's
    /// worth per interval whatever the traffic, everything else follows the invocations.
    pub fn print(&self, observations: f64, run: Duration, per_hour: f64) {
        let items: usize = self.by_type.values().map(|t| t.items).sum();
        println!(
            "  Telemetry (the Application Insights exporter as the binary installs it, default settings, to FakeAppInsights; flushed at the end as on SIGTERM): {} posts, {items} items, {} B of JSON ({} B gzip'd on the wire) = {:.4} B per observation, {:.0} B per million observations in this run",
            self.posts,
            self.json_bytes,
            self.wire_bytes,
            self.json_bytes as f64 / observations,
            self.json_bytes as f64 / observations * 1e6,
        );
        let by_type = self
            .by_type
            .iter()
            .map(|(kind, t)| format!("{kind} {} items {} B", t.items, t.json_bytes))
            .collect::<Vec<_>>()
            .join("; ");
        println!("    by type: {by_type}");
        let by_name = self
            .by_name
            .iter()
            .map(|(name, items)| format!("{name} {items}"))
            .collect::<Vec<_>>()
            .join("; ");
        println!("    not metrics, by name: {by_name}");
        // The periodic exports within the run, and the flush's.
        let exports = 1.0 + (run.as_secs_f64() / self.interval.as_secs_f64()).floor();
        let per_export = self.metric_bytes() as f64 / exports;
        let per_observation = (self.json_bytes - self.metric_bytes()) as f64 / observations;
        let hourly =
            per_export * 3_600.0 / self.interval.as_secs_f64() + per_observation * per_hour;
        println!(
            "    at W1's rate ({per_hour:.0} observations an hour, a metric export every {} s of {per_export:.0} B, {per_observation:.4} B of spans and logs per observation): {hourly:.0} B per hour = {:.0} B per million observations",
            self.interval.as_secs(),
            hourly / per_hour * 1e6,
        );
        println!(
            "    Live Metrics (not billed; the stand-in answers as if a portal session watched): {} posts, {} B",
            self.live_posts, self.live_bytes
        );
    }
}
