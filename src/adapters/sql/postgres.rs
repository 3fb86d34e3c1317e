//! The PostgreSQL summary sink, on `sqlx`.
//!
//! A batch is written as one `INSERT … SELECT FROM UNNEST(arrays) ON CONFLICT … DO UPDATE …
//! WHERE (stored.revision, stored.revision_low) < (excluded.revision, excluded.revision_low)`
//! per chunk of rows: one round trip per chunk with 18 array parameters, whatever the chunk's
//! size. The chunks are dealt into lanes written at once, one transaction per lane on its own
//! pooled connection ([`lanes`]). The revision guard is decided by the server under the row
//! lock, so concurrent writers cannot replace a newer row. Rows go in key order, so two writers
//! lock shared keys in the same order.
//!
//! Timestamps are `timestamptz`, which holds microseconds: sub-microsecond digits of
//! `first_ts`/`last_ts` are truncated on the way in.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
// Statement text is spliced only with a schema name checked by `check_schema_name`; every
// value is a bound parameter.
use sqlx::{AssertSqlSafe, Row};

use super::SinkOptions;
use super::migrations::{self, Migration};
use super::rows::{check_schema_name, latest_per_key, validate};
use crate::adapters::stored_series;
use crate::domain::series::SeriesId;
use crate::domain::series_day::{Revision, RevisionParts};
use crate::domain::stats::{DailyStats, SummaryRow};
use crate::pipeline::ports::{PortError, PortResult, SummarySink};
use crate::pipeline::retry::Verdict;

/// The most plaintext one TLS record carries (RFC 8446 §5.1).
const TLS_RECORD_BYTES: usize = 16 * 1024;
/// What one row adds to the upsert's Bind message besides its series name: 18 array elements,
/// each with its 4-byte length, 17 of them at most 8 bytes long.
const ROW_FIXED_BYTES: usize = 18 * 4 + 17 * 8;
/// The Bind header (statement name, parameter formats, 18 array headers), Execute, Close and
/// Sync, with room to spare.
const MESSAGE_OVERHEAD_BYTES: usize = 1024;

/// Splits rows into statements whose messages each fit one TLS record.
///
/// Why: over TLS, sqlx hands rustls's records to the socket one `send` at a time and never sets
/// `TCP_NODELAY`, so a message longer than one record went out as several small writes; Nagle's
/// algorithm held each write after the first until the server acknowledged the previous one,
/// and the server's delayed ACK made every upsert over 16 KB wait about 40 ms (seen with
/// `strace` on both ends: the last record sent ~44 ms after the first, the server idle
/// meanwhile; without TLS, one write and no wait). A message that fits one record is one write.
/// The price is a round trip per ~60 rows instead of one per batch, which costs far less than
/// a delayed ACK. See docs/backends.md.
fn statements<'r, 'a>(rows: &'r [&'a SummaryRow]) -> Vec<&'r [&'a SummaryRow]> {
    let budget = TLS_RECORD_BYTES - MESSAGE_OVERHEAD_BYTES;
    let mut statements = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let size = ROW_FIXED_BYTES + row.series.as_str().len();
        if i > start && bytes + size > budget {
            statements.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < rows.len() {
        statements.push(&rows[start..]);
    }
    statements
}

/// Deals a batch's statements round-robin into at most `connections` lanes, each written as one
/// transaction on its own pooled connection, all lanes at once.
///
/// Why: a statement is one round trip (see [`statements`]), and an end-of-day batch is several;
/// one after another on one connection, the batch waited for each in turn while the server and
/// the network idled between them (measured: a third of the end of day was waiting for
/// PostgreSQL). Lanes overlap those waits. Every statement stays a revision-guarded upsert of
/// distinct keys, so lanes need no common transaction: a retry after a lane failed rewrites
/// nothing the other lanes stored (their rows are found at the same revision, and counted as
/// not written). A lane takes its statements in key order, as the batch does, so concurrent
/// writers still lock shared keys in one order.
fn lanes<'s, 'a>(
    statements: Vec<&'s [&'a SummaryRow]>,
    connections: u32,
) -> Vec<Vec<&'s [&'a SummaryRow]>> {
    let count = statements.len().min(connections.max(1) as usize);
    let mut lanes: Vec<Vec<&[&SummaryRow]>> = vec![Vec::new(); count];
    for (i, statement) in statements.into_iter().enumerate() {
        lanes[i % count].push(statement);
    }
    lanes
}

