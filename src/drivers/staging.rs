//! The core of the nightly batch design Eventide replaces: parsed rows upserted into a SQLite
//! staging table keyed `(series, ts)`. `eventide demo` and the `w1_vs_batch` report both time it
//! beside the pipeline, so both time this one definition.

use std::path::Path;

use anyhow::Context;
use rusqlite::Connection;

/// One parsed observation, as the batch design stages it.
pub struct StagedRow {
    pub series: String,
    /// UTC nanoseconds.
    pub ts: i64,
    pub value: f64,
}

/// Opens a fresh file with the embedded database's settings and creates its staging table. The
/// batch job checkpoints as a lone SQLite writer does: in its own commit, every 8,192 pages (32 MB,
/// copied back once instead of once per SQLite's default 4 MB).
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).context("opening the staging SQLite file")?;
    crate::adapters::embedded::tune(&conn)?;
    conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
    conn.execute_batch(
        "CREATE TABLE staging (series TEXT NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                               PRIMARY KEY (series, ts)) WITHOUT ROWID;",
    )?;
    Ok(conn)
}

/// Upserts `rows` in order, `per_transaction` rows to a transaction, with one prepared statement;
/// a later row for the same `(series, ts)` replaces the value.
pub fn upsert(
    conn: &mut Connection,
    rows: &[StagedRow],
    per_transaction: usize,
) -> rusqlite::Result<()> {
    for batch in rows.chunks(per_transaction.max(1)) {
        let tx = conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO staging (series, ts, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (series, ts) DO UPDATE SET value = excluded.value",
            )?;
            for StagedRow { series, ts, value } in batch {
                upsert.execute(rusqlite::params![series, ts, value])?;
            }
        }
        tx.commit()?;
    }
    Ok(())
}
