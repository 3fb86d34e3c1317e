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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tiberius::{AuthMethod, Client, ColumnData, Config, ToSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::SinkOptions;
use super::migrations;
use super::rows::{COLUMNS, check_schema_name, latest_per_key, validate};
use crate::adapters::retry::Verdict;
use crate::adapters::stored_series;
use crate::domain::series::SeriesId;
use crate::domain::stats::{DailyStats, SummaryRow};
use crate::pipeline::ports::{PortError, PortResult, SummarySink};

/// Rows per staging `INSERT`: 17 parameters each, under the 2,100-parameter limit of one call.
pub const ROWS_PER_INSERT: usize = 120;

/// The OAuth scope of Azure SQL Database access tokens.
pub const AZURE_SQL_SCOPE: &str = "https://database.windows.net/.default";

/// Error numbers worth retrying: the transient faults of Azure SQL Database (connection
/// throttling, failover, resource limits, service busy), the classic connection breaks, and
/// deadlock victims.
pub const TRANSIENT_ERRORS: &[u32] = &[
    615, 926, 1205, 4060, 4221, 10053, 10054, 10060, 10928, 10929, 40143, 40197, 40501, 40540,
    40613, 42108, 42109, 49918, 49919, 49920,
];

/// Azure SQL asks clients to wait this long after 40501 ("the service is currently busy").
const SERVICE_BUSY_WAIT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where Microsoft Entra ID access tokens for Azure SQL come from. Implemented over
/// `azure_core`'s `TokenCredential` in `entra`; tests may supply their own.
#[async_trait]
pub trait AccessTokenSource: Send + Sync {
    /// A bearer token for [`AZURE_SQL_SCOPE`], valid for at least the next few minutes.
    async fn token(&self) -> Result<String, BoxError>;
}

/// Errors of this adapter.
#[derive(Debug, thiserror::Error)]
pub enum MssqlError {
    #[error(transparent)]
    Sql(#[from] tiberius::error::Error),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("getting a Microsoft Entra ID access token: {0}")]
    Token(BoxError),
    #[error("no connection from the pool within {0:?}")]
    PoolTimedOut(Duration),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("the connection string is not valid: {0}")]
    BadConnectionString(String),
    #[error("unexpected result: {0}")]
    Unexpected(String),
}

/// Whether retrying can help.
pub fn verdict(error: &MssqlError) -> Verdict {
    match error {
        MssqlError::Sql(e) => sql_verdict(e),
        MssqlError::Connect { .. } | MssqlError::PoolTimedOut(_) | MssqlError::TimedOut(_) => {
            Verdict::Transient { retry_after: None }
        }
        // A token service that is down or throttling recovers; a misconfigured one does not,
        // but cannot be told apart here, and the retries are bounded.
        MssqlError::Token(_) => Verdict::Transient { retry_after: None },
        MssqlError::BadConnectionString(_) | MssqlError::Unexpected(_) => Verdict::Permanent,
    }
}

fn sql_verdict(error: &tiberius::error::Error) -> Verdict {
    use tiberius::error::Error;
    match error {
        Error::Server(e) if e.code() == 40501 => Verdict::Transient {
            retry_after: Some(SERVICE_BUSY_WAIT),
        },
        Error::Server(e) if TRANSIENT_ERRORS.contains(&e.code()) => {
            Verdict::Transient { retry_after: None }
        }
        // A broken stream or a connection that the server dropped mid-message.
        Error::Io { .. } | Error::Protocol(_) => Verdict::Transient { retry_after: None },
        _ => Verdict::Permanent,
    }
}

fn port_error(context: &str, e: MssqlError) -> PortError {
    match verdict(&e) {
        Verdict::Transient { .. } => PortError::transient(context, e),
        Verdict::Permanent => PortError::permanent(context, e),
    }
}

/// How connections authenticate.
#[derive(Clone)]
pub enum Auth {
    /// What the connection string says (a SQL login, or none).
    FromConnectionString,
    /// A Microsoft Entra ID token fetched for every new connection.
    Token(Arc<dyn AccessTokenSource>),
}

/// A connection target parsed from the connection string.
#[derive(Clone)]
pub struct Target {
    pub config: Config,
    pub auth: Auth,
}

/// Which Entra ID flow a connection string's `Authentication=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraAuth {
    /// `ActiveDirectoryDefault`: the developer tools' sign-in (Azure CLI, azd).
    Default,
    /// `ActiveDirectoryManagedIdentity` / `ActiveDirectoryMSI`; `User Id` picks a user-assigned
    /// identity by client id.
    ManagedIdentity { client_id: Option<String> },
}

