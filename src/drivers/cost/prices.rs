//! Every price `eventide cost` uses, in one table (mirrored in docs/cost.md; a test compares
//! them). Figures marked ✅ or ≈ are copied from the project's reference notes on Azure
//! (`shared/reference/anchors.md`, read 2026-12-01), which cite the Azure pricing pages and
//! Microsoft's own blogs; figures marked ⚠ are public list prices the notes do not carry —
//! verify them on the Azure pricing calculator for your region before relying on them.

/// One price: what is billed, how much, per what, where and when it was read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub component: &'static str,
    pub item: &'static str,
    pub usd: f64,
    pub unit: &'static str,
    pub region: &'static str,
    pub as_of: &'static str,
    pub source: &'static str,
}

pub const COSMOS_SERVERLESS: Price = Price {
    component: "Cosmos DB",
    item: "serverless request units",
    usd: 0.25,
    unit: "per 1,000,000 RU",
    region: "East US",
    as_of: "2026-12",
    source: "⚠ public list price, not in the reference notes",
};

pub const COSMOS_PROVISIONED: Price = Price {
    component: "Cosmos DB",
    item: "provisioned throughput (manual)",
    usd: 0.008,
    unit: "per 100 RU/s per hour",
    region: "East US",
    as_of: "2026-02",
    source: "≈ public list price; ~$24/month for 400 RU/s as third-party pages quote it",
};

pub const SERVICE_BUS_STANDARD: Price = Price {
    component: "Service Bus",
    item: "Standard operations",
    usd: 1.0,
    unit: "per 1,000,000 operations",
    region: "not stated",
    as_of: "2026-11",
    source: "✅ anchors §1.1: $10–15 per 10 M operations (low end)",
};

pub const SERVICE_BUS_PREMIUM: Price = Price {
    component: "Service Bus",
    item: "Premium messaging unit",
    usd: 650.0,
    unit: "per messaging unit per month",
    region: "not stated",
    as_of: "2026-11",
    source: "✅ anchors §1.1: $650–700 per MU-month (low end)",
};

pub const FLEX_EXECUTIONS: Price = Price {
    component: "Functions",
    item: "Flex Consumption executions",
    usd: 0.40,
    unit: "per 1,000,000 executions",
    region: "East US",
    as_of: "2026-12",
    source: "⚠ public list price, not in the reference notes (Consumption: $0.20, anchors §1.4)",
};

pub const FLEX_GB_SECONDS: Price = Price {
    component: "Functions",
    item: "Flex Consumption on-demand execution time",
    usd: 0.000026,
    unit: "per GB-second",
    region: "East US",
    as_of: "2026-12",
    source: "⚠ public list price, not in the reference notes",
};

pub const APP_INSIGHTS: Price = Price {
    component: "Application Insights",
    item: "Analytics Logs ingestion (pay as you go)",
    usd: 2.30,
    unit: "per GB",
    region: "not stated",
    as_of: "2026",
    source: "✅ anchors §1.4; the first 5 GB a month are free (not deducted here)",
};

pub const SQL_DATABASE: Price = Price {
    component: "SQL sink",
    item: "Azure SQL Database Basic (5 DTU)",
    usd: 4.99,
    unit: "per month",
    region: "East US",
    as_of: "2026-12",
    source: "⚠ public list price, not in the reference notes",
};

/// Every price, in the order of the documented table.
pub const PRICES: [Price; 8] = [
    COSMOS_SERVERLESS,
    COSMOS_PROVISIONED,
    SERVICE_BUS_STANDARD,
    SERVICE_BUS_PREMIUM,
    FLEX_EXECUTIONS,
    FLEX_GB_SECONDS,
    APP_INSIGHTS,
    SQL_DATABASE,
];

/// The table of docs/cost.md, generated from [`PRICES`].
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| component | item | USD | unit | region | as of | source |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for p in PRICES {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            p.component, p.item, p.usd, p.unit, p.region, p.as_of, p.source
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_price_table_is_the_one_the_code_uses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cost.md");
        let docs = std::fs::read_to_string(path).expect("docs/cost.md exists");
        let (start, end) = ("<!-- prices:start -->\n", "<!-- prices:end -->");
        let from = docs.find(start).expect("start marker") + start.len();
        let to = docs.find(end).expect("end marker");
        let expected = markdown_table();
        assert!(
            docs[from..to] == expected,
            "docs/cost.md's price table is out of date; replace the block between the markers \
             with:\n{expected}"
        );
    }
}
