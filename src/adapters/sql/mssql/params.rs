//! Between summary rows and SQL Server values: each bound parameter typed as the column it
//! fills (a NULL `sum` or `stddev` must still be a `float`), and each stored row decoded back, with a
//! NULL or out-of-range value reported by column rather than panicking.

use chrono::{DateTime, NaiveDate, Utc};
use tiberius::{ColumnData, ToSql};

use super::error::MssqlError;
use crate::adapters::sql::rows::COLUMNS;
use crate::adapters::stored_series;
use crate::domain::series_day::{Revision, RevisionParts};
use crate::domain::stats::{DailyStats, SummaryRow};

/// One bound parameter, typed as the column it fills.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    /// `nvarchar`
    Text(String),
    /// `date`
    Date(NaiveDate),
    /// `bigint`
    BigInt(i64),
    /// `float`; `None` is a typed NULL.
    Float(Option<f64>),
    /// `datetime2` in UTC, converted to `datetimeoffset` +00:00 by the server.
    Utc(DateTime<Utc>),
}

impl ToSql for Param {
    fn to_sql(&self) -> ColumnData<'_> {
        match self {
            Param::Text(s) => s.to_sql(),
            Param::Date(d) => d.to_sql(),
            Param::BigInt(i) => i.to_sql(),
            Param::Float(f) => f.to_sql(),
            Param::Utc(t) => t.to_sql(),
        }
    }
}

/// A validated row's parameters in column order.
pub(super) fn params(row: &SummaryRow) -> [Param; 18] {
    let s = &row.stats;
    let revision = row.revision.parts().expect("validated rows have parts");
    let f = |v: f64| Param::Float(Some(v));
    [
        Param::Text(row.series.to_string()),
        Param::Date(row.day),
        Param::BigInt(s.count as i64),
        Param::Float(s.sum),
        f(s.min),
        f(s.max),
        f(s.mean),
        Param::Float(s.stddev),
        f(s.first_value),
        Param::Utc(DateTime::from_timestamp_nanos(s.first_ts)),
        f(s.last_value),
        Param::Utc(DateTime::from_timestamp_nanos(s.last_ts)),
        f(s.p50),
        f(s.p90),
        f(s.p99),
        Param::BigInt(revision.high),
        Param::Utc(row.computed_at),
        Param::BigInt(revision.low),
    ]
}

fn nanos(at: DateTime<Utc>) -> Result<i64, MssqlError> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| MssqlError::Unexpected(format!("timestamp {at} out of range")))
}

/// A row read with the columns in [`COLUMNS`] order.
pub(super) fn stored_row(row: &tiberius::Row) -> Result<SummaryRow, MssqlError> {
    fn need<'a, T: tiberius::FromSql<'a>>(
        row: &'a tiberius::Row,
        column: usize,
    ) -> Result<T, MssqlError> {
        row.try_get::<T, _>(column)?
            .ok_or_else(|| MssqlError::Unexpected(format!("NULL in column {}", COLUMNS[column])))
    }
    let count: i64 = need(row, 2)?;
    Ok(SummaryRow {
        series: stored_series::parse(need(row, 0)?)
            .map_err(|e| MssqlError::Unexpected(e.to_string()))?,
        day: need(row, 1)?,
        stats: DailyStats {
            count: u64::try_from(count)
                .map_err(|_| MssqlError::Unexpected(format!("negative count {count}")))?,
            sum: row.try_get(3)?,
            min: need(row, 4)?,
            max: need(row, 5)?,
            mean: need(row, 6)?,
            stddev: row.try_get(7)?,
            first_value: need(row, 8)?,
            first_ts: nanos(need(row, 9)?)?,
            last_value: need(row, 10)?,
            last_ts: nanos(need(row, 11)?)?,
            p50: need(row, 12)?,
            p90: need(row, 13)?,
            p99: need(row, 14)?,
        },
        revision: Revision::from_parts(RevisionParts {
            high: need(row, 15)?,
            low: need(row, 17)?,
        }),
        computed_at: need(row, 16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sql::rows::tests::row;

    #[test]
    fn parameters_are_bound_with_the_column_types() {
        let mut r = row("Zürich/temp", "2026-11-24", (42 << 64) + 7, 1.25);
        r.stats.stddev = None;
        let p = params(&r);
        assert_eq!(p[0], Param::Text("Zürich/temp".into()));
        assert!(matches!(p[0].to_sql(), ColumnData::String(Some(ref s)) if s == "Zürich/temp"));
        assert!(matches!(p[1].to_sql(), ColumnData::Date(Some(_))));
        assert!(matches!(p[2].to_sql(), ColumnData::I64(Some(2))));
        assert!(matches!(p[3].to_sql(), ColumnData::F64(Some(v)) if v == 2.5));
        assert!(
            matches!(p[7].to_sql(), ColumnData::F64(None)),
            "typed NULL stddev"
        );
        assert!(matches!(p[9].to_sql(), ColumnData::DateTime2(Some(_))));
        assert!(matches!(p[15].to_sql(), ColumnData::I64(Some(42))));
        assert_eq!(p[16], Param::Utc(r.computed_at));
        assert_eq!(p[17], Param::BigInt(i64::MIN + 7));
        assert_eq!(p[1], Param::Date(r.day));
        assert_eq!(
            p[9],
            Param::Utc(DateTime::from_timestamp_nanos(r.stats.first_ts))
        );
        r.stats.sum = None;
        assert!(
            matches!(params(&r)[3].to_sql(), ColumnData::F64(None)),
            "typed NULL sum"
        );
    }
}