/// Recognises the SQL Server connection string forms: ADO.NET (`Server=…;Database=…`) and
/// `sqlserver://host[:port];database=…` (the JDBC form without `jdbc:`).
pub fn is_mssql_connection_string(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("sqlserver://")
        || lower.starts_with("jdbc:sqlserver://")
        || [
            "server=",
            "data source=",
            "address=",
            "addr=",
            "network address=",
        ]
        .iter()
        .any(|k| lower.starts_with(k) || lower.contains(&format!(";{k}")))
}

/// Parses a connection string into the driver's config and the Entra ID flow it asks for.
/// Errors never quote the string (it may hold a password).
pub fn parse_connection_string(s: &str) -> Result<(Config, Option<EntraAuth>), MssqlError> {
    let bad = |what: &str| MssqlError::BadConnectionString(what.to_string());
    let trimmed = s.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("sqlserver://") || lower.starts_with("jdbc:sqlserver://") {
        let jdbc = if lower.starts_with("jdbc:") {
            trimmed.to_string()
        } else {
            format!("jdbc:{trimmed}")
        };
        let config =
            Config::from_jdbc_string(&jdbc).map_err(|_| bad("unparseable sqlserver:// string"))?;
        // The JDBC form's keys are read the same way as ADO.NET's for `authentication`.
        let rest = jdbc.split_once(';').map_or("", |(_, rest)| rest);
        let keys: connection_string::AdoNetString =
            rest.parse().map_err(|_| bad("unparseable properties"))?;
        return Ok((config, entra_auth(&keys)?));
    }
    let keys: connection_string::AdoNetString = trimmed
        .parse()
        .map_err(|_| bad("unparseable ADO.NET string"))?;
    let config = Config::from_ado_string(trimmed).map_err(|_| bad("unusable ADO.NET string"))?;
    Ok((config, entra_auth(&keys)?))
}

fn entra_auth(keys: &connection_string::AdoNetString) -> Result<Option<EntraAuth>, MssqlError> {
    let Some(method) = keys.get("authentication") else {
        return Ok(None);
    };
    let normalized: String = method
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match normalized.as_str() {
        "sqlpassword" => Ok(None),
        "activedirectorydefault" => Ok(Some(EntraAuth::Default)),
        "activedirectorymanagedidentity" | "activedirectorymsi" => {
            let client_id = ["user id", "uid", "user"]
                .iter()
                .find_map(|k| keys.get(*k).cloned());
            Ok(Some(EntraAuth::ManagedIdentity { client_id }))
        }
        _ => Err(MssqlError::BadConnectionString(format!(
            "Authentication={method} is not supported (SqlPassword, ActiveDirectoryDefault, \
             ActiveDirectoryManagedIdentity)"
        ))),
    }
}

/// One pooled connection; `clean` is false while a call is in flight, so a call that was cut
/// short (an error, a timeout) leaves it marked and the pool drops it.
pub struct Conn {
    client: Client<Compat<TcpStream>>,
    clean: bool,
}

/// Opens connections for the pool.
pub struct Manager {
    target: Target,
    timeout: Duration,
}

impl Manager {
    async fn open(&self) -> Result<Conn, MssqlError> {
        let mut config = self.target.config.clone();
        if let Auth::Token(source) = &self.target.auth {
            let token = source.token().await.map_err(MssqlError::Token)?;
            config.authentication(AuthMethod::aad_token(token));
        }
        config.handshake_timeout(Some(self.timeout));
        let client = match self.connect(&config).await {
            // Azure SQL's gateway may redirect the session to the node that holds the database.
            Err(MssqlError::Sql(tiberius::error::Error::Routing { host, port })) => {
                config.host(&host);
                config.port(port);
                self.connect(&config).await?
            }
            other => other?,
        };
        Ok(Conn {
            client,
            clean: true,
        })
    }

    async fn connect(&self, config: &Config) -> Result<Client<Compat<TcpStream>>, MssqlError> {
        let addr = config.get_addr();
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| MssqlError::Connect {
                addr: addr.clone(),
                source,
            })?;
        tcp.set_nodelay(true)
            .map_err(|source| MssqlError::Connect {
                addr: addr.clone(),
                source,
            })?;
        Ok(Client::connect(config.clone(), tcp.compat_write()).await?)
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = MssqlError;

