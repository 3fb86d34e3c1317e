//! Versioned schema migrations of the server-backed sinks, applied in order inside one
//! transaction under a lock, so concurrent start-ups apply each version exactly once.
//!
//! `eventide_schema_version` records each applied version. The embedded SQLite database keeps
//! its own list (`adapters::embedded`, `PRAGMA user_version`); the table and columns of
//! `daily_summary` are the same in all three:
//!
//! | column | PostgreSQL | SQL Server | SQLite |
//! | --- | --- | --- | --- |
//! | series (key) | `text` (1–100 chars) | `nvarchar(100)` | `TEXT` |
//! | day (key) | `date` | `date` | `TEXT` `YYYY-MM-DD` |
//! | count | `bigint` | `bigint` | `INTEGER` |
//! | min, max, mean, first_value, last_value, p50, p90, p99 | `double precision` | `float` (53-bit) | `REAL` |
//! | sum (null when beyond double precision) | `double precision` | `float` | `REAL` |
//! | stddev (null below 2 points, or beyond double precision) | `double precision` | `float` | `REAL` |
//! | first_ts, last_ts, computed_at | `timestamptz` (µs) | `datetimeoffset(7)` (100 ns) | `TEXT` RFC 3339 (ns) |
//! | revision (the high part of a 128-bit revision) | `bigint` | `bigint` | `INTEGER` |
//! | revision_low (its low part, offset by -2^63; rows written before it: -2^63) | `bigint` | `bigint` | `INTEGER` |
//!
//! The primary key `(series, day)` serves one series' days; the index on `day` serves "all
//! series of a day".

/// One schema version; `{schema}.` in the text is replaced by the quoted schema name and a dot,
/// or by nothing for the connection's default schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub sql: &'static str,
}

/// PostgreSQL, applied with `pg_advisory_xact_lock` held.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        description: "daily_summary with a day index",
        sql: r#"
    CREATE TABLE {schema}.daily_summary (
        series text NOT NULL CHECK (char_length(series) BETWEEN 1 AND 100),
        day date NOT NULL,
        count bigint NOT NULL,
        sum double precision NOT NULL,
        min double precision NOT NULL,
        max double precision NOT NULL,
        mean double precision NOT NULL,
        stddev double precision,
        first_value double precision NOT NULL,
        first_ts timestamptz NOT NULL,
        last_value double precision NOT NULL,
        last_ts timestamptz NOT NULL,
        p50 double precision NOT NULL,
        p90 double precision NOT NULL,
        p99 double precision NOT NULL,
        revision bigint NOT NULL,
        computed_at timestamptz NOT NULL,
        PRIMARY KEY (series, day)
    );
    CREATE INDEX daily_summary_day ON {schema}.daily_summary (day);
    "#,
    },
    Migration {
        version: 2,
        description: "sum NULL when beyond double precision; the revision's low part",
        sql: r#"
    ALTER TABLE {schema}.daily_summary ALTER COLUMN sum DROP NOT NULL;
    ALTER TABLE {schema}.daily_summary
        ADD COLUMN revision_low bigint NOT NULL DEFAULT (-9223372036854775807 - 1);
    "#,
    },
];

/// SQL Server / Azure SQL, applied with `sp_getapplock` held for the transaction.
pub const MSSQL: &[Migration] = &[
    Migration {
        version: 1,
        description: "daily_summary with a day index",
        sql: r#"
    CREATE TABLE {schema}.daily_summary (
        series nvarchar(100) NOT NULL,
        day date NOT NULL,
        [count] bigint NOT NULL,
        [sum] float NOT NULL,
        [min] float NOT NULL,
        [max] float NOT NULL,
        mean float NOT NULL,
        stddev float NULL,
        first_value float NOT NULL,
        first_ts datetimeoffset(7) NOT NULL,
        last_value float NOT NULL,
        last_ts datetimeoffset(7) NOT NULL,
        p50 float NOT NULL,
        p90 float NOT NULL,
        p99 float NOT NULL,
        revision bigint NOT NULL,
        computed_at datetimeoffset(7) NOT NULL,
        CONSTRAINT daily_summary_pk PRIMARY KEY CLUSTERED (series, day)
    );
    CREATE INDEX daily_summary_day ON {schema}.daily_summary (day);
    "#,
    },
    Migration {
        version: 2,
        description: "sum NULL when beyond float; the revision's low part",
        sql: r#"
    ALTER TABLE {schema}.daily_summary ALTER COLUMN [sum] float NULL;
    ALTER TABLE {schema}.daily_summary
        ADD revision_low bigint NOT NULL
        CONSTRAINT daily_summary_revision_low DEFAULT (-9223372036854775807 - 1);
    "#,
    },
];

/// The latest version of a list.
pub fn latest(migrations: &[Migration]) -> i32 {
    migrations.last().map_or(0, |m| m.version)
}

/// The migration text for `prefix`: a quoted schema name and a dot, or empty.
pub fn render(migration: &Migration, prefix: &str) -> String {
    migration.sql.replace("{schema}.", prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one_without_gaps() {
        for list in [POSTGRES, MSSQL] {
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i as i32 + 1, "{}", m.description);
            }
        }
    }

    #[test]
    fn every_backend_has_the_same_columns_in_the_same_order() {
        for list in [POSTGRES, MSSQL] {
            let sql = render(&list[0], "s.");
            let start = sql.find("daily_summary (").unwrap();
            let body = &sql[start..sql.find("PRIMARY KEY").unwrap()];
            let mut columns: Vec<String> = body
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .filter(|c| !c.is_empty() && *c != "CONSTRAINT")
                .map(|c| c.trim_matches(['[', ']']).to_string())
                .collect();
            // Columns added later come last, in the order they were added.
            for later in &list[1..] {
                let words: Vec<&str> = later.sql.split_whitespace().collect();
                for (i, word) in words.iter().enumerate() {
                    if *word == "ADD" {
                        let name = match words[i + 1] {
                            "COLUMN" => words[i + 2],
                            name => name,
                        };
                        columns.push(name.to_string());
                    }
                }
            }
            assert_eq!(columns, crate::adapters::sql::rows::COLUMNS);
        }
    }
}
