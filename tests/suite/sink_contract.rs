//! One contract for every summary sink, the same tests against each backend:
//! - SQLite: always (the embedded database).
//! - PostgreSQL: a real server at `EVENTIDE_TEST_POSTGRES` (a URL; `scripts/test` starts one and
//!   sets it). Unset: the PostgreSQL tests print that they were skipped and pass; set but
//!   unreachable: they fail.
//! - SQL Server / Azure SQL: a real server at `EVENTIDE_MSSQL` (a connection string), live
//!   only; unset: skipped with a message. No SQL Server runs on the CI machines.
//!
//! Each test gets a fresh database or schema of its own, so the tests run side by side.
//! The `outage` module runs the real pipeline against PostgreSQL behind a TCP proxy that it
//! closes and reopens: the day is written once the database is back, nothing lost, nothing doubled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use eventide::adapters::embedded::EmbeddedDb;
use eventide::adapters::sql::SinkOptions;
use eventide::adapters::sql::mssql::{
    Auth, ConnectionSettings, MssqlSink, Target, parse_connection_string,
};
use eventide::adapters::sql::postgres::PostgresSink;
use eventide::adapters::sql::sqlite::SqliteSink;
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::Revision;
use eventide::domain::stats::{DailyStats, SummaryRow};
use eventide::pipeline::ports::{ErrorKind, SummarySink};
use eventide::pipeline::retry::RetryPolicy;
use sqlx::postgres::PgConnectOptions;

use crate::kit;

/// A sink under test and what keeps its storage alive.
struct Backend {
    sink: Arc<dyn SummarySink>,
    /// Opens a second sink on the same storage (migrations run again).
    reopen: Box<dyn Fn() -> futures_reopen::Reopen + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
}

/// A boxed future opening a sink again; kept in its own module to name the type once.
mod futures_reopen {
    use super::*;
    pub type Reopen = std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn SummarySink>>>>;
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A schema name no other test (or earlier run) uses.
fn unique_schema(test: &str) -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!(
        "c_{}_{}_{}_{}",
        &test[..test.len().min(24)],
        std::process::id(),
        nanos % 1_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn quick_options(schema: String) -> SinkOptions {
    SinkOptions {
        schema: Some(schema),
        max_connections: 8,
        timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    }
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sink.db");
    let sink = Arc::new(SqliteSink::new(EmbeddedDb::open(&path).unwrap()));
    Backend {
        sink,
        reopen: Box::new(move || {
            let path = path.clone();
            Box::pin(async move {
                Arc::new(SqliteSink::new(EmbeddedDb::open(&path).unwrap())) as Arc<dyn SummarySink>
            })
        }),
        _dir: Some(dir),
    }
}

/// The test server's URL, or `None` (and a skip notice) when none is configured.
fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("EVENTIDE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIPPED {test} on PostgreSQL: EVENTIDE_TEST_POSTGRES is not set (scripts/test sets it)"
            );
            None
        }
    }
}

async fn postgres(test: &str) -> Option<Backend> {
    let url = postgres_url(test)?;
    let options: PgConnectOptions = url.parse().expect("EVENTIDE_TEST_POSTGRES is a URL");
    let sink_options = quick_options(unique_schema(test));
    let sink = PostgresSink::connect_with(options.clone(), sink_options.clone())
        .await
        .unwrap_or_else(|e| panic!("EVENTIDE_TEST_POSTGRES is set but unusable: {e}"));
    Some(Backend {
        sink: Arc::new(sink),
        reopen: Box::new(move || {
            let (options, sink_options) = (options.clone(), sink_options.clone());
            Box::pin(async move {
                Arc::new(
                    PostgresSink::connect_with(options, sink_options)
                        .await
                        .unwrap(),
                ) as Arc<dyn SummarySink>
            })
        }),
        _dir: None,
    })
}

