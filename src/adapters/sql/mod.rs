//! Summary sinks: the `daily_summary` table in the SQL database the user runs.
//!
//! Every sink keeps one contract (`SummarySink`): batched upserts in one transaction where a
//! stored row is replaced only by a higher revision, rows refused before the database when a
//! number is not finite, and the same table and columns everywhere (see `migrations`).

pub mod entra;
pub mod migrations;
pub mod mssql;
pub mod postgres;
pub mod rows;
pub mod sqlite;

use std::time::Duration;

use crate::pipeline::retry::RetryPolicy;

/// Settings shared by the server-backed sinks (PostgreSQL, SQL Server).
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// The schema holding `daily_summary`; `None` for the connection's default (`public`,
    /// `dbo`). Tests use one schema each so they can run side by side on one server.
    pub schema: Option<String>,
    /// Pooled connections at most.
    pub max_connections: u32,
    /// The bound on one call (connecting included), retries excluded.
    pub timeout: Duration,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 4,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}
