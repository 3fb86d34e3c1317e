//! Test harness: a local runtime on a temporary file and a manual clock, a dataset with every
//! kind of trouble, and statistics computed independently of the crate. What the example
//! reports also need lives in the `eventide-testkit` crate.

pub mod handler;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use eventide::adapters::embedded::Embedded;
use eventide::app::{App, Config, Driver};
use eventide::drivers::server::Server;
use eventide::pipeline::clock::ManualClock;
use serde_json::Value;

/// Held by the tests that must not overlap one another in this one test binary: the heavy
/// ones, each of which keeps both cores of a CI machine busy for seconds (side by side they
/// only slow each other down and stretch their own deadlines), and the ones that time
/// something (a readiness or timeout figure means nothing while a heavy test runs beside
/// them). Every other test still runs next to them. A tokio mutex, so a failed test cannot
/// poison it for the rest of the run.
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until no other exclusive test runs; the guard keeps it so until dropped.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().await
}

/// [`exclusive`] for plain `#[test]` functions, which have no runtime to await in.
pub fn exclusive_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.blocking_lock()
}

/// The instant test clocks start at: after both dataset days ended.
pub const START: &str = "2026-11-20T12:00:00Z";

pub fn start() -> DateTime<Utc> {
    START.parse().unwrap()
}

pub struct TestApp {
    /// The running runtime (HTTP server, workers).
    pub server: Server,
    /// The application it runs.
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub base: String,
    pub client: reqwest::Client,
    /// Holds the runtime's database file until the app is dropped.
    _dir: tempfile::TempDir,
}

/// The settings every test starts from: the documented defaults (never the environment of the
/// shell running the tests) on a fresh file in `dir`, a free port, and no timer — the tests run
/// the end of day themselves.
pub fn settings(dir: &std::path::Path) -> Config {
    let mut config = eventide_testkit::settings(dir.join("eventide.db"));
    config.runtime.summarize_schedule = Some("0 0 0 1 1 *".into());
    config
}

/// Starts a local runtime on a fresh file; `configure` adjusts its settings first.
pub async fn spawn_app(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = settings(dir.path());
    configure(&mut config);
    launch(dir, &config, Driver::Local).await
}

/// Builds the application `config` describes, lets the test replace ports (a queue that is
/// down, a sink that refuses), and starts it behind `driver` on `clock`.
pub async fn serve_adjusted(
    config: &Config,
    driver: Driver,
    clock: Arc<ManualClock>,
    adjust: impl FnOnce(&mut App),
) -> Server {
    let mut app = App::build(config, driver, clock).await.unwrap();
    adjust(&mut app);
    Server::start(app, &config.runtime, driver).await.unwrap()
}

/// Waits until a child `eventide local` on `port` answers `/api/status` (at most 10 s); returns
/// its base URL (`http://127.0.0.1:port`).
pub async fn local_base_when_up(port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while reqwest::get(format!("{base}/api/status")).await.is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "eventide local did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    base
}

