//! What every SQL sink does to a batch before it talks to its database: refuse numbers SQL
//! cannot hold faithfully, and reduce the batch to one row per key in a fixed order.
//!
//! Statistics beyond `f64` arrive as NULL (`domain::stats`), so a non-finite number can only
//! come from a defect; the sinks still agree on refusing it before any database sees it.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::domain::stats::SummaryRow;
use crate::pipeline::ports::{PortError, PortResult};

/// The columns of `daily_summary`, in table order, on every backend. The revision is stored as
/// its two parts (`domain::series_day::RevisionParts`): `revision` the high one, `revision_low`
/// (added by a later migration, hence last) the low one.
pub const COLUMNS: [&str; 18] = [
    "series",
    "day",
    "count",
    "sum",
    "min",
    "max",
    "mean",
    "stddev",
    "first_value",
    "first_ts",
    "last_value",
    "last_ts",
    "p50",
    "p90",
    "p99",
    "revision",
    "computed_at",
    "revision_low",
];

/// Checks every row ([`SummaryRow::check_storable`]); a batch with any bad row is refused
/// whole (a permanent error), so a retry cannot half-write it.
pub fn validate(rows: &[SummaryRow]) -> PortResult<()> {
    rows.iter()
        .try_for_each(SummaryRow::check_storable)
        .map_err(|e| PortError::permanent("validating daily summaries", e))
}

/// One row per `(series, day)` — the highest revision, the later one on a tie — sorted by key.
///
/// A set-based upsert cannot touch one key twice in a statement, and writers that lock keys in
/// the same order cannot deadlock each other on them.
pub fn latest_per_key(rows: &[SummaryRow]) -> Vec<&SummaryRow> {
    let mut latest: BTreeMap<(&str, NaiveDate), &SummaryRow> = BTreeMap::new();
    for row in rows {
        let slot = latest.entry((row.series.as_str(), row.day)).or_insert(row);
        if row.revision >= slot.revision {
            *slot = row;
        }
    }
    latest.into_values().collect()
}

/// Accepts a schema name for a sink's tables: an unquoted SQL identifier, so it can be spliced
/// into statement text safely.
pub fn check_schema_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(format!(
            "schema name {name:?} must be 1-63 ASCII letters, digits or underscores, not starting with a digit"
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::series::SeriesId;
    use crate::domain::series_day::Revision;
    use crate::domain::stats::DailyStats;
    use crate::pipeline::ports::ErrorKind;

    pub(crate) fn row(series: &str, day: &str, revision: u128, value: f64) -> SummaryRow {
        SummaryRow {
            series: SeriesId::parse(series).unwrap(),
            day: day.parse().unwrap(),
            stats: DailyStats {
                count: 2,
                sum: Some(value * 2.0),
                min: value,
                max: value,
                mean: value,
                stddev: Some(0.0),
                first_value: value,
                first_ts: 1_700_000_000_000_000_000,
                last_value: value,
                last_ts: 1_700_000_060_000_000_000,
                p50: value,
                p90: value,
                p99: value,
            },
            revision: Revision::new(revision),
            computed_at: "2026-11-25T00:15:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn non_finite_numbers_are_refused_with_the_column() {
        let mut bad = row("a", "2026-11-24", 1, 1.0);
        bad.stats.stddev = Some(f64::NAN);
        let e = validate(&[row("b", "2026-11-24", 1, 1.0), bad]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(e.to_string().contains("stddev is NaN"), "{e}");
        let mut bad = row("a", "2026-11-24", 1, 1.0);
        bad.stats.sum = Some(f64::INFINITY);
        assert!(
            validate(&[bad])
                .unwrap_err()
                .to_string()
                .contains("sum is inf")
        );
        let mut none = row("a", "2026-11-24", 1, 1.0);
        none.stats.stddev = None;
        validate(&[none]).unwrap();
    }

    #[test]
    fn the_latest_revision_per_key_wins_in_key_order() {
        let rows = [
            row("b", "2026-11-24", 5, 1.0),
            row("a", "2026-11-24", 1, 1.0),
            row("b", "2026-11-24", 7, 2.0),
            row("b", "2026-11-24", 6, 3.0),
            row("a", "2026-11-23", 1, 1.0),
        ];
        let latest = latest_per_key(&rows);
        let keys: Vec<(&str, String, u128)> = latest
            .iter()
            .map(|r| (r.series.as_str(), r.day.to_string(), r.revision.value()))
            .collect();
        assert_eq!(
            keys,
            [
                ("a", "2026-11-23".to_string(), 1),
                ("a", "2026-11-24".to_string(), 1),
                ("b", "2026-11-24".to_string(), 7)
            ]
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        check_schema_name("contract_1").unwrap();
        for bad in ["", "1abc", "a-b", "a;drop", "ä", &"x".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
    }
}
