//! The cost formulas: what one design uses per observation, priced component by component, per
//! million observations and per month at a given volume.

use serde::Serialize;

use super::prices::{self, Price};

/// Hours in a month, as Azure bills them.
pub const HOURS_PER_MONTH: f64 = 730.0;
const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;
/// The smallest manual throughput a Cosmos DB container takes, and its step.
const MIN_PROVISIONED_RUS: f64 = 400.0;
const RUS_STEP: f64 = 100.0;
const BYTES_PER_GB: f64 = 1e9;

/// What one design uses per observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    /// Cosmos DB request units.
    pub request_units: f64,
    /// Service Bus operations (sends, receives, schedules).
    pub servicebus_operations: f64,
    /// Function executions (ingest requests, process batches, summarize deliveries).
    pub executions: f64,
    /// Seconds one execution runs.
    pub seconds_per_execution: f64,
    /// Memory of the instance an execution runs on, GB.
    pub instance_memory_gb: f64,
    /// Application Insights rows per execution.
    pub telemetry_rows_per_execution: f64,
    /// Billed bytes of one telemetry row.
    pub bytes_per_row: f64,
}

/// How a design's usage is turned into money.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scale {
    pub observations_per_month: f64,
    /// Provisioned throughput is sized for this multiple of the average rate.
    pub peak_factor: f64,
    pub premium_messaging_units: f64,
}

/// One component's cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub component: &'static str,
    pub item: &'static str,
    pub per_million: f64,
    pub per_month: f64,
    /// Whether the line counts towards the total (the others are alternatives to a line that
    /// does: provisioned Cosmos DB for serverless, Premium Service Bus for Standard).
    pub in_total: bool,
}

/// A design's lines and total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bill {
    pub design: &'static str,
    pub usage: Usage,
    pub lines: Vec<Line>,
    pub total_per_million: f64,
    pub total_per_month: f64,
}

impl Line {
    /// A cost proportional to the volume, from its dollars per observation.
    fn per_observation(price: &Price, usd: f64, scale: &Scale, in_total: bool) -> Self {
        Self {
            component: price.component,
            item: price.item,
            per_million: usd * 1e6,
            per_month: usd * scale.observations_per_month,
            in_total,
        }
    }

    /// A cost billed per month whatever the volume.
    fn monthly(price: &Price, usd: f64, scale: &Scale, in_total: bool) -> Self {
        Self {
            component: price.component,
            item: price.item,
            per_million: usd / scale.observations_per_month.max(1.0) * 1e6,
            per_month: usd,
            in_total,
        }
    }
}

/// Cosmos DB serverless: every RU consumed, at its price per million.
pub fn cosmos_serverless(usage: &Usage, scale: &Scale) -> Line {
    let price = prices::COSMOS_SERVERLESS;
    Line::per_observation(&price, usage.request_units * price.usd / 1e6, scale, true)
}

/// Cosmos DB manual throughput: the average RU/s times the peak factor, rounded up to the next
/// 100 RU/s and at least 400, paid every hour of the month.
pub fn cosmos_provisioned(usage: &Usage, scale: &Scale) -> Line {
    let price = prices::COSMOS_PROVISIONED;
    let average = usage.request_units * scale.observations_per_month / SECONDS_PER_MONTH;
    let provisioned = ((average * scale.peak_factor) / RUS_STEP).ceil() * RUS_STEP;
    let provisioned = provisioned.max(MIN_PROVISIONED_RUS);
    let monthly = provisioned / RUS_STEP * price.usd * HOURS_PER_MONTH;
    Line::monthly(&price, monthly, scale, false)
}

/// Service Bus Standard: every operation at its price per million.
pub fn servicebus_standard(usage: &Usage, scale: &Scale) -> Line {
    let price = prices::SERVICE_BUS_STANDARD;
    Line::per_observation(
        &price,
        usage.servicebus_operations * price.usd / 1e6,
        scale,
        true,
    )
}

/// Service Bus Premium: messaging units, flat per month.
pub fn servicebus_premium(scale: &Scale) -> Line {
    let price = prices::SERVICE_BUS_PREMIUM;
    Line::monthly(
        &price,
        scale.premium_messaging_units * price.usd,
        scale,
        false,
    )
}

/// Flex Consumption: executions at their price per million …
pub fn functions_executions(usage: &Usage, scale: &Scale) -> Line {
    let price = prices::FLEX_EXECUTIONS;
    Line::per_observation(&price, usage.executions * price.usd / 1e6, scale, true)
}

/// … plus execution time × instance memory, in GB-seconds.
pub fn functions_gb_seconds(usage: &Usage, scale: &Scale) -> Line {
    let price = prices::FLEX_GB_SECONDS;
    let gb_seconds = usage.executions * usage.seconds_per_execution * usage.instance_memory_gb;
    Line::per_observation(&price, gb_seconds * price.usd, scale, true)
}

