//! `eventide cost`: measured per-observation figures turned into dollars per million
//! observations and per month, component by component, for Eventide and for the seed's first
//! design priced the same way. Prices are in [`prices`] (one table, mirrored in docs/cost.md),
//! formulas in [`model`]. See docs/cost.md.

pub mod model;
pub mod prices;

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::loadgen::report::Report;
use model::{Bill, Scale, Usage};

/// The seed design's Cosmos DB RU per observation: one read and one replace of the growing day
/// document per observation, measured by `examples/reports cosmos_ru` (docs/backends.md).
const SEED_RU_PER_OBSERVATION: f64 = 445.0;
/// The seed design's Service Bus operations per observation: one message per observation sent
/// and received, and a summarize message scheduled per document write and received
/// (`examples/reports servicebus_ops`, docs/backends.md).
const SEED_SERVICEBUS_OPS_PER_OBSERVATION: f64 = 4.0;
/// Telemetry rows per execution in the seed design: the host's request row and its
/// "Executing"/"Executed" traces at Information (anchors §1.4).
const SEED_ROWS_PER_EXECUTION: f64 = 3.0;
/// Eventide's: host.json keeps `Host.Results` (the request row) and raises `Function` to Warning.
const EVENTIDE_ROWS_PER_EXECUTION: f64 = 1.0;

#[derive(clap::Args, Debug, Clone)]
pub struct CostArgs {
    /// Cosmos DB RU per observation, as measured: W1 through the emulated Azure stack, its
    /// processing (0.096) and its summaries (0.302) together, with the day log (docs/backends.md).
    #[arg(long, default_value_t = 0.398)]
    pub ru_per_observation: f64,
    /// Service Bus billed operations per observation (docs/backends.md: 0.0042 on W1, whose
    /// requests ingest packs into 62 KiB chunks of many series).
    #[arg(long, default_value_t = 0.0042)]
    pub servicebus_ops_per_observation: f64,
    /// Observations per ingest request (10: a request per message; W1 as loadgen sends it now
    /// carries 1,000 series × 10 points).
    #[arg(long, default_value_t = 10.0)]
    pub observations_per_request: f64,
    /// Observations per queue message (W1: 1,440,000 in 1,101 messages).
    #[arg(long, default_value_t = 1_308.0)]
    pub observations_per_message: f64,
    /// Queue messages per `process` execution (host.json `maxMessageBatchSize`: 100).
    #[arg(long, default_value_t = 100.0)]
    pub messages_per_batch: f64,
    /// Milliseconds one execution runs (an assumption until measured on Azure).
    #[arg(long, default_value_t = 20.0)]
    pub ms_per_execution: f64,
    /// Memory of a Flex Consumption instance, GB (2,048 MB by default).
    #[arg(long, default_value_t = 2.0)]
    pub instance_memory_gb: f64,
    /// Billed bytes of one Application Insights row (anchors §1.4: ~0.5–1 KB).
    #[arg(long, default_value_t = 500.0)]
    pub bytes_per_telemetry_row: f64,
    /// Volume to price a month at (default: W1 every day of a 30-day month).
    #[arg(long, default_value_t = 43_200_000.0)]
    pub observations_per_month: f64,
    /// Provisioned Cosmos DB throughput is sized for this multiple of the average rate.
    #[arg(long, default_value_t = 10.0)]
    pub peak_factor: f64,
    /// Premium Service Bus messaging units.
    #[arg(long, default_value_t = 1.0)]
    pub premium_messaging_units: f64,
    /// A `eventide loadgen --json` report: its Service Bus operations and observations per
    /// request (from what the target counted) replace the options above.
    #[arg(long)]
    pub from_report: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Both designs, priced.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub scale: Scale,
    pub eventide: Bill,
    pub seed: Bill,
    /// How many times cheaper per million observations Eventide is.
    pub ratio: f64,
    /// Prices used, as in docs/cost.md.
    pub prices: Vec<&'static str>,
}

