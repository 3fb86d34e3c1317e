//! The SQL text of writes and reads for one schema, built once when the sink opens: a staging
//! table in the session, its multi-row `INSERT`s, and the `MERGE` that applies the revision
//! guard. Text only, so it is tested without a server.

use crate::adapters::sql::rows::COLUMNS;

/// Rows per staging `INSERT`: 18 parameters each, under the 2,100-parameter limit of one call.
pub(super) const ROWS_PER_INSERT: usize = 116;

/// The staging table lives in the session; `COLLATE DATABASE_DEFAULT` keeps its `series`
/// comparable with the table's when tempdb's collation differs from the database's.
pub(super) const STAGE: &str = "#daily_summary_stage";

/// Statement text for one schema, built once.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    /// `[schema].` or empty for the login's default schema.
    pub(super) prefix: String,
    pub(super) create_stage: String,
    pub(super) merge: String,
    pub(super) read: String,
}

fn quoted(column: &str) -> String {
    format!("[{column}]")
}

impl Statements {
    pub(super) fn new(schema: Option<&str>) -> Self {
        let prefix = schema.map_or(String::new(), |s| format!("[{s}]."));
        let table = format!("{prefix}daily_summary");
        let create_stage = format!(
            "CREATE TABLE {STAGE} (
                series nvarchar(100) COLLATE DATABASE_DEFAULT NOT NULL, day date NOT NULL,
                [count] bigint NOT NULL, [sum] float NULL, [min] float NOT NULL,
                [max] float NOT NULL, mean float NOT NULL, stddev float NULL,
                first_value float NOT NULL, first_ts datetimeoffset(7) NOT NULL,
                last_value float NOT NULL, last_ts datetimeoffset(7) NOT NULL,
                p50 float NOT NULL, p90 float NOT NULL, p99 float NOT NULL,
                revision bigint NOT NULL, computed_at datetimeoffset(7) NOT NULL,
                revision_low bigint NOT NULL, PRIMARY KEY (series, day))"
        );
        let columns: Vec<String> = COLUMNS.iter().map(|c| quoted(c)).collect();
        let updates: Vec<String> = COLUMNS[2..]
            .iter()
            .map(|c| format!("{0} = incoming.{0}", quoted(c)))
            .collect();
        let values: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("incoming.{}", quoted(c)))
            .collect();
        let merge = format!(
            "MERGE {table} WITH (HOLDLOCK) AS stored
             USING {STAGE} AS incoming
             ON stored.series = incoming.series AND stored.day = incoming.day
             WHEN MATCHED AND (incoming.revision > stored.revision
                OR (incoming.revision = stored.revision AND incoming.revision_low > stored.revision_low)) THEN
                UPDATE SET {}
             WHEN NOT MATCHED BY TARGET THEN
                INSERT ({}) VALUES ({});",
            updates.join(", "),
            columns.join(", "),
            values.join(", ")
        );
        let read = format!(
            "SELECT {} FROM {table}
             WHERE (@P1 IS NULL OR series = @P1) AND (@P2 IS NULL OR day = @P2)
             ORDER BY day, series",
            columns.join(", ")
        );
        Self {
            prefix,
            create_stage,
            merge,
            read,
        }
    }

    /// `INSERT` of `rows` rows into the staging table, parameters `@P1…` row by row.
    pub(super) fn insert_stage(rows: usize) -> String {
        let columns: Vec<String> = COLUMNS.iter().map(|c| quoted(c)).collect();
        let tuples: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=COLUMNS.len())
                    .map(|c| format!("@P{}", r * COLUMNS.len() + c))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {STAGE} ({}) VALUES {}",
            columns.join(", "),
            tuples.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merge_guards_the_revision_and_locks_the_key_range() {
        let s = Statements::new(Some("contract"));
        assert!(
            s.merge
                .starts_with("MERGE [contract].daily_summary WITH (HOLDLOCK) AS stored")
        );
        assert!(s.merge.contains(
            "WHEN MATCHED AND (incoming.revision > stored.revision
                OR (incoming.revision = stored.revision AND incoming.revision_low > stored.revision_low)) THEN"
        ));
        assert!(s.merge.contains("WHEN NOT MATCHED BY TARGET THEN"));
        assert!(
            !s.merge.contains("WHEN NOT MATCHED BY SOURCE"),
            "never deletes"
        );
        assert!(
            s.merge.trim_end().ends_with(';'),
            "MERGE must end with a semicolon"
        );
        // Every column but the key is updated from the incoming row.
        for column in &COLUMNS[2..] {
            assert!(
                s.merge
                    .contains(&format!("[{column}] = incoming.[{column}]"))
            );
        }
        assert!(!s.merge.contains("[series] = incoming"));
        assert!(s.create_stage.contains("COLLATE DATABASE_DEFAULT"));
        assert!(
            Statements::new(None)
                .merge
                .starts_with("MERGE daily_summary ")
        );
    }

    #[test]
    fn staging_inserts_number_parameters_row_by_row() {
        let sql = Statements::insert_stage(2);
        assert!(sql.starts_with("INSERT INTO #daily_summary_stage ([series], [day], [count],"));
        assert!(sql.contains("VALUES (@P1, @P2, @P3,"));
        assert!(sql.contains("@P18), (@P19, @P20,"));
        assert!(sql.ends_with("@P36)"));
        let full = Statements::insert_stage(ROWS_PER_INSERT);
        let last = ROWS_PER_INSERT * COLUMNS.len();
        assert!(last < 2100, "SQL Server takes at most 2,100 parameters");
        assert!(full.ends_with(&format!("@P{last})")));
    }
}
