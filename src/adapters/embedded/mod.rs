//! The embedded default: one SQLite file (WAL) holds the series-day documents, both queues, the
//! quarantine and the summary table, so the whole flow runs on a bare machine.
//!
//! One connection serves the process. SQLite allows one writer at a time anyway, and every port
//! call is a single short transaction run on the blocking pool, so the async runtime never waits
//! on disk. A second connection only copies the WAL back into the file (`checkpoint`).

mod checkpoint;
mod codec;
pub mod keys;
pub mod quarantine;
pub mod queue;
pub mod store;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};

use crate::adapters::stored_series;
use crate::domain::series::SeriesId;
use crate::pipeline::ports::{Clock, PortError, PortResult};
use checkpoint::Checkpointer;
use keys::EmbeddedKeys;
use quarantine::EmbeddedQuarantine;
use queue::{EmbeddedQueue, QueueSettings};
use store::{EmbeddedStore, Expiry};

/// Schema versions, applied in order; `PRAGMA user_version` records the last one applied.
const MIGRATIONS: &[&str] = &[
    // 1: documents, queues, quarantine, summaries.
    r#"
    CREATE TABLE day_state (
        series TEXT NOT NULL,
        day TEXT NOT NULL,
        version INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        pending INTEGER NOT NULL,
        due_at INTEGER NOT NULL,
        touched INTEGER NOT NULL,
        summarized_revision INTEGER,
        PRIMARY KEY (series, day)
    ) WITHOUT ROWID;
    CREATE INDEX day_state_pending ON day_state (pending, due_at);
    CREATE INDEX day_state_day ON day_state (day);

    CREATE TABLE day_part (
        series TEXT NOT NULL,
        day TEXT NOT NULL,
        part INTEGER NOT NULL,
        version INTEGER NOT NULL,
        points BLOB NOT NULL,
        written_at INTEGER NOT NULL,
        PRIMARY KEY (series, day, part)
    ) WITHOUT ROWID;

    CREATE TABLE queue_message (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        session_id TEXT,
        enqueued_at INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        delivery_count INTEGER NOT NULL DEFAULT 0,
        lock_token TEXT
    );
    CREATE INDEX queue_message_visible ON queue_message (queue, visible_at, seq);
    -- Bodies apart from the small, often updated lock columns, so a receive or an abandon
    -- rewrites a few bytes instead of the whole message.
    CREATE TABLE queue_body (
        seq INTEGER PRIMARY KEY,
        body BLOB NOT NULL
    );

    CREATE TABLE queue_dedup (
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (queue, message_id)
    ) WITHOUT ROWID;

    CREATE TABLE quarantine (
        id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        function TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        body BLOB NOT NULL
    );

    CREATE TABLE daily_summary (
        series TEXT NOT NULL,
        day TEXT NOT NULL,
        count INTEGER NOT NULL,
        sum REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        mean REAL NOT NULL,
        stddev REAL,
        first_value REAL NOT NULL,
        first_ts TEXT NOT NULL,
        last_value REAL NOT NULL,
        last_ts TEXT NOT NULL,
        p50 REAL NOT NULL,
        p90 REAL NOT NULL,
        p99 REAL NOT NULL,
        revision INTEGER NOT NULL,
        computed_at TEXT NOT NULL,
        PRIMARY KEY (series, day)
    );
    CREATE INDEX daily_summary_day ON daily_summary (day);
    "#,
    // 2: the idempotency keys of ingest requests.
    r#"
    CREATE TABLE idempotency_key (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        stamp INTEGER NOT NULL,
        first_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_key_first_seen ON idempotency_key (first_seen);
    "#,
    // 3: a sum beyond double precision is stored as NULL, and revisions are 128-bit: the low
    // part in its own column beside the high one (`revision`), -2^63 in rows written before.
    // SQLite cannot drop a NOT NULL constraint in place, so the summary table is rebuilt.
    r#"
    CREATE TABLE daily_summary_v2 (
        series TEXT NOT NULL,
        day TEXT NOT NULL,
        count INTEGER NOT NULL,
        sum REAL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        mean REAL NOT NULL,
        stddev REAL,
        first_value REAL NOT NULL,
        first_ts TEXT NOT NULL,
        last_value REAL NOT NULL,
        last_ts TEXT NOT NULL,
        p50 REAL NOT NULL,
        p90 REAL NOT NULL,
        p99 REAL NOT NULL,
        revision INTEGER NOT NULL,
        computed_at TEXT NOT NULL,
        revision_low INTEGER NOT NULL,
        PRIMARY KEY (series, day)
    );
    INSERT INTO daily_summary_v2 SELECT *, -9223372036854775808 FROM daily_summary;
    DROP TABLE daily_summary;
    ALTER TABLE daily_summary_v2 RENAME TO daily_summary;
    CREATE INDEX daily_summary_day ON daily_summary (day);
    ALTER TABLE day_state ADD COLUMN summarized_revision_low INTEGER;
    "#,
    // 4: the W3C `traceparent` of the span that sent a message (NULL when not exporting).
    r#"
    ALTER TABLE queue_body ADD COLUMN trace_context TEXT;
    "#,
    // 5: a send's messages travel as one envelope (`queue::EmbeddedQueue` says why): visibility,
    // lock and delivery count per envelope, one item row per message, an envelope's items one
    // range of item ids. Each message already queued becomes an envelope of its own; a lock
    // held across the upgrade is dropped, and its message is delivered again when it expires.
    r#"
    CREATE TABLE queue_envelope (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        enqueued_at INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        delivery_count INTEGER NOT NULL DEFAULT 0,
        lock_token TEXT,
        first_item INTEGER NOT NULL,
        last_item INTEGER NOT NULL,
        messages INTEGER NOT NULL
    );
    CREATE INDEX queue_envelope_visible ON queue_envelope (queue, visible_at, seq);
    CREATE TABLE queue_item (
        item INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        trace_context TEXT,
        body BLOB NOT NULL
    );
    INSERT INTO queue_envelope
        (seq, queue, enqueued_at, visible_at, delivery_count, first_item, last_item, messages)
        SELECT seq, queue, enqueued_at, visible_at, delivery_count, seq << 16, seq << 16, 1
        FROM queue_message;
    INSERT INTO queue_item (item, message_id, trace_context, body)
        SELECT m.seq << 16, m.message_id, b.trace_context, b.body
        FROM queue_message m JOIN queue_body b ON b.seq = m.seq;
    DROP TABLE queue_message;
    DROP TABLE queue_body;
    "#,
    // 6: how an hour row's points are stored (`codec`): rows written before keep 24 bytes a
    // point (1), new writes use the compact form (2), which fits a row in its page.
    r#"
    ALTER TABLE day_part ADD COLUMN codec INTEGER NOT NULL DEFAULT 1;
    "#,
];

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// A shared handle on the embedded database file.
#[derive(Clone)]
pub struct EmbeddedDb {
    conn: Arc<Mutex<Connection>>,
    /// Checkpoints the file while any handle on it lives.
    _checkpointer: Arc<Checkpointer>,
}

impl EmbeddedDb {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(path: &Path) -> PortResult<Self> {
        let context = || format!("opening embedded database {}", path.display());
        let mut conn = Connection::open(path).map_err(|e| classify(&context(), e))?;
        tune(&conn).map_err(|e| classify(&context(), e))?;
        // The checkpointer's thread copies the WAL back; no commit of this connection does.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| classify(&context(), e))?;
        // Every adapter's statements stay prepared: the queues, the store, the keys, the
        // quarantine and the SQLite sink together use more than rusqlite's default of 16, and an
        // evicted statement is parsed again on its next use.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // `rarray(?)`: a whole batch's keys bound as one parameter, so a batch is one statement.
        rusqlite::vtab::array::load_module(&conn).map_err(|e| classify(&context(), e))?;
        migrate(&mut conn).map_err(|e| classify("applying embedded schema migrations", e))?;
        let checkpointer = Checkpointer::start(path).map_err(|e| classify(&context(), e))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            _checkpointer: Arc::new(checkpointer),
        })
    }

    /// Runs `f` on the connection on the blocking pool.
    pub async fn call<R, F>(&self, context: &'static str, f: F) -> PortResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| PortError::transient(context, e))?
        .map_err(|e| classify(context, e))
    }

    /// The schema version in force.
    pub async fn schema_version(&self) -> PortResult<i64> {
        self.call("reading schema version", |c| {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
        })
        .await
    }
}