    async fn connect(&self) -> Result<Conn, MssqlError> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(MssqlError::TimedOut(self.timeout)),
        }
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), MssqlError> {
        conn.client
            .simple_query("SELECT 1")
            .await?
            .into_results()
            .await?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        !conn.clean
    }
}

/// Statement text for one schema, built once.
#[derive(Debug, Clone)]
pub struct Statements {
    /// `[schema].` or empty for the login's default schema.
    pub prefix: String,
    pub create_stage: String,
    pub merge: String,
    pub read: String,
}

/// The staging table lives in the session; `COLLATE DATABASE_DEFAULT` keeps its `series`
/// comparable with the table's when tempdb's collation differs from the database's.
const STAGE: &str = "#daily_summary_stage";

fn quoted(column: &str) -> String {
    format!("[{column}]")
}

impl Statements {
    pub fn new(schema: Option<&str>) -> Self {
        let prefix = schema.map_or(String::new(), |s| format!("[{s}]."));
        let table = format!("{prefix}daily_summary");
        let create_stage = format!(
            "CREATE TABLE {STAGE} (
                series nvarchar(100) COLLATE DATABASE_DEFAULT NOT NULL, day date NOT NULL,
                [count] bigint NOT NULL, [sum] float NOT NULL, [min] float NOT NULL,
                [max] float NOT NULL, mean float NOT NULL, stddev float NULL,
                first_value float NOT NULL, first_ts datetimeoffset(7) NOT NULL,
                last_value float NOT NULL, last_ts datetimeoffset(7) NOT NULL,
                p50 float NOT NULL, p90 float NOT NULL, p99 float NOT NULL,
                revision bigint NOT NULL, computed_at datetimeoffset(7) NOT NULL,
                PRIMARY KEY (series, day))"
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
             WHEN MATCHED AND incoming.revision > stored.revision THEN
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
    pub fn insert_stage(rows: usize) -> String {
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

/// One bound parameter, typed as the column it fills.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
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
pub fn params(row: &SummaryRow) -> [Param; 17] {
    let s = &row.stats;
    let f = |v: f64| Param::Float(Some(v));
    [
        Param::Text(row.series.to_string()),
        Param::Date(row.day),
        Param::BigInt(s.count as i64),
        f(s.sum),
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
        Param::BigInt(row.revision),
        Param::Utc(row.computed_at),
    ]
}

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
}

impl MssqlSink {
    /// Connects (lazily) and applies pending schema migrations, retrying transient failures.
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
        };
        sink.migrate().await?;
        Ok(sink)
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

    /// Applies pending migrations; returns the schema version in force.
    pub async fn migrate(&self) -> PortResult<i32> {
        let prefix = self.statements.prefix.clone();
        let schema = self.options.schema.clone();
        on_connection!(
            self,
            "applying SQL Server schema migrations",
            |client| async {
                client
                .simple_query(
                    "SET XACT_ABORT ON; BEGIN TRANSACTION;
                     EXEC sp_getapplock @Resource = N'eventide_schema_migrations',
                        @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 30000;",
                )
                .await?
                .into_results()
                .await?;
                let mut setup = String::new();
                if let Some(schema) = &schema {
                    setup.push_str(&format!(
                        "IF SCHEMA_ID(N'{schema}') IS NULL EXEC(N'CREATE SCHEMA [{schema}]');\n"
                    ));
                }
                setup.push_str(&format!(
                    "IF OBJECT_ID(N'{prefix}eventide_schema_version', N'U') IS NULL
                    CREATE TABLE {prefix}eventide_schema_version (
                        version int NOT NULL PRIMARY KEY,
                        description nvarchar(200) NOT NULL,
                        applied_at datetimeoffset(7) NOT NULL DEFAULT SYSDATETIMEOFFSET());"
                ));
                client.simple_query(setup).await?.into_results().await?;
                let current = client
                    .simple_query(format!(
                        "SELECT ISNULL(MAX(version), 0) FROM {prefix}eventide_schema_version"
                    ))
                    .await?
                    .into_row()
                    .await?
                    .and_then(|row| row.get::<i32, _>(0))
                    .ok_or_else(|| MssqlError::Unexpected("no schema version row".into()))?;
                for migration in migrations::MSSQL.iter().filter(|m| m.version > current) {
                    client
                        .simple_query(migrations::render(migration, &prefix))
                        .await?
                        .into_results()
                        .await?;
                    client
                    .execute(
                        format!(
                            "INSERT INTO {prefix}eventide_schema_version (version, description) VALUES (@P1, @P2)"
                        ),
                        &[&migration.version, &migration.description],
                    )
                    .await?;
                }
                client
                    .simple_query("COMMIT TRANSACTION")
                    .await?
                    .into_results()
                    .await?;
                Ok(current.max(migrations::latest(migrations::MSSQL)))
            }
        )
    }
}

fn nanos(at: DateTime<Utc>) -> Result<i64, MssqlError> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| MssqlError::Unexpected(format!("timestamp {at} out of range")))
}

