//! The embedded quarantine: a table of what could not be processed, with the reason and the
//! original bytes, keyed by a deterministic id so a redelivered poison message is kept once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, params};

use super::EmbeddedDb;
use crate::pipeline::ports::{PortResult, Quarantine, QuarantineEntry};

/// The embedded quarantine.
#[derive(Clone)]
pub struct EmbeddedQuarantine {
    db: EmbeddedDb,
}

/// Inserts an entry unless one with the same id is already kept.
pub(super) fn insert(conn: &Connection, entry: &QuarantineEntry) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO quarantine (id, at, function, source, reason, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        entry.id,
        entry.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        entry.function,
        entry.source,
        entry.reason,
        entry.body,
    ])?;
    Ok(())
}

impl EmbeddedQuarantine {
    pub fn new(db: EmbeddedDb) -> Self {
        Self { db }
    }

    /// How many entries are kept.
    pub async fn size(&self) -> PortResult<u64> {
        self.db
            .call("counting quarantine entries", |c| {
                c.query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))
            })
            .await
    }
}

#[async_trait]
impl Quarantine for EmbeddedQuarantine {
    async fn put(&self, entries: &[QuarantineEntry]) -> PortResult<()> {
        let entries = entries.to_vec();
        self.db
            .call("writing quarantine entries", move |c| {
                let tx = c.transaction()?;
                for entry in &entries {
                    insert(&tx, entry)?;
                }
                tx.commit()
            })
            .await
    }

    async fn list(&self, limit: usize) -> PortResult<Vec<QuarantineEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call("listing quarantine entries", move |c| {
                let mut stmt = c.prepare(
                    "SELECT id, at, function, source, reason, body FROM quarantine ORDER BY at DESC, id LIMIT ?1",
                )?;
                let rows = stmt.query_map([limit], |r| {
                    let at: String = r.get(1)?;
                    Ok(QuarantineEntry {
                        id: r.get(0)?,
                        at: DateTime::parse_from_rfc3339(&at)
                            .map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(1, Type::Text, e.into())
                            })?
                            .with_timezone(&Utc),
                        function: r.get(2)?,
                        source: r.get(3)?,
                        reason: r.get(4)?,
                        body: r.get(5)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn remove(&self, id: &str) -> PortResult<bool> {
        let id = id.to_string();
        self.db
            .call("removing a quarantine entry", move |c| {
                Ok(c.execute("DELETE FROM quarantine WHERE id = ?1", [id])? > 0)
            })
            .await
    }
}