/// Every embedded adapter of one database file, sharing its connection.
#[derive(Clone)]
pub struct Embedded {
    pub db: EmbeddedDb,
    pub store: EmbeddedStore,
    pub keys: EmbeddedKeys,
    pub observations: EmbeddedQueue,
    pub summaries: EmbeddedQueue,
    pub quarantine: EmbeddedQuarantine,
}

impl Embedded {
    /// Opens (creating and migrating if needed) the file and the adapters on it.
    ///
    /// The observations queue keeps no duplicate-detection history: a copy of a chunk merges
    /// into the day it already reached (the same points under the same stamp change nothing),
    /// so remembering every MessageId would cost each message an index row — 6% of W1's time —
    /// to spare the rare retried request one merge that changes nothing. The summaries queue
    /// keeps `queues.dedup_window`: its duplicates are second summaries of an epoch.
    pub fn open(path: &Path, queues: QueueSettings, clock: Arc<dyn Clock>) -> PortResult<Self> {
        let db = EmbeddedDb::open(path)?;
        let observations = QueueSettings {
            dedup_window: chrono::Duration::zero(),
            ..queues.clone()
        };
        Ok(Self {
            store: EmbeddedStore::new(db.clone(), clock.clone()),
            keys: EmbeddedKeys::new(db.clone()),
            observations: EmbeddedQueue::new(
                db.clone(),
                "observations",
                observations,
                clock.clone(),
            ),
            summaries: EmbeddedQueue::new(db.clone(), "summaries", queues, clock),
            quarantine: EmbeddedQuarantine::new(db.clone()),
            db,
        })
    }