fn stored_row(row: &tiberius::Row) -> Result<SummaryRow, MssqlError> {
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
            sum: need(row, 3)?,
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
        revision: need(row, 15)?,
        computed_at: need(row, 16)?,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sql::rows::tests::row;

    #[test]
    fn the_merge_guards_the_revision_and_locks_the_key_range() {
        let s = Statements::new(Some("contract"));
        assert!(
            s.merge
                .starts_with("MERGE [contract].daily_summary WITH (HOLDLOCK) AS stored")
        );
        assert!(
            s.merge
                .contains("WHEN MATCHED AND incoming.revision > stored.revision THEN")
        );
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
        assert!(sql.contains("@P17), (@P18, @P19,"));
        assert!(sql.ends_with("@P34)"));
        let full = Statements::insert_stage(ROWS_PER_INSERT);
        let last = ROWS_PER_INSERT * COLUMNS.len();
        assert!(last < 2100, "SQL Server takes at most 2,100 parameters");
        assert!(full.ends_with(&format!("@P{last})")));
    }

    #[test]
    fn parameters_are_bound_with_the_column_types() {
        let mut r = row("Zürich/temp", "2026-11-24", 42, 1.25);
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
        assert_eq!(p[1], Param::Date(r.day));
        assert_eq!(
            p[9],
            Param::Utc(DateTime::from_timestamp_nanos(r.stats.first_ts))
        );
    }

    #[test]
    fn transient_errors_are_the_documented_ones() {
        for code in [
            4060, 40197, 40501, 40613, 49918, 49919, 49920, 10928, 10929, 1205,
        ] {
            assert!(TRANSIENT_ERRORS.contains(&code), "{code}");
        }
        assert_eq!(
            verdict(&MssqlError::TimedOut(Duration::from_secs(1))),
            Verdict::Transient { retry_after: None }
        );
        assert_eq!(
            sql_verdict(&tiberius::error::Error::Io {
                kind: std::io::ErrorKind::ConnectionReset,
                message: "reset".into()
            }),
            Verdict::Transient { retry_after: None }
        );
        assert_eq!(
            sql_verdict(&tiberius::error::Error::Conversion("bad".into())),
            Verdict::Permanent
        );
    }

    #[test]
    fn connection_strings_of_both_forms_are_recognised_and_parsed() {
        let ado = "Server=tcp:example.database.windows.net,1433;Database=stats;User Id=app;Password=s3cret;Encrypt=true";
        assert!(is_mssql_connection_string(ado));
        let (config, entra) = parse_connection_string(ado).unwrap();
        assert_eq!(config.get_addr(), "example.database.windows.net:1433");
        assert_eq!(entra, None);

        let managed = "Server=tcp:example.database.windows.net,1433;Database=stats;Authentication=Active Directory Managed Identity;User Id=1234";
        assert_eq!(
            parse_connection_string(managed).unwrap().1,
            Some(EntraAuth::ManagedIdentity {
                client_id: Some("1234".into())
            })
        );
        let default = "Server=example.database.windows.net;Database=stats;Authentication=ActiveDirectoryDefault";
        assert_eq!(
            parse_connection_string(default).unwrap().1,
            Some(EntraAuth::Default)
        );

        let url = "sqlserver://localhost:1433;database=stats;user=sa;password=s3cret;trustServerCertificate=true";
        assert!(is_mssql_connection_string(url));
        let (config, entra) = parse_connection_string(url).unwrap();
        assert_eq!(config.get_addr(), "localhost:1433");
        assert_eq!(entra, None);

        assert!(!is_mssql_connection_string("postgres://u@h/db"));
        assert!(!is_mssql_connection_string("sqlite:/tmp/x.db"));
        let e = parse_connection_string(
            "Server=x;Password=s3cret;Authentication=ActiveDirectoryInteractive",
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
    }
}