/// Writes summary rows into PostgreSQL.
#[derive(Clone)]
pub struct PostgresSink {
    pool: PgPool,
    statements: Statements,
    options: SinkOptions,
    schema_version: i32,
}

/// Statement text for one schema, built once.
#[derive(Debug, Clone)]
pub struct Statements {
    /// The quoted schema the tables live in and a dot, or empty for the first schema on the
    /// connection's `search_path` (`public` unless the URL sets `options=-c search_path=…`).
    pub prefix: String,
    pub upsert: Arc<str>,
    pub read: Arc<str>,
}

impl Statements {
    pub fn new(schema: Option<&str>) -> Self {
        let prefix = match schema {
            Some(name) => format!("\"{name}\"."),
            None => String::new(),
        };
        let table = format!("{prefix}daily_summary");
        let upsert = format!(
            "INSERT INTO {table} AS stored (series, day, count, sum, min, max, mean, stddev,
                first_value, first_ts, last_value, last_ts, p50, p90, p99, revision, computed_at,
                revision_low)
             SELECT * FROM UNNEST($1::text[], $2::date[], $3::int8[], $4::float8[], $5::float8[],
                $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::timestamptz[],
                $11::float8[], $12::timestamptz[], $13::float8[], $14::float8[], $15::float8[],
                $16::int8[], $17::timestamptz[], $18::int8[])
             ON CONFLICT (series, day) DO UPDATE SET
                count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
                mean = excluded.mean, stddev = excluded.stddev, first_value = excluded.first_value,
                first_ts = excluded.first_ts, last_value = excluded.last_value,
                last_ts = excluded.last_ts, p50 = excluded.p50, p90 = excluded.p90,
                p99 = excluded.p99, revision = excluded.revision, computed_at = excluded.computed_at,
                revision_low = excluded.revision_low
             WHERE (stored.revision, stored.revision_low) < (excluded.revision, excluded.revision_low)"
        );
        let read = format!(
            "SELECT series, day, count, sum, min, max, mean, stddev, first_value, first_ts,
                    last_value, last_ts, p50, p90, p99, revision, computed_at, revision_low
             FROM {table}
             WHERE ($1::text IS NULL OR series = $1) AND ($2::date IS NULL OR day = $2)
             ORDER BY day, series"
        );
        Self {
            prefix,
            upsert: upsert.into(),
            read: read.into(),
        }
    }
}

/// Errors of this adapter that are not the driver's.
#[derive(Debug, thiserror::Error)]
pub enum PostgresSinkError {
    #[error("the connection string is not a valid PostgreSQL URL: {0}")]
    BadConnectionString(String),
    #[error("{0}")]
    BadSchema(String),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("timestamp {0} is outside the range of nanosecond timestamps")]
    TimestampOutOfRange(DateTime<Utc>),
}

/// Whether retrying can help, from the SQLSTATE class or the kind of failure.
pub fn verdict(error: &sqlx::Error) -> Verdict {
    let transient = match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| transient_sqlstate(&code)),
        _ => false,
    };
    if transient {
        Verdict::Transient { retry_after: None }
    } else {
        Verdict::Permanent
    }
}

/// Connection exceptions, serialization failures and deadlocks, lack of resources, operator
/// intervention (shutdown, restart, cancel), lock timeouts and system I/O errors.
pub fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("58")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03"
        )
}

/// One attempt's failure: a driver error or our own time bound.
#[derive(Debug, thiserror::Error)]
enum Attempt {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

fn attempt_verdict(e: &Attempt) -> Verdict {
    match e {
        Attempt::Sql(e) => verdict(e),
        Attempt::TimedOut(_) => Verdict::Transient { retry_after: None },
    }
}

fn port_error(context: &str, e: Attempt) -> PortError {
    match e {
        Attempt::Sql(e) => PortError::classified(verdict(&e), context, e),
        Attempt::TimedOut(after) => {
            PortError::transient(context, PostgresSinkError::TimedOut(after))
        }
    }
}

/// Parses a `postgres://` URL into the driver's options. The driver's parse error may quote the
/// URL, password included: only its kind is kept. A URL that says nothing about TLS gets
/// [`require_tls_beyond_loopback`].
pub fn connect_options(url: &str) -> PortResult<PgConnectOptions> {
    let connect = PgConnectOptions::from_str(url).map_err(|e| {
        let kind = match e {
            sqlx::Error::Configuration(_) => "invalid option",
            _ => "unparseable",
        };
        PortError::permanent(
            "configuring the PostgreSQL sink",
            PostgresSinkError::BadConnectionString(kind.into()),
        )
    })?;
    Ok(require_tls_beyond_loopback(url, connect))
}

/// A URL that says nothing about TLS (`sslmode` absent) gets `require` for a host beyond
/// loopback, instead of the driver's `prefer`, which falls back to plain text without a word:
/// the password and the data would cross the network in the clear. A URL that names its
/// `sslmode` keeps it; loopback and Unix sockets keep the default.
fn require_tls_beyond_loopback(url: &str, connect: PgConnectOptions) -> PgConnectOptions {
    let names_mode = url.to_ascii_lowercase().contains("sslmode=");
    let host = connect
        .get_host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let local = host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if names_mode || local {
        connect
    } else {
        connect.ssl_mode(sqlx::postgres::PgSslMode::Require)
    }
}

impl PostgresSink {
    /// Connects (lazily: connections are opened when first needed) and applies pending schema
    /// migrations, retrying transient failures. Migrations run here and nowhere else: a sink
    /// that exists has its table, and opening it once migrates once.
    pub async fn connect(url: &str, options: SinkOptions) -> PortResult<Self> {
        Self::connect_with(connect_options(url)?, options).await
    }