    /// The embedded TTL: forgets the series-days `expiry` covers, idempotency keys first used
    /// before its cutoff, and duplicate-detection history past its window. Failures are logged;
    /// the next run retries.
    pub async fn housekeeping(&self, expiry: Expiry) {
        if let Err(e) = self.store.purge_expired(expiry).await {
            tracing::error!(error = %e, "purging expired series-days failed");
        }
        if let Err(e) = self.keys.purge_seen_before(expiry.cutoff).await {
            tracing::error!(error = %e, "purging expired idempotency keys failed");
        }
        for queue in [&self.observations, &self.summaries] {
            if let Err(e) = queue.purge_dedup().await {
                tracing::error!(error = %e, queue = queue.name(), "purging duplicate-detection history failed");
            }
        }
    }
}

/// The settings every embedded connection runs with: WAL with `synchronous = NORMAL` (a commit
/// survives a crash of the process; only a power loss may lose the last transactions), and a page
/// cache and memory map large enough that hot documents and queue pages are not re-read from the
/// file on every transaction. When the WAL is copied back into the file (a checkpoint, with the
/// only `fsync` of `NORMAL`) is the caller's choice: `EmbeddedDb` leaves it to its checkpointer's
/// thread, the batch design's staging file to SQLite every 8,192 pages.
pub fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 268435456;
         PRAGMA temp_store = MEMORY;",
    )
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Busy, locked, full or failing storage may pass; anything else is a defect or bad data.
fn classify(context: &str, error: rusqlite::Error) -> PortError {
    let transient = matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
        )
    );
    if transient {
        PortError::transient(context, error)
    } else {
        PortError::permanent(context, error)
    }
}

/// A series is stored as its name, as text.
impl ToSql for SeriesId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(
            self.as_str().as_bytes(),
        )))
    }
}

/// A stored name is parsed again when read back: one that no longer follows the rules was
/// written by something else, and fails the read (a permanent error) instead of travelling on.
impl FromSql for SeriesId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        stored_series::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// Milliseconds since the Unix epoch, the embedded tables' time unit.
fn millis(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrating_keeps_queued_messages_deliverable() {
        use crate::pipeline::ports::MessageReceiver;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute_batch(
                "INSERT INTO queue_message (seq, queue, message_id, enqueued_at, visible_at, delivery_count)
                 VALUES (7, 'observations', 'obs-7', 1000, 1000, 2);
                 INSERT INTO queue_body (seq, body, trace_context) VALUES (7, x'6869', NULL);",
            )
            .unwrap();
        }
        let db = EmbeddedDb::open(&path).unwrap();
        let clock = Arc::new(crate::pipeline::clock::ManualClock::new(
            "2026-11-25T00:00:00Z".parse().unwrap(),
        ));
        let queue = EmbeddedQueue::new(db, "observations", QueueSettings::default(), clock);
        let received = queue.receive(10).await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].message_id, "obs-7");
        assert_eq!(received[0].body, b"hi");
        assert_eq!(
            received[0].delivery_count, 3,
            "its deliveries so far are kept"
        );
        queue
            .complete(&[received[0].lock_token.clone()])
            .await
            .unwrap();
        assert_eq!(queue.depth().await.unwrap(), queue::QueueDepth::default());
    }

    #[test]
    fn migrating_keeps_the_summary_rows_with_their_revisions_and_lets_a_sum_be_null() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO daily_summary VALUES ('a', '2026-11-18', 2, 3.0, 1.0, 2.0, 1.5, 0.7,
                 1.0, '2026-11-18T00:00:00Z', 2.0, '2026-11-18T00:01:00Z', 1.5, 1.9, 1.99, 42,
                 '2026-11-19T00:10:00Z')",
                [],
            )
            .unwrap();
        }
        EmbeddedDb::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
        let kept: (f64, i64, i64) = conn
            .query_row(
                "SELECT sum, revision, revision_low FROM daily_summary",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            kept,
            (3.0, 42, i64::MIN),
            "the sum of stamps is the high part"
        );
        conn.execute("UPDATE daily_summary SET sum = NULL", [])
            .unwrap();
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'daily_summary_day'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 1);
    }
}