async fn mssql(test: &str) -> Option<Backend> {
    let Ok(connection) = std::env::var("EVENTIDE_MSSQL") else {
        eprintln!(
            "SKIPPED {test} on SQL Server: EVENTIDE_MSSQL is not set (no SQL Server runs here)"
        );
        return None;
    };
    let ConnectionSettings { config, entra } =
        parse_connection_string(&connection).expect("EVENTIDE_MSSQL parses");
    assert!(
        entra.is_none(),
        "the live contract test uses SQL authentication; set a SQL login in EVENTIDE_MSSQL"
    );
    let target = Target {
        config,
        auth: Auth::FromConnectionString,
    };
    let sink_options = quick_options(unique_schema(test));
    let sink = MssqlSink::connect(target.clone(), sink_options.clone())
        .await
        .unwrap_or_else(|e| panic!("EVENTIDE_MSSQL is set but unusable: {e}"));
    Some(Backend {
        sink: Arc::new(sink),
        reopen: Box::new(move || {
            let (target, sink_options) = (target.clone(), sink_options.clone());
            Box::pin(async move {
                Arc::new(MssqlSink::connect(target, sink_options).await.unwrap())
                    as Arc<dyn SummarySink>
            })
        }),
        _dir: None,
    })
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn series(name: &str) -> SeriesId {
    SeriesId::parse(name).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A row whose every number depends on `seed`, so a replaced row is told from the original.
/// Timestamps are whole microseconds (what every backend stores exactly).
fn row(name: &str, on: &str, revision: i64, seed: f64) -> SummaryRow {
    let d = day(on);
    let start = d.and_hms_opt(0, 0, 0).unwrap().and_utc();
    SummaryRow {
        series: series(name),
        day: d,
        stats: DailyStats {
            count: 1440 + seed as u64 % 7,
            sum: Some(1440.0 * seed + 0.1),
            min: seed - 3.25,
            max: seed + 7.125,
            mean: seed + 1.0 / 3.0,
            stddev: if seed as i64 % 5 == 0 {
                None
            } else {
                Some(seed.sqrt() / 7.0)
            },
            first_value: seed - 1.5,
            first_ts: (start + chrono::Duration::microseconds(1_234_567))
                .timestamp_nanos_opt()
                .unwrap(),
            last_value: seed + 2.5e-7,
            last_ts: (start + chrono::Duration::seconds(86_399))
                .timestamp_nanos_opt()
                .unwrap(),
            p50: seed * 0.5,
            p90: seed * 0.9,
            p99: -seed * 1e-300,
        },
        revision: Revision::new(revision as u128),
        computed_at: at("2026-11-25T00:15:00.123456Z") + chrono::Duration::seconds(revision % 1000),
    }
}

fn sorted(mut rows: Vec<SummaryRow>) -> Vec<SummaryRow> {
    rows.sort_by(|a, b| (a.day, &a.series).cmp(&(b.day, &b.series)));
    rows
}

/// The contract, one function per property, each run against every backend.
mod cases {
    use super::*;

    pub async fn insert_and_read(b: &Backend) {
        let rows = vec![
            row("plant-1/temp", "2026-11-24", 10, 20.5),
            row("plant-2/temp", "2026-11-24", 11, 21.5),
            row("plant-1/temp", "2026-11-23", 12, 19.0),
        ];
        assert_eq!(b.sink.upsert(&rows).await.unwrap(), 3);
        let all = b.sink.read(None, None).await.unwrap();
        assert_eq!(
            all,
            sorted(rows.clone()),
            "exact round trip, ordered by day then series"
        );
        let one_day = b.sink.read(None, Some(day("2026-11-24"))).await.unwrap();
        assert_eq!(one_day, vec![rows[0].clone(), rows[1].clone()]);
        let one_series = b
            .sink
            .read(Some(&series("plant-1/temp")), None)
            .await
            .unwrap();
        assert_eq!(one_series, vec![rows[2].clone(), rows[0].clone()]);
        let one = b
            .sink
            .read(Some(&series("plant-2/temp")), Some(day("2026-11-24")))
            .await
            .unwrap();
        assert_eq!(one, vec![rows[1].clone()]);
        assert!(
            b.sink
                .read(Some(&series("nope")), None)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(b.sink.upsert(&[]).await.unwrap(), 0);
    }

    pub async fn higher_revision_replaces(b: &Backend) {
        let old = row("s", "2026-11-24", 100, 1.0);
        assert_eq!(b.sink.upsert(std::slice::from_ref(&old)).await.unwrap(), 1);
        let new = row("s", "2026-11-24", 101, 2.0);
        assert_eq!(b.sink.upsert(std::slice::from_ref(&new)).await.unwrap(), 1);
        assert_eq!(b.sink.read(None, None).await.unwrap(), vec![new]);
    }

    pub async fn lower_or_equal_revision_is_ignored(b: &Backend) {
        let stored = row("s", "2026-11-24", 100, 1.0);
        b.sink.upsert(std::slice::from_ref(&stored)).await.unwrap();
        let lower = row("s", "2026-11-24", 99, 5.0);
        let equal = row("s", "2026-11-24", 100, 6.0);
        assert_eq!(b.sink.upsert(&[lower]).await.unwrap(), 0);
        assert_eq!(b.sink.upsert(&[equal]).await.unwrap(), 0);
        assert_eq!(b.sink.read(None, None).await.unwrap(), vec![stored.clone()]);
        // In one batch with a new key: only the new key is written.
        let fresh = row("t", "2026-11-24", 1, 3.0);
        let batch = [row("s", "2026-11-24", 42, 9.0), fresh.clone()];
        assert_eq!(b.sink.upsert(&batch).await.unwrap(), 1);
        assert_eq!(b.sink.read(None, None).await.unwrap(), vec![stored, fresh]);
    }

    pub async fn batch_of_ten_thousand(b: &Backend) {
        let rows: Vec<SummaryRow> = (0..10_000)
            .map(|i| {
                row(
                    &format!("series-{:04}", i % 1000),
                    &format!("2026-11-{:02}", 10 + i / 1000),
                    1_000 + i as i64,
                    i as f64,
                )
            })
            .collect();
        assert_eq!(b.sink.upsert(&rows).await.unwrap(), 10_000);
        assert_eq!(b.sink.read(None, None).await.unwrap(), sorted(rows.clone()));
        // Again: nothing is newer.
        assert_eq!(b.sink.upsert(&rows).await.unwrap(), 0);
        // Every other row newer: exactly those are replaced.
        let next: Vec<SummaryRow> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let bump = if i % 2 == 0 { 1 } else { 0 };
                row(
                    r.series.as_str(),
                    &r.day.to_string(),
                    r.revision.value() as i64 + bump,
                    (i + bump as usize * 7) as f64,
                )
            })
            .collect();
        assert_eq!(b.sink.upsert(&next).await.unwrap(), 5_000);
        assert_eq!(b.sink.read(None, None).await.unwrap(), sorted(next));
        assert_eq!(
            b.sink
                .read(None, Some(day("2026-11-15")))
                .await
                .unwrap()
                .len(),
            1000
        );
    }

    pub async fn concurrent_writers_on_overlapping_keys(b: &Backend) {
        // Four writers, each writing all 300 keys in its own order and batches, with revisions
        // that interleave: the highest revision of every key must win, whoever came last.
        const KEYS: i64 = 300;
        const WRITERS: i64 = 4;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let sink = b.sink.clone();
            tasks.push(tokio::spawn(async move {
                let mut rows: Vec<SummaryRow> = (0..KEYS)
                    .map(|k| {
                        let revision = 10 * k + (k + w) % WRITERS;
                        row(
                            &format!("k{k:03}"),
                            "2026-11-24",
                            revision,
                            (w * 1000 + k) as f64,
                        )
                    })
                    .collect();
                kit::Lcg(w as u64 + 1).shuffle(&mut rows);
                let mut written = 0;
                for batch in rows.chunks(37) {
                    written += sink.upsert(batch).await.unwrap();
                }
                written
            }));
        }
        let mut written = 0;
        for task in tasks {
            written += task.await.unwrap();
        }
        let want: Vec<SummaryRow> = (0..KEYS)
            .map(|k| {
                let w = (0..WRITERS)
                    .find(|w| (k + w) % WRITERS == WRITERS - 1)
                    .unwrap();
                row(
                    &format!("k{k:03}"),
                    "2026-11-24",
                    10 * k + WRITERS - 1,
                    (w * 1000 + k) as f64,
                )
            })
            .collect();
        assert_eq!(b.sink.read(None, None).await.unwrap(), want);
        assert!(
            (KEYS as usize..=(KEYS * WRITERS) as usize).contains(&written),
            "every key written at least once, at most once per writer: {written}"
        );
    }

    pub async fn non_finite_numbers_never_reach_the_database(b: &Backend) {
        let good = row("good", "2026-11-24", 1, 1.0);
        for (column, value) in [
            ("sum", f64::INFINITY),
            ("mean", f64::NAN),
            ("stddev", f64::NEG_INFINITY),
            ("p99", f64::NAN),
        ] {
            let mut bad = row("bad", "2026-11-24", 1, 2.0);
            match column {
                "sum" => bad.stats.sum = Some(value),
                "mean" => bad.stats.mean = value,
                "stddev" => bad.stats.stddev = Some(value),
                _ => bad.stats.p99 = value,
            }
            let e = b.sink.upsert(&[good.clone(), bad]).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
            assert!(e.to_string().contains(column), "{e}");
            assert!(
                b.sink.read(None, None).await.unwrap().is_empty(),
                "a refused batch writes nothing, not even its good rows"
            );
        }
    }

    pub async fn unicode_series_names(b: &Backend) {
        let names = [
            "Zürich/temp",
            "東京:湿度",
            "Ελλάδα.πίεση",
            "Москва_1",
            "café-crème",
            // 100 characters, the longest series name.
            "ü".repeat(100).leak(),
        ];
        let rows: Vec<SummaryRow> = names
            .iter()
            .enumerate()
            .map(|(i, n)| row(n, "2026-11-24", 1, i as f64))
            .collect();
        assert_eq!(b.sink.upsert(&rows).await.unwrap(), names.len());
        let stored = b.sink.read(None, None).await.unwrap();
        assert_eq!(
            sorted(stored.clone())
                .iter()
                .map(|r| &r.series)
                .collect::<Vec<_>>(),
            sorted(rows.clone())
                .iter()
                .map(|r| &r.series)
                .collect::<Vec<_>>()
        );
        for r in &rows {
            let found = b.sink.read(Some(&r.series), None).await.unwrap();
            assert_eq!(found, vec![r.clone()], "{}", r.series);
        }
    }

    pub async fn migrations_are_idempotent(b: &Backend) {
        let r = row("s", "2026-11-24", 7, 1.0);
        b.sink.upsert(std::slice::from_ref(&r)).await.unwrap();
        // Opening again (twice at once) applies nothing new and keeps the data.
        let (again, twice) = tokio::join!((b.reopen)(), (b.reopen)());
        assert_eq!(again.read(None, None).await.unwrap(), vec![r.clone()]);
        assert_eq!(twice.read(None, None).await.unwrap(), vec![r]);
    }
}