/// Runs the real binary's `eventide quarantine list` with only `settings` in its environment
/// and returns the entries it printed, one JSON object per line.
pub fn quarantine_list_cli(settings: &[(&str, &std::ffi::OsStr)]) -> Vec<Value> {
    let mut command = eventide_testkit::command(env!("CARGO_BIN_EXE_eventide"));
    command.args(["quarantine", "list"]);
    for (name, value) in settings {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// POSTs `body` to the ingest endpoint under `base` (`http://host:port`); returns the status
/// and the JSON reply.
pub async fn post_ingest(
    client: &reqwest::Client,
    base: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let response = client
        .post(format!("{base}/api/ingest"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Starts the application `config` describes behind `driver`, on a manual clock at [`start`];
/// `dir` holds its file for as long as the harness lives.
async fn launch(dir: tempfile::TempDir, config: &Config, driver: Driver) -> TestApp {
    let clock = Arc::new(ManualClock::new(start()));
    let server = Server::launch(config, driver, clock.clone()).await.unwrap();
    let base = format!("http://{}", server.addr);
    TestApp {
        app: server.app.clone(),
        server,
        clock,
        base,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl TestApp {
    /// The embedded adapters (every test runtime has some port on the embedded file).
    pub fn embedded(&self) -> &Embedded {
        self.app
            .embedded
            .as_ref()
            .expect("a port runs on the embedded file")
    }

    pub async fn post(&self, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        post_ingest(&self.client, &self.base, content_type, body).await
    }

    /// Waits until the observations queue is empty.
    pub async fn drain(&self) {
        for _ in 0..1500 {
            let status = self.app.status().await.unwrap();
            let q = status.queues.expect("embedded queues").observations;
            if q.active + q.deferred == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("observations queue did not drain");
    }

    /// Runs end-of-day ticks until one receives nothing.
    pub async fn end_of_day(&self) -> usize {
        let mut written = 0;
        loop {
            let tick = self.server.summarize_now().await;
            assert_eq!(tick.error, None);
            if tick.received == 0 {
                return written;
            }
            written += tick.written;
        }
    }

    pub async fn summaries(&self) -> Vec<Value> {
        let response = self
            .client
            .get(format!("{}/api/summaries", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json::<Vec<Value>>().await.unwrap()
    }
}

/// A tiny deterministic generator, so the dataset is the same in every run.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

pub const SERIES: [&str; 5] = [
    "plant-1/temp",
    "plant-2/temp",
    "ünïcode:flow",
    "line.3_pressure",
    "s-5",
];
const OFFSETS_MIN: [i32; 4] = [0, -300, 330, 120];

/// One observation of the dataset, with the UTC offset its timestamp is written in.
#[derive(Debug, Clone)]
pub struct Item {
    pub series: String,
    pub ts: DateTime<Utc>,
    pub value: f64,
    pub offset_min: i32,
}

impl Item {
    pub fn ts_text(&self) -> String {
        let offset = FixedOffset::east_opt(self.offset_min * 60).unwrap();
        self.ts.with_timezone(&offset).to_rfc3339()
    }

    pub fn json(&self) -> String {
        format!(
            r#"{{"series":"{}","ts":"{}","value":{}}}"#,
            self.series,
            self.ts_text(),
            self.value
        )
    }
}

/// The requests of the dataset, in order, and the clean data they add up to.
pub struct Dataset {
    pub requests: Vec<(&'static str, String)>,
    /// `(series, ts) -> value` after duplicates and corrections.
    pub clean: BTreeMap<(String, DateTime<Utc>), f64>,
    pub bad_rows: usize,
}

/// Five series over two days (2026-11-18 and -19, UTC), every 15 minutes, written with several
/// UTC offsets; sent as a shuffled JSON array with duplicates and bad items, a reversed NDJSON
/// body with bad lines, and a CSV of corrections with a bad row.
pub fn dataset() -> Dataset {
    let mut rng = Lcg(7);
    let day0 = Utc.with_ymd_and_hms(2026, 11, 18, 0, 0, 0).unwrap();
    let mut items = Vec::new();
    for (s, series) in SERIES.iter().enumerate() {
        for i in 0..(2 * 96) {
            let value = 1000.0 + s as f64 * 10.0 + (rng.next() % 100_000) as f64 / 997.0;
            items.push(Item {
                series: series.to_string(),
                ts: day0 + chrono::Duration::minutes(15 * i),
                value,
                offset_min: OFFSETS_MIN[rng.below(OFFSETS_MIN.len())],
            });
        }
    }
    let mut clean: BTreeMap<(String, DateTime<Utc>), f64> = items
        .iter()
        .map(|it| ((it.series.clone(), it.ts), it.value))
        .collect();
    rng.shuffle(&mut items);
    let split = items.len() * 6 / 10;
    let (first, second) = items.split_at(split);

    // A: a shuffled JSON array, 10% of it twice, with bad items.
    let mut a: Vec<String> = first.iter().map(Item::json).collect();
    a.extend(first.iter().step_by(10).map(Item::json));
    let bad_a = [
        r#"{"series":"plant-1/temp","ts":"2026-11-18T01:00:00Z","value":"warm"}"#,
        r#"{"series":"plant-1/temp","ts":"2026-11-18T01:00:00","value":1}"#,
        r#"{"series":"plant 1","ts":"2026-11-18T01:00:00Z","value":1}"#,
        r#"{"series":"plant-1/temp","ts":"2026-11-18T01:00:00Z"}"#,
        r#"{"series":"plant-1/temp","ts":"2026-11-18T01:00:00Z","value":1e400}"#,
    ];
    for (k, bad) in bad_a.iter().enumerate() {
        a.insert(k * 37 % a.len(), bad.to_string());
    }
    let body_a = format!("[{}]", a.join(","));

    // B: NDJSON in reverse order with bad lines.
    let mut b: Vec<String> = second.iter().rev().map(Item::json).collect();
    b.insert(3, "this is not json".into());
    b.insert(
        50,
        r#"[{"series":"a","ts":"2026-11-18T01:00:00Z","value":1}]"#.into(),
    );
    let body_b = b.join("\n") + "\n";

    // C: CSV corrections of 20 points (sent later, so they win), and a bad row.
    let mut c = vec!["series,ts,value,unit".to_string()];
    for it in items.iter().step_by(items.len() / 20).take(20) {
        let corrected = it.value + 0.5;
        clean.insert((it.series.clone(), it.ts), corrected);
        c.push(format!("{},{},{},C", it.series, it.ts_text(), corrected));
    }
    c.insert(5, "plant-1/temp,2026-11-18T02:00:00Z,inf,C".into());
    let body_c = c.join("\n") + "\n";

    Dataset {
        requests: vec![
            ("application/json", body_a),
            ("application/x-ndjson", body_b),
            ("text/csv", body_c),
        ],
        clean,
        bad_rows: bad_a.len() + 2 + 1,
    }
}

/// Statistics of one series-day computed the plain way, independently of the crate.
#[derive(Debug, Clone)]
pub struct Expected {
    pub count: usize,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: Option<f64>,
    pub first: (f64, DateTime<Utc>),
    pub last: (f64, DateTime<Utc>),
    pub p: [f64; 3],
}

pub fn expected(
    clean: &BTreeMap<(String, DateTime<Utc>), f64>,
) -> BTreeMap<(String, NaiveDate), Expected> {
    type Points = Vec<(DateTime<Utc>, f64)>;
    let mut days: BTreeMap<(String, NaiveDate), Points> = BTreeMap::new();
    for ((series, ts), value) in clean {
        days.entry((series.clone(), ts.date_naive()))
            .or_default()
            .push((*ts, *value));
    }
    days.into_iter()
        .map(|(key, mut points)| {
            points.sort_by_key(|p| p.0);
            let values: Vec<f64> = points.iter().map(|p| p.1).collect();
            let n = values.len() as f64;
            let sum: f64 = values.iter().sum();
            let mean = sum / n;
            let stddev = (values.len() > 1).then(|| {
                (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt()
            });
            let mut sorted = values.clone();
            sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let pct = |p: f64| {
                let r = p * (n - 1.0);
                let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
                sorted[lo] + (r - lo as f64) * (sorted[hi] - sorted[lo])
            };
            let e = Expected {
                count: values.len(),
                sum,
                min: sorted[0],
                max: *sorted.last().unwrap(),
                mean,
                stddev,
                first: (points[0].1, points[0].0),
                last: (points.last().unwrap().1, points.last().unwrap().0),
                p: [pct(0.5), pct(0.9), pct(0.99)],
            };
            (key, e)
        })
        .collect()
}

/// Why `got` is not `want` to within a relative 1e-9, if it is not.
fn not_close(what: &str, got: f64, want: f64) -> Option<String> {
    let err = (got - want).abs() / want.abs().max(1e-300);
    (err > 1e-9).then(|| format!("{what}: got {got}, want {want} (relative error {err:e})"))
}

/// How one summary row (as the API returns it) differs from the expected statistics.
fn row_differences(row: &Value, e: &Expected) -> Vec<String> {
    let mut differences = Vec::new();
    if row["count"].as_u64() != Some(e.count as u64) {
        differences.push(format!("count: got {}, want {}", row["count"], e.count));
    }
    for (field, want) in [
        ("sum", e.sum),
        ("min", e.min),
        ("max", e.max),
        ("mean", e.mean),
        ("first_value", e.first.0),
        ("last_value", e.last.0),
        ("p50", e.p[0]),
        ("p90", e.p[1]),
        ("p99", e.p[2]),
    ] {
        match row[field].as_f64() {
            Some(got) => differences.extend(not_close(field, got, want)),
            None => differences.push(format!("{field}: missing")),
        }
    }
    match (e.stddev, row["stddev"].as_f64()) {
        (Some(want), Some(got)) => differences.extend(not_close("stddev", got, want)),
        (None, None) => {}
        (want, _) => differences.push(format!("stddev: got {}, want {want:?}", row["stddev"])),
    }
    for (field, want) in [("first_ts", e.first.1), ("last_ts", e.last.1)] {
        let got = row[field]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok());
        if got != Some(want) {
            differences.push(format!("{field}: got {}, want {want}", row[field]));
        }
    }
    differences
}

/// One way a summary table differs from the expected series-days.
#[derive(Debug)]
pub struct Difference {
    /// The series-day: `(series, day)`.
    pub key: (String, NaiveDate),
    pub what: String,
}

/// Every way a table of summary rows differs from the expected series-days: missing rows,
/// rows nobody expected, and statistics that do not match.
pub fn table_differences(
    rows: &[Value],
    expected: &BTreeMap<(String, NaiveDate), Expected>,
) -> Vec<Difference> {
    let mut seen = std::collections::BTreeSet::new();
    let mut differences = Vec::new();
    for row in rows {
        let key = (
            row["series"].as_str().unwrap_or_default().to_string(),
            row["day"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .unwrap_or_default(),
        );
        let found: Vec<String> = match expected.get(&key) {
            Some(e) if seen.insert(key.clone()) => row_differences(row, e),
            Some(_) => vec!["a second row".into()],
            None => vec!["a row nobody expected".into()],
        };
        differences.extend(found.into_iter().map(|what| Difference {
            key: key.clone(),
            what,
        }));
    }
    differences.extend(
        expected
            .keys()
            .filter(|key| !seen.contains(*key))
            .map(|key| Difference {
                key: key.clone(),
                what: "no row".into(),
            }),
    );
    differences
}

/// Every row `sink` holds, as the JSON the comparisons above read.
pub async fn sink_rows(sink: &dyn eventide::pipeline::ports::SummarySink) -> Vec<Value> {
    let rows = sink.read(None, None).await.unwrap();
    rows.iter()
        .map(|row| serde_json::to_value(row).unwrap())
        .collect()
}

/// Asserts that summary rows (as the API returns them) equal the expected statistics.
pub fn assert_rows_match(rows: &[Value], expected: &BTreeMap<(String, NaiveDate), Expected>) {
    let differences = table_differences(rows, expected);
    assert!(differences.is_empty(), "{differences:#?}");
}

/// Rows without `computed_at`, the wall time of the computation.
pub fn without_computed_at(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .map(|row| {
            let mut row = row.clone();
            row.as_object_mut().unwrap().remove("computed_at");
            row
        })
        .collect()
}
