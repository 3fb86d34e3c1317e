//! The embedded quarantine: a table of what could not be processed, with the reason and the
//! original bytes, keyed by a deterministic id so a redelivered poison message is kept once.

use async_trait::async_trait;
use rusqlite::{Connection, params};
use serde::Serialize;

use super::EmbeddedDb;
use crate::pipeline::ports::{PortResult, Quarantine, QuarantineEntry};

/// The embedded quarantine.
#[derive(Clone)]
pub struct EmbeddedQuarantine {
    db: EmbeddedDb,
}

/// A quarantined entry as listed to an operator.
#[derive(Debug, Clone, Serialize)]
pub struct ListedEntry {
    pub id: String,
    pub at: String,
    pub function: String,
    pub source: String,
    pub reason: String,
    /// The original bytes.
    #[serde(serialize_with = "lossy_text")]
    pub body: Vec<u8>,
}

/// Shows the original bytes as text (invalid UTF-8 replaced) to a person reading the list.
fn lossy_text<S: serde::Serializer>(body: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&String::from_utf8_lossy(body))
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

    /// The newest entries first.
    pub async fn list(&self, limit: usize) -> PortResult<Vec<ListedEntry>> {
        self.db
            .call("listing quarantine entries", move |c| {
                let mut stmt = c.prepare(
                    "SELECT id, at, function, source, reason, body FROM quarantine ORDER BY at DESC, id LIMIT ?1",
                )?;
                let rows = stmt.query_map([limit as i64], |r| {
                    Ok(ListedEntry {
                        id: r.get(0)?,
                        at: r.get(1)?,
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
}

impl EmbeddedQuarantine {
    /// Removes an entry (after it was replayed); returns whether it existed.
    pub async fn remove(&self, id: String) -> PortResult<bool> {
        self.db
            .call("removing a quarantine entry", move |c| {
                Ok(c.execute("DELETE FROM quarantine WHERE id = ?1", [id])? > 0)
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
}