impl CostArgs {
    /// The options, with what a loadgen report measured in place of the defaults.
    fn measured(mut self) -> anyhow::Result<Self> {
        let Some(path) = &self.from_report else {
            return Ok(self);
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a loadgen --json report", path.display()))?;
        anyhow::ensure!(report.accepted > 0, "the report accepted no observation");
        self.observations_per_request = report.accepted as f64 / report.requests.max(1) as f64;
        // Reports written before messages were counted had one message per request.
        let messages = match report.messages {
            0 => report.requests,
            n => n,
        };
        self.observations_per_message = report.accepted as f64 / messages.max(1) as f64;
        if let Some(settled) = &report.settled {
            let count = |name: &str| settled.counters.get(name).copied().unwrap_or(0) as f64;
            // Sends (observation chunks, summarize schedules) and receives (observation
            // messages, summarize deliveries), as docs/backends.md counts them.
            let operations = count("chunks_sent")
                + count("messages_processed")
                + count("summaries_scheduled")
                + count("summaries_written")
                + count("summaries_unchanged")
                + count("summarize_stale");
            self.servicebus_ops_per_observation = operations / report.accepted as f64;
        }
        Ok(self)
    }

    fn scale(&self) -> Scale {
        Scale {
            observations_per_month: self.observations_per_month,
            peak_factor: self.peak_factor,
            premium_messaging_units: self.premium_messaging_units,
        }
    }

    /// Eventide: an ingest execution per request, a process execution per batch of messages,
    /// the measured RU and Service Bus operations.
    fn eventide(&self) -> Usage {
        let per_request = 1.0 / self.observations_per_request;
        let per_message = 1.0 / self.observations_per_message;
        Usage {
            request_units: self.ru_per_observation,
            servicebus_operations: self.servicebus_ops_per_observation,
            executions: per_request + per_message / self.messages_per_batch,
            seconds_per_execution: self.ms_per_execution / 1000.0,
            instance_memory_gb: self.instance_memory_gb,
            telemetry_rows_per_execution: EVENTIDE_ROWS_PER_EXECUTION,
            bytes_per_row: self.bytes_per_telemetry_row,
        }
    }

    /// The seed's first design: the same ingest requests, then one Service Bus message per
    /// observation (a process execution each) and one summarize delivery per document write
    /// (another execution each).
    fn seed(&self) -> Usage {
        Usage {
            request_units: SEED_RU_PER_OBSERVATION,
            servicebus_operations: SEED_SERVICEBUS_OPS_PER_OBSERVATION,
            executions: 1.0 / self.observations_per_request + 2.0,
            telemetry_rows_per_execution: SEED_ROWS_PER_EXECUTION,
            ..self.eventide()
        }
    }
}

/// Prices both designs as `args` say.
pub fn estimate(args: CostArgs) -> anyhow::Result<Estimate> {
    let args = args.measured()?;
    anyhow::ensure!(
        args.observations_per_request > 0.0
            && args.observations_per_message > 0.0
            && args.messages_per_batch > 0.0
            && args.observations_per_month > 0.0,
        "--observations-per-request, --observations-per-message, --messages-per-batch and --observations-per-month must be positive"
    );
    let scale = args.scale();
    let eventide = model::bill("eventide", args.eventide(), &scale);
    let seed = model::bill("seed design", args.seed(), &scale);
    Ok(Estimate {
        ratio: seed.total_per_million / eventide.total_per_million,
        scale,
        eventide,
        seed,
        prices: prices::PRICES.iter().map(|p| p.source).collect(),
    })
}

pub fn run(args: CostArgs) -> anyhow::Result<()> {
    let json = args.json;
    let estimate = estimate(args)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&estimate)?);
        return Ok(());
    }
    println!(
        "USD at {:.0} observations a month (prices: docs/cost.md; * = alternative, not in the total)",
        estimate.scale.observations_per_month
    );
    println!(
        "{:<22} {:<42} {:>14} {:>12} {:>14} {:>12}",
        "component", "item", "eventide/1M", "eventide/mo", "seed/1M", "seed/mo"
    );
    for (ours, seed) in estimate.eventide.lines.iter().zip(&estimate.seed.lines) {
        let mark = if ours.in_total { "" } else { "*" };
        println!(
            "{:<22} {:<42} {:>14.4} {:>12.2} {:>14.4} {:>12.2}",
            ours.component,
            format!("{}{mark}", ours.item),
            ours.per_million,
            ours.per_month,
            seed.per_million,
            seed.per_month
        );
    }
    println!(
        "{:<65} {:>14.4} {:>12.2} {:>14.4} {:>12.2}",
        "total",
        estimate.eventide.total_per_million,
        estimate.eventide.total_per_month,
        estimate.seed.total_per_million,
        estimate.seed.total_per_month
    );
    println!(
        "eventide is {:.1}x cheaper per million observations than the seed design (goal: 50x)",
        estimate.ratio
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: CostArgs,
    }

    fn defaults() -> CostArgs {
        Wrap::parse_from(["cost"]).args
    }

    #[test]
    fn the_designs_differ_where_the_seed_design_did_more_work() {
        let args = defaults();
        let (ours, seed) = (args.eventide(), args.seed());
        // W1: 0.1 ingest + 1/130,800 process executions per observation, against 0.1 + 2.
        assert!((ours.executions - (0.1 + 1.0 / 130_800.0)).abs() < 1e-12);
        assert!((seed.executions - 2.1).abs() < 1e-12);
        assert_eq!(seed.request_units, 445.0);
        assert_eq!(ours.request_units, 0.398);
        let estimate = estimate(defaults()).unwrap();
        assert!(estimate.ratio > 1.0);
    }
}
