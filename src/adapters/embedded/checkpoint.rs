//! Copies the WAL back into the database file on a thread and connection of its own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold. Under load
//! that made one transaction in every few — an ingest's send, a batch's merge — copy tens of
//! megabytes back into the file while it held the one connection every queue and store call
//! waits for. A passive checkpoint on another connection copies the same pages without blocking
//! the writer, on the other core, and leaves the writer's transactions short (W1 through
//! `eventide local`: see docs/benchmarks.md).

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied back. The WAL then holds what a fraction of a second wrote: under
/// W1's load some tens of megabytes, about what the former threshold of 8,192 pages allowed.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// Keeps the checkpoint thread running; the thread stops when the last handle is dropped.
pub struct Checkpointer {
    _running: SyncSender<()>,
}

impl Checkpointer {
    /// Opens a second connection on `path` and checkpoints it every [`CHECKPOINT_INTERVAL`]
    /// until the handle is dropped.
    pub fn start(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        let (running, stopped) = mpsc::sync_channel::<()>(0);
        let thread = std::thread::Builder::new()
            .name("eventide-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_INTERVAL)
                {
                    let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    // One warning per failing stretch, not one per interval.
                    match outcome {
                        Err(error) if !failing => {
                            tracing::warn!(%error, "checkpointing the embedded database failed; the WAL grows until it succeeds");
                            failing = true;
                        }
                        Err(_) => {}
                        Ok(()) => failing = false,
                    }
                }
            });
        thread.map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self { _running: running })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::EmbeddedDb;

    #[tokio::test]
    async fn the_wal_reaches_the_file_without_a_commit_copying_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let db = EmbeddedDb::open(&path).unwrap();
        let autocheckpoint: i64 = db
            .call("reading the setting", |c| {
                c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            })
            .await
            .unwrap();
        assert_eq!(
            autocheckpoint, 0,
            "no commit of the shared connection checkpoints"
        );
        db.call("writing 4 MB", |c| {
            c.execute_batch("CREATE TABLE filler (b BLOB)")?;
            for _ in 0..64 {
                c.execute("INSERT INTO filler VALUES (zeroblob(65536))", [])?;
            }
            Ok(())
        })
        .await
        .unwrap();
        // The pages are in the WAL; the checkpointer copies them into the file.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < 4 << 20 {
            assert!(Instant::now() < deadline, "no checkpoint within 10 s");
            tokio::time::sleep(super::CHECKPOINT_INTERVAL).await;
        }
    }
}