macro_rules! contract {
    ($backend:ident, $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(backend) = super::open_backend(stringify!($backend), stringify!($case)).await {
                        super::cases::$case(&backend).await;
                    }
                }
            )*
        }
    };
}

async fn open_backend(backend: &str, test: &str) -> Option<Backend> {
    match backend {
        "sqlite" => Some(sqlite()),
        "postgres" => postgres(test).await,
        "mssql" => mssql(test).await,
        other => unreachable!("no backend {other}"),
    }
}

macro_rules! every_backend {
    ($($case:ident),* $(,)?) => {
        contract!(sqlite, $($case),*);
        contract!(postgres, $($case),*);
        contract!(mssql, $($case),*);
    };
}

every_backend!(
    insert_and_read,
    higher_revision_replaces,
    lower_or_equal_revision_is_ignored,
    batch_of_ten_thousand,
    concurrent_writers_on_overlapping_keys,
    non_finite_numbers_never_reach_the_database,
    unicode_series_names,
    migrations_are_idempotent,
);

/// `EVENTIDE_SUMMARY_SINK=postgres://…` reaches the server; the URL's `search_path` picks the
/// schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_selection_reaches_postgres() {
    use eventide::app::config::SinkTarget;
    use eventide::app::{App, Driver};
    use eventide::pipeline::clock::SystemClock;
    let Some(url) = postgres_url("backend_selection") else {
        return;
    };
    let schema = unique_schema("selection");
    let options: PgConnectOptions = url.parse().unwrap();
    // Creates the schema and its tables.
    PostgresSink::connect_with(options, quick_options(schema.clone()))
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let dir = tempfile::tempdir().unwrap();
    let mut config = eventide_testkit::settings(dir.path().join("e.db"));
    config.backends.summary_sink = Some(
        SinkTarget::parse(&format!(
            "{url}{separator}options=-c%20search_path%3D{schema}"
        ))
        .unwrap(),
    );
    let app = App::build(&config, Driver::Local, Arc::new(SystemClock))
        .await
        .unwrap();
    let sink = app.pipeline.ports.sink.clone();
    let r = row("via-url", "2026-11-24", 3, 4.0);
    assert_eq!(sink.upsert(std::slice::from_ref(&r)).await.unwrap(), 1);
    let direct = PostgresSink::connect_with(url.parse().unwrap(), quick_options(schema))
        .await
        .unwrap();
    assert_eq!(direct.read(None, None).await.unwrap(), vec![r]);
    // The embedded table saw nothing.
    let embedded = app.embedded.expect("the other ports are embedded").db;
    assert!(
        SqliteSink::new(embedded)
            .read(None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A TCP proxy in front of the database: the outage test closes and reopens it, the migration
/// test counts the statements that went through it.
mod proxy {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex as StdMutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Mutex;
    use tokio::task::{JoinHandle, JoinSet};

    pub struct Proxy {
        pub addr: SocketAddr,
        upstream: String,
        task: Mutex<Option<JoinHandle<()>>>,
        /// Every byte the clients sent, in arrival order.
        sent: Arc<StdMutex<Vec<u8>>>,
    }

    impl Proxy {
        pub async fn start(upstream: String) -> Proxy {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let sent = Arc::default();
            let task = tokio::spawn(serve(listener, upstream.clone(), Arc::clone(&sent)));
            Proxy {
                addr,
                upstream,
                task: Mutex::new(Some(task)),
                sent,
            }
        }

        /// Stops listening and cuts every open connection.
        pub async fn close(&self) {
            if let Some(task) = self.task.lock().await.take() {
                task.abort();
                let _ = task.await;
            }
            assert!(
                TcpStream::connect(self.addr).await.is_err(),
                "the port is closed"
            );
        }

        pub async fn open(&self) {
            let listener = TcpListener::bind(self.addr).await.unwrap();
            let task = serve(listener, self.upstream.clone(), Arc::clone(&self.sent));
            *self.task.lock().await = Some(tokio::spawn(task));
        }

        /// How many times the clients sent `text` (statement text travels as it is written
        /// unless the connection is encrypted).
        pub fn times_sent(&self, text: &str) -> usize {
            let sent = self.sent.lock().unwrap();
            sent.windows(text.len())
                .filter(|window| *window == text.as_bytes())
                .count()
        }
    }

    async fn serve(listener: TcpListener, upstream: String, sent: Arc<StdMutex<Vec<u8>>>) {
        // Dropped with this task, which aborts every connection it carries.
        let mut connections = JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            connections.spawn(relay(client, upstream.clone(), Arc::clone(&sent)));
        }
    }

    /// Carries one connection both ways, recording what the client sends.
    async fn relay(client: TcpStream, upstream: String, sent: Arc<StdMutex<Vec<u8>>>) {
        let Ok(server) = TcpStream::connect(&upstream).await else {
            return;
        };
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        let outbound = async {
            let mut buffer = vec![0; 64 * 1024];
            while let Ok(read @ 1..) = from_client.read(&mut buffer).await {
                sent.lock().unwrap().extend_from_slice(&buffer[..read]);
                if to_server.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown().await;
        };
        let inbound = async {
            let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
            let _ = to_client.shutdown().await;
        };
        tokio::join!(outbound, inbound);
    }
}

/// Opening a server-backed sink applies its migrations once, and so does each start through the
/// application builder (`App::build`, and `App::migrate` behind `eventide migrate`). A second run
/// would apply nothing and leave no row behind, so the runs are counted where they show: the
/// statement creating the version table crosses a proxy once per run (it goes by the simple
/// query protocol, never as a cached prepared statement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_per_start() {
    use azure_core::http::Url;
    use eventide::app::config::SinkTarget;
    use eventide::app::{App, Driver};
    use eventide::pipeline::clock::SystemClock;
    use sqlx::postgres::PgSslMode;

    let Some(url) = postgres_url("migrations_once") else {
        return;
    };
    let options: PgConnectOptions = url.parse().unwrap();
    let proxy = proxy::Proxy::start(format!("{}:{}", options.get_host(), options.get_port())).await;
    let schema = unique_schema("once");

    // In plain text, so the statements can be read on their way.
    let through_proxy = options
        .host("127.0.0.1")
        .port(proxy.addr.port())
        .ssl_mode(PgSslMode::Disable);
    let sink = PostgresSink::connect_with(through_proxy, quick_options(schema.clone()))
        .await
        .unwrap();
    assert_eq!(sink.schema_version(), 2);
    let in_schema = format!("CREATE TABLE IF NOT EXISTS \"{schema}\".eventide_schema_version");
    assert_eq!(proxy.times_sent(&in_schema), 1, "connect migrates once");

    // The drivers, on the schema created above (the URL's search_path picks it).
    let mut via_proxy = Url::parse(&url).unwrap();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.addr.port())).unwrap();
    via_proxy.set_query(Some(&format!(
        "sslmode=disable&options=-c%20search_path%3D{schema}"
    )));
    let dir = tempfile::tempdir().unwrap();
    let mut config = eventide_testkit::settings(dir.path().join("e.db"));
    config.backends.summary_sink = Some(SinkTarget::parse(via_proxy.as_ref()).unwrap());
    let on_path = "CREATE TABLE IF NOT EXISTS eventide_schema_version";
    App::build(&config, Driver::Local, Arc::new(SystemClock))
        .await
        .unwrap();
    assert_eq!(proxy.times_sent(on_path), 1, "App::build migrates once");
    let described = App::migrate(&config).await.unwrap();
    assert!(
        described.ends_with("summary sink: PostgreSQL, schema version 2"),
        "{described}"
    );
    assert_eq!(proxy.times_sent(on_path), 2, "App::migrate migrates once");
    assert_eq!(proxy.times_sent(&in_schema), 1);
}