    /// As `connect`, from parsed options.
    pub async fn connect_with(connect: PgConnectOptions, options: SinkOptions) -> PortResult<Self> {
        if let Some(schema) = &options.schema {
            check_schema_name(schema).map_err(|e| {
                PortError::permanent(
                    "configuring the PostgreSQL sink",
                    PostgresSinkError::BadSchema(e),
                )
            })?;
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.timeout)
            .connect_lazy_with(connect.application_name("eventide"));
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

    /// Applies pending migrations; returns the schema version in force. Only `connect` calls it.
    async fn migrate(&self) -> PortResult<i32> {
        self.run("applying PostgreSQL schema migrations", || async {
            let mut tx = self.pool.begin().await?;
            // One migrator at a time per database; the lock ends with the transaction.
            sqlx::query("SELECT pg_advisory_xact_lock(7346500591)")
                .execute(&mut *tx)
                .await?;
            let prefix = &self.statements.prefix;
            if let Some(schema) = &self.options.schema {
                sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {prefix}eventide_schema_version (
                    version integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"
            )))
            .execute(&mut *tx)
            .await?;
            let current: i32 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT coalesce(max(version), 0) FROM {prefix}eventide_schema_version"
            )))
            .fetch_one(&mut *tx)
            .await?;
            for migration in pending(migrations::POSTGRES, current) {
                sqlx::raw_sql(AssertSqlSafe(migrations::render(migration, prefix)))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {prefix}eventide_schema_version (version, description) VALUES ($1, $2)"
                )))
                .bind(migration.version)
                .bind(migration.description)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(current.max(migrations::latest(migrations::POSTGRES)))
        })
        .await
    }

    /// Writes one lane's statements in one transaction on one pooled connection.
    ///
    /// A lane of one statement runs it alone, since a statement is its own transaction: one
    /// round trip instead of three (`BEGIN`, the statement, `COMMIT`). The end of day's batches
    /// of 256 rows are four statements when series names are about 20 bytes long, one a lane.
    async fn upsert_lane(&self, lane: &[&[&SummaryRow]]) -> Result<u64, sqlx::Error> {
        let upsert = |chunk: &[&SummaryRow]| {
            Columns::from_rows(chunk)
                .bind(sqlx::query(AssertSqlSafe(self.statements.upsert.clone())))
        };
        if let [chunk] = lane {
            return Ok(upsert(chunk).execute(&self.pool).await?.rows_affected());
        }
        let mut tx = self.pool.begin().await?;
        let mut written = 0;
        for chunk in lane {
            written += upsert(chunk).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `attempt` under the time bound, retrying transient failures.
    async fn run<T, Fut>(&self, context: &str, attempt: impl Fn() -> Fut) -> PortResult<T>
    where
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let timeout = self.options.timeout;
        self.options
            .retry
            .run(
                || async {
                    match tokio::time::timeout(timeout, attempt()).await {
                        Ok(result) => result.map_err(Attempt::Sql),
                        Err(_) => Err(Attempt::TimedOut(timeout)),
                    }
                },
                attempt_verdict,
            )
            .await
            .map_err(|e| port_error(context, e))
    }
}

fn pending(list: &[Migration], current: i32) -> impl Iterator<Item = &Migration> {
    list.iter().filter(move |m| m.version > current)
}