/// Application Insights: rows per execution × bytes per row, per GB ingested.
pub fn app_insights(usage: &Usage, scale: &Scale) -> Line {
    let price = prices::APP_INSIGHTS;
    let bytes = usage.executions * usage.telemetry_rows_per_execution * usage.bytes_per_row;
    Line::per_observation(&price, bytes / BYTES_PER_GB * price.usd, scale, true)
}

/// The SQL sink: one small database, flat per month (both designs write the same one row per
/// series and day).
pub fn sql_sink(scale: &Scale) -> Line {
    let price = prices::SQL_DATABASE;
    Line::monthly(&price, price.usd, scale, true)
}

/// Every component of a design.
pub fn bill(design: &'static str, usage: Usage, scale: &Scale) -> Bill {
    let lines = vec![
        cosmos_serverless(&usage, scale),
        cosmos_provisioned(&usage, scale),
        servicebus_standard(&usage, scale),
        servicebus_premium(scale),
        functions_executions(&usage, scale),
        functions_gb_seconds(&usage, scale),
        app_insights(&usage, scale),
        sql_sink(scale),
    ];
    let total = |pick: fn(&Line) -> f64| lines.iter().filter(|l| l.in_total).map(pick).sum();
    Bill {
        design,
        usage,
        total_per_million: total(|l| l.per_million),
        total_per_month: total(|l| l.per_month),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> Usage {
        Usage {
            request_units: 2.0,
            servicebus_operations: 0.5,
            executions: 0.1,
            seconds_per_execution: 0.02,
            instance_memory_gb: 2.0,
            telemetry_rows_per_execution: 3.0,
            bytes_per_row: 500.0,
        }
    }

    fn scale() -> Scale {
        Scale {
            observations_per_month: 10_000_000.0,
            peak_factor: 10.0,
            premium_messaging_units: 2.0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn cosmos_serverless_is_request_units_at_their_price() {
        // 2 RU × 1e6 observations × $0.25 / 1e6 RU = $0.50 per million; × 10 = $5 a month.
        let line = cosmos_serverless(&usage(), &scale());
        assert!(close(line.per_million, 0.50), "{line:?}");
        assert!(close(line.per_month, 5.0), "{line:?}");
    }

    #[test]
    fn cosmos_provisioned_rounds_the_peak_up_and_pays_every_hour() {
        // 2 RU × 1e7 / 2,628,000 s = 7.61 RU/s average; × 10 = 76.1 → 100 → the 400 minimum:
        // 4 × $0.008 × 730 h = $23.36 a month, $2.336 per million at 10 M a month.
        let line = cosmos_provisioned(&usage(), &scale());
        assert!(close(line.per_month, 23.36), "{line:?}");
        assert!(close(line.per_million, 2.336), "{line:?}");
        // 100× the volume: 761 RU/s × 10 = 7,610 → 7,700 RU/s: 77 × 0.008 × 730 = $449.68.
        let big = Scale {
            observations_per_month: 1e9,
            ..scale()
        };
        assert!(close(cosmos_provisioned(&usage(), &big).per_month, 449.68));
    }

    #[test]
    fn servicebus_standard_is_operations_at_their_price_and_premium_is_flat() {
        // 0.5 operations × $1 / 1e6 = $0.50 per million.
        let line = servicebus_standard(&usage(), &scale());
        assert!(close(line.per_million, 0.5) && close(line.per_month, 5.0));
        // 2 MU × $650 = $1,300 a month, $130 per million at 10 M a month.
        let line = servicebus_premium(&scale());
        assert!(close(line.per_month, 1_300.0) && close(line.per_million, 130.0));
    }

    #[test]
    fn functions_pay_executions_and_gb_seconds() {
        // 0.1 executions × $0.40 / 1e6 = $0.04 per million.
        assert!(close(
            functions_executions(&usage(), &scale()).per_million,
            0.04
        ));
        // 0.1 × 0.02 s × 2 GB = 0.004 GB-s × $0.000026 = $1.04e-7 → $0.104 per million.
        assert!(close(
            functions_gb_seconds(&usage(), &scale()).per_million,
            0.104
        ));
    }

    #[test]
    fn app_insights_is_rows_times_bytes_per_gb() {
        // 0.1 × 3 rows × 500 B = 150 B per observation; a million: 0.15 GB × $2.30 = $0.345.
        assert!(close(app_insights(&usage(), &scale()).per_million, 0.345));
    }

    #[test]
    fn the_sql_sink_is_flat_and_the_total_leaves_the_alternatives_out() {
        // $4.99 a month over 10 M observations = $0.499 per million.
        assert!(close(sql_sink(&scale()).per_million, 0.499));
        let bill = bill("test", usage(), &scale());
        // 0.50 + 0.50 + 0.04 + 0.104 + 0.345 + 0.499 (no provisioned Cosmos, no Premium).
        assert!(close(bill.total_per_million, 1.988), "{bill:?}");
        assert!(close(bill.total_per_month, 19.88), "{bill:?}");
    }
}