/// PostgreSQL goes away during `summarize` (its port closes, open connections are cut) and
/// comes back: the due messages stay, the day is written on a later tick, once.
mod outage {
    use chrono::Duration as ChronoDuration;
    use eventide::app::{App, Driver};
    use eventide::domain::parse::BodyFormat;
    use eventide::pipeline::clock::ManualClock;
    use eventide::pipeline::ports::MessageReceiver;
    use eventide::pipeline::process::InboundMessage;

    use super::proxy::Proxy;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_down_during_summarize_loses_and_doubles_nothing() {
        let Some(url) = postgres_url("outage") else {
            return;
        };
        let options: PgConnectOptions = url.parse().unwrap();
        let proxy = Proxy::start(format!("{}:{}", options.get_host(), options.get_port())).await;
        let sink = PostgresSink::connect_with(
            options.host("127.0.0.1").port(proxy.addr.port()),
            SinkOptions {
                schema: Some(unique_schema("outage")),
                max_connections: 4,
                timeout: Duration::from_secs(2),
                retry: RetryPolicy {
                    max_attempts: 3,
                    base_delay: Duration::from_millis(50),
                    max_delay: Duration::from_millis(500),
                },
            },
        )
        .await
        .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let config = eventide_testkit::settings(dir.path().join("eventide.db"));
        let clock = Arc::new(ManualClock::new(kit::start()));
        let app = App::build(&config, Driver::Local, clock.clone())
            .await
            .unwrap();
        let embedded = app.embedded.expect("every other port is embedded");
        let mut pipeline = app.pipeline;
        pipeline.ports.sink = Arc::new(sink);

        let data = kit::dataset();
        let want = kit::expected(&data.clean);
        for (content_type, body) in data.requests {
            let format = BodyFormat::from_content_type(content_type).unwrap();
            pipeline.ingest(format, body.as_bytes()).await.unwrap();
            clock.advance(ChronoDuration::seconds(1));
        }
        let messages: Vec<InboundMessage> = embedded
            .observations
            .receive(100_000)
            .await
            .unwrap()
            .iter()
            .map(InboundMessage::from)
            .collect();
        pipeline.process(&messages).await.unwrap();
        clock.advance(ChronoDuration::minutes(6));

        // The database goes away: two ticks fail, abandon, and complete nothing.
        proxy.close().await;
        for _ in 0..2 {
            let tick = pipeline
                .summarize_tick(std::time::Duration::from_secs(60))
                .await;
            assert!(tick.error.is_some(), "{tick:?}");
            assert_eq!(tick.written, 0, "{tick:?}");
            assert_eq!(tick.abandoned, want.len(), "{tick:?}");
            let depth = embedded.summaries.depth().await.unwrap();
            assert_eq!(
                depth.active + depth.deferred,
                want.len() as u64,
                "every due message is still there"
            );
        }

        // Back: the next ticks write every day once and drain the queue.
        proxy.open().await;
        let mut written = 0;
        loop {
            let tick = pipeline
                .summarize_tick(std::time::Duration::from_secs(60))
                .await;
            assert_eq!(tick.error, None);
            written += tick.written;
            if tick.received == 0 {
                break;
            }
        }
        assert_eq!(written, want.len());
        let depth = embedded.summaries.depth().await.unwrap();
        assert_eq!(depth.active + depth.deferred, 0);
        let rows = pipeline.ports.sink.read(None, None).await.unwrap();
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        kit::assert_rows_match(&json, &want);

        // A late redelivery of the same day changes nothing.
        assert_eq!(pipeline.ports.sink.upsert(&rows).await.unwrap(), 0);
        assert_eq!(pipeline.ports.sink.read(None, None).await.unwrap(), rows);
    }
}