/// One chunk of rows as the 18 column arrays `UNNEST` takes.
#[derive(Debug, Default, PartialEq)]
pub struct Columns {
    pub series: Vec<String>,
    pub day: Vec<NaiveDate>,
    pub count: Vec<i64>,
    pub sum: Vec<Option<f64>>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub mean: Vec<f64>,
    pub stddev: Vec<Option<f64>>,
    pub first_value: Vec<f64>,
    pub first_ts: Vec<DateTime<Utc>>,
    pub last_value: Vec<f64>,
    pub last_ts: Vec<DateTime<Utc>>,
    pub p50: Vec<f64>,
    pub p90: Vec<f64>,
    pub p99: Vec<f64>,
    pub revision: Vec<i64>,
    pub computed_at: Vec<DateTime<Utc>>,
    pub revision_low: Vec<i64>,
}

impl Columns {
    /// Validated rows (`rows::validate`) into column arrays.
    pub fn from_rows(rows: &[&SummaryRow]) -> Self {
        let mut c = Columns::default();
        for row in rows {
            let s = &row.stats;
            c.series.push(row.series.to_string());
            c.day.push(row.day);
            c.count.push(s.count as i64);
            c.sum.push(s.sum);
            c.min.push(s.min);
            c.max.push(s.max);
            c.mean.push(s.mean);
            c.stddev.push(s.stddev);
            c.first_value.push(s.first_value);
            c.first_ts.push(DateTime::from_timestamp_nanos(s.first_ts));
            c.last_value.push(s.last_value);
            c.last_ts.push(DateTime::from_timestamp_nanos(s.last_ts));
            c.p50.push(s.p50);
            c.p90.push(s.p90);
            c.p99.push(s.p99);
            let revision = row.revision.parts().expect("validated rows have parts");
            c.revision.push(revision.high);
            c.computed_at.push(row.computed_at);
            c.revision_low.push(revision.low);
        }
        c
    }

    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.series)
            .bind(self.day)
            .bind(self.count)
            .bind(self.sum)
            .bind(self.min)
            .bind(self.max)
            .bind(self.mean)
            .bind(self.stddev)
            .bind(self.first_value)
            .bind(self.first_ts)
            .bind(self.last_value)
            .bind(self.last_ts)
            .bind(self.p50)
            .bind(self.p90)
            .bind(self.p99)
            .bind(self.revision)
            .bind(self.computed_at)
            .bind(self.revision_low)
    }
}

fn nanos(at: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| sqlx::Error::Decode(Box::new(PostgresSinkError::TimestampOutOfRange(at))))
}

fn stored_row(r: &PgRow) -> Result<SummaryRow, sqlx::Error> {
    let count: i64 = r.try_get(2)?;
    Ok(SummaryRow {
        series: stored_series::parse(r.try_get(0)?)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        day: r.try_get(1)?,
        stats: DailyStats {
            count: u64::try_from(count).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            sum: r.try_get(3)?,
            min: r.try_get(4)?,
            max: r.try_get(5)?,
            mean: r.try_get(6)?,
            stddev: r.try_get(7)?,
            first_value: r.try_get(8)?,
            first_ts: nanos(r.try_get(9)?)?,
            last_value: r.try_get(10)?,
            last_ts: nanos(r.try_get(11)?)?,
            p50: r.try_get(12)?,
            p90: r.try_get(13)?,
            p99: r.try_get(14)?,
        },
        revision: Revision::from_parts(RevisionParts {
            high: r.try_get(15)?,
            low: r.try_get(17)?,
        }),
        computed_at: r.try_get(16)?,
    })
}

