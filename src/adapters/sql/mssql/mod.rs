//! The SQL Server / Azure SQL summary sink, on `tiberius`.
//!
//! A batch is written in one transaction: the rows go into a session temp table in multi-row
//! parameterized `INSERT`s (120 rows, 2,040 parameters each, under SQL Server's 2,100), then one
//! set-based `MERGE … WITH (HOLDLOCK)` applies the revision guard: a stored row is updated only
//! when the incoming revision is higher, a new key is inserted. `HOLDLOCK` (serializable range
//! locks) keeps two writers from inserting the same new key at once; a deadlock between them
//! (1205) is retried like the transient faults Azure SQL documents.
//!
//! Authentication: SQL logins from the connection string, or Microsoft Entra ID access tokens
//! from an [`AccessTokenSource`] (`Authentication=ActiveDirectoryDefault` and friends in the
//! connection string, see `entra`). TLS is on unless the connection string turns it off.
//! Connections are pooled (`bb8`); a connection whose call did not finish cleanly is dropped.
//!
//! This module is the sink and its retry loop; each other job has a module of its own:
//! - `connection`: the connection string, into a [`Target`] and an Entra ID flow;
//! - `token`: the [`AccessTokenSource`] seam;
//! - `error`: [`MssqlError`] and which failures are worth retrying;
//! - `pool`: opening, checking and dropping pooled connections;
//! - `statements`: the SQL text; `params`: typed parameters and row decoding;
//! - `migrate`: applying the schema migrations, once, when the sink opens.

mod connection;
mod error;
mod migrate;
mod params;
mod pool;
mod statements;
mod token;

pub use connection::{
    Auth, ConnectionSettings, EntraAuth, Target, is_mssql_connection_string,
    parse_connection_string,
};
pub use error::{MssqlError, verdict};
pub use token::{AZURE_SQL_SCOPE, AccessTokenSource};

use async_trait::async_trait;
use chrono::NaiveDate;
use tiberius::ToSql;

use self::error::port_error;
use self::params::{Param, params, stored_row};
use self::pool::Manager;
use self::statements::{ROWS_PER_INSERT, STAGE, Statements};
use super::SinkOptions;
use super::rows::{check_schema_name, latest_per_key, validate};
use crate::domain::series::SeriesId;
use crate::domain::stats::SummaryRow;
use crate::pipeline::ports::{PortError, PortResult, SummarySink};

/// Runs `$work` (an expression using `$client`) on a pooled connection under the time bound,
/// retrying transient failures. A macro rather than a function taking a closure: a closure
/// borrowing the connection cannot be named with a `Send` future on stable Rust.
macro_rules! on_connection {
    ($sink:expr, $context:expr, |$client:ident| $work:expr) => {{
        let sink = $sink;
        sink.options
            .retry
            .run(
                || async {
                    let mut conn = sink.checkout().await?;
                    let $client = &mut conn.client;
                    let value = sink.bounded($work).await?;
                    conn.clean = true;
                    Ok(value)
                },
                verdict,
            )
            .await
            .map_err(|e| port_error($context, e))
    }};
}

/// Writes summary rows into SQL Server or Azure SQL Database.
#[derive(Clone)]
pub struct MssqlSink {
    pool: bb8::Pool<Manager>,
    statements: Statements,
    options: SinkOptions,
    schema_version: i32,
}

impl MssqlSink {
    /// Opens the pool (connections are made when needed) and applies pending schema
    /// migrations, retrying transient failures. Migrations run here and nowhere else: a sink
    /// that exists has its table, and opening it once migrates once.
    pub async fn connect(target: Target, options: SinkOptions) -> PortResult<Self> {
        if let Some(schema) = &options.schema {
            check_schema_name(schema).map_err(|e| {
                PortError::permanent(
                    "configuring the SQL Server sink",
                    MssqlError::BadConnectionString(e),
                )
            })?;
        }
        let pool = bb8::Pool::builder()
            .max_size(options.max_connections.max(1))
            .connection_timeout(options.timeout)
            .build_unchecked(Manager {
                target,
                timeout: options.timeout,
            });
        let sink = Self {
            pool,
            statements: Statements::new(options.schema.as_deref()),
            options,
            schema_version: 0,
        };
        let schema_version = sink.migrate().await?;
        Ok(Self {
            schema_version,
            ..sink
        })
    }

    /// The schema version in force, as `connect` left it.
    pub fn schema_version(&self) -> i32 {
        self.schema_version
    }

    /// A pooled connection, marked unclean until the caller's work finishes.
    async fn checkout(&self) -> Result<bb8::PooledConnection<'_, Manager>, MssqlError> {
        let mut conn = self.pool.get().await.map_err(|e| match e {
            bb8::RunError::User(e) => e,
            bb8::RunError::TimedOut => MssqlError::PoolTimedOut(self.options.timeout),
        })?;
        conn.clean = false;
        Ok(conn)
    }

    /// Bounds one piece of work by the sink's timeout.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, MssqlError>>,
    ) -> Result<T, MssqlError> {
        match tokio::time::timeout(self.options.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(MssqlError::TimedOut(self.options.timeout)),
        }
    }

    /// Applies pending migrations; returns the schema version in force. Only `connect` calls it.
    async fn migrate(&self) -> PortResult<i32> {
        let prefix = self.statements.prefix.as_str();
        let schema = self.options.schema.as_deref();
        on_connection!(self, "applying SQL Server schema migrations", |client| {
            migrate::apply(client, prefix, schema)
        })
    }
}

#[async_trait]
impl SummarySink for MssqlSink {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
        validate(rows)?;
        let rows = latest_per_key(rows);
        if rows.is_empty() {
            return Ok(0);
        }
        let statements = &self.statements;
        let rows = &rows;
        on_connection!(
            self,
            "upserting daily summaries into SQL Server",
            |client| async {
                client
                    .simple_query(format!(
                        "SET XACT_ABORT ON; BEGIN TRANSACTION; {}",
                        statements.create_stage
                    ))
                    .await?
                    .into_results()
                    .await?;
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let bound: Vec<Param> = chunk.iter().flat_map(|r| params(r)).collect();
                    let refs: Vec<&dyn ToSql> = bound.iter().map(|p| p as &dyn ToSql).collect();
                    client
                        .execute(Statements::insert_stage(chunk.len()), &refs)
                        .await?;
                }
                let merged = client.execute(statements.merge.as_str(), &[]).await?;
                let written: u64 = merged.rows_affected().iter().sum();
                client
                    .simple_query(format!("DROP TABLE {STAGE}; COMMIT TRANSACTION;"))
                    .await?
                    .into_results()
                    .await?;
                Ok(written as usize)
            }
        )
    }

    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> PortResult<Vec<SummaryRow>> {
        let statement = self.statements.read.as_str();
        let series = series.map(SeriesId::as_str);
        let (series, day) = (&series, &day);
        on_connection!(
            self,
            "reading daily summaries from SQL Server",
            |client| async {
                let rows = client
                    .query(statement, &[series, day])
                    .await?
                    .into_first_result()
                    .await?;
                rows.iter().map(stored_row).collect()
            }
        )
    }
}