#[async_trait]
impl SummarySink for PostgresSink {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
        validate(rows)?;
        let rows = latest_per_key(rows);
        if rows.is_empty() {
            return Ok(0);
        }
        let lanes = lanes(statements(&rows), self.options.max_connections);
        self.run("upserting daily summaries into PostgreSQL", || async {
            let written =
                futures::future::try_join_all(lanes.iter().map(|lane| self.upsert_lane(lane)))
                    .await?;
            Ok(written.into_iter().sum::<u64>() as usize)
        })
        .await
    }

    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> PortResult<Vec<SummaryRow>> {
        self.run("reading daily summaries from PostgreSQL", || async {
            let rows = sqlx::query(AssertSqlSafe(self.statements.read.clone()))
                .bind(series.map(SeriesId::as_str))
                .bind(day)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(stored_row).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sql::rows::tests::row;

    #[test]
    fn tls_is_required_beyond_loopback_unless_the_url_says_otherwise() {
        let mode = |url: &str| {
            let options = PgConnectOptions::from_str(url).unwrap();
            format!(
                "{:?}",
                require_tls_beyond_loopback(url, options).get_ssl_mode()
            )
        };
        assert_eq!(mode("postgres://u:p@db.example.com/x"), "Require");
        assert_eq!(
            mode("postgres://u:p@db.example.com/x?sslmode=disable"),
            "Disable"
        );
        assert_eq!(
            mode("postgres://u:p@db.example.com/x?sslmode=verify-full"),
            "VerifyFull"
        );
        assert_eq!(mode("postgres://u:p@127.0.0.1/x"), "Prefer");
        assert_eq!(mode("postgres://u:p@localhost:5433/x"), "Prefer");
    }

    #[test]
    fn each_statement_fits_one_tls_record_and_every_row_is_in_one() {
        let long = "s".repeat(100);
        let rows: Vec<SummaryRow> = (0..500)
            .map(|i| row(if i % 3 == 0 { &long } else { "a/b" }, "2026-11-24", 1, 1.0))
            .collect();
        let refs: Vec<&SummaryRow> = rows.iter().collect();
        let statements = statements(&refs);
        assert!(statements.len() > 1);
        assert_eq!(
            statements.iter().map(|s| s.len()).sum::<usize>(),
            rows.len()
        );
        for statement in &statements {
            let bytes: usize = statement
                .iter()
                .map(|r| ROW_FIXED_BYTES + r.series.as_str().len())
                .sum();
            assert!(bytes + MESSAGE_OVERHEAD_BYTES <= TLS_RECORD_BYTES);
        }
        assert!(super::statements(&[]).is_empty());
    }

    #[test]
    fn lanes_deal_statements_in_key_order_up_to_the_pool_size() {
        let rows: Vec<SummaryRow> = (0..7)
            .map(|i| row(&format!("s{i}"), "2026-11-24", 1, 1.0))
            .collect();
        let refs: Vec<&SummaryRow> = rows.iter().collect();
        let statements: Vec<&[&SummaryRow]> = refs.chunks(1).collect();
        let dealt = lanes(statements.clone(), 3);
        let names = |lane: &Vec<&[&SummaryRow]>| -> Vec<String> {
            lane.iter().map(|s| s[0].series.to_string()).collect()
        };
        assert_eq!(dealt.len(), 3);
        assert_eq!(names(&dealt[0]), ["s0", "s3", "s6"]);
        assert_eq!(names(&dealt[1]), ["s1", "s4"]);
        assert_eq!(lanes(statements[..2].to_vec(), 4).len(), 2, "no empty lane");
        assert_eq!(lanes(statements, 0).len(), 1, "at least one");
    }

    #[test]
    fn statements_name_the_schema_and_guard_the_revision() {
        let s = Statements::new(Some("contract_x"));
        assert!(
            s.upsert
                .starts_with("INSERT INTO \"contract_x\".daily_summary AS stored")
        );
        assert!(s.upsert.contains(
            "WHERE (stored.revision, stored.revision_low) < (excluded.revision, excluded.revision_low)"
        ));
        assert_eq!(s.upsert.matches("::").count(), 18);
        assert!(Statements::new(None).read.contains("FROM daily_summary"));
    }

    #[test]
    fn rows_become_column_arrays_in_order() {
        let (a, mut b) = (
            row("a", "2026-11-24", (1 << 64) + 1, 1.5),
            row("b", "2026-11-24", (2 << 64) + 2, 2.5),
        );
        b.stats.stddev = None;
        let c = Columns::from_rows(&[&a, &b]);
        assert_eq!(c.series, ["a", "b"]);
        assert_eq!(c.revision, [1, 2]);
        assert_eq!(c.revision_low, [i64::MIN + 1, i64::MIN + 2]);
        assert_eq!(c.stddev, [Some(0.0), None]);
        assert_eq!(c.first_ts[0].timestamp_nanos_opt(), Some(a.stats.first_ts));
    }

    #[test]
    fn sqlstates_are_classified() {
        for code in [
            "08006", "08001", "40001", "40P01", "53300", "57P01", "57P03", "57014",
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "22003", "42P01", "42601", "28P01"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
        assert_eq!(
            verdict(&sqlx::Error::PoolTimedOut),
            Verdict::Transient { retry_after: None }
        );
        assert_eq!(verdict(&sqlx::Error::RowNotFound), Verdict::Permanent);
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_echoing_it() {
        let e = PostgresSink::connect(
            "postgres://u:s3cret@host:notaport/db",
            SinkOptions::default(),
        )
        .await
        .err()
        .unwrap();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
