//! W1 through the emulated Azure stack on one machine (`eventide_testkit::azure_stack`):
//! `eventide loadgen` → the stand-in Functions host's HTTP front → the real handler's `/ingest`
//! → Service Bus fake → the stand-in host's trigger loops (batch size and concurrency from
//! `host.json`) → `/process` → series-day documents on the Cosmos DB SDK's emulator
//! (provisioned RU/s, throttling on) → timer → `/summarize` → PostgreSQL; quarantine on Azurite;
//! telemetry through the real Application Insights exporter to its loopback stand-in.
//!
//! ```sh
//! export EVENTIDE_TEST_POSTGRES=postgres://…  EVENTIDE_TEST_AZURITE='DefaultEndpointsProtocol=…'
//! cargo run --release --example reports -- azure_stack                       # W1 + end of day
//! cargo run --release --example reports -- azure_stack --series 100 --eod-series 1000
//! cargo run --release --example reports -- azure_stack --series-per-request 1  # a request per message
//! ```
//!
//! Two phases, each on a fresh stack:
//! 1. W1 (`--series` × `--points`, 10 points of each series at a time, in loadgen's W1 shape: every series in
//!    each request unless `--series-per-request` says otherwise) through loadgen, processed,
//!    then the day's summaries: RU per observation (processing, and with the summaries), 429
//!    share, goodput (share of the provisioned RU/s spent on successful work while processing),
//!    Service Bus operations per observation, and the telemetry bytes of the phase.
//! 2. End of day: `--eod-series` series-days pending (a few points each), the clock moved past
//!    their due time, and the wall time from then until every row is in PostgreSQL.
//!
//! Telemetry: the report is one process, so it installs the exporter once, as the binary does
//! when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set (see [`telemetry`]), observes phase 1's
//! application and flushes at the end of phase 1 as SIGTERM would; phase 2 exports nothing
//! (its spans go to the stopped exporter). With the default hourly metric interval the phase
//! holds one metric export, so its bytes per observation are read two ways: as measured at
//! full speed, and at W1's real-time rate (an export an hour plus the spans and log records,
//! which follow the invocations).

mod telemetry;

use crate::flags::{self, Flag};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use eventide::adapters::cosmos::settings::DEFAULT_LOG_SHARDS;
use eventide::drivers::loadgen::{self, LoadgenArgs};
use eventide_testkit::azure_stack::{AzureStack, StackOptions};
use eventide_testkit::fake_app_insights::FakeAppInsights;
use eventide_testkit::functions_host::{HostCounters, TriggerSettings};
use telemetry::Exporting;

struct Args {
    series: usize,
    points: usize,
    /// `None`: W1's shape, every series in each request.
    series_per_request: Option<usize>,
    eod_series: usize,
    provisioned: u64,
    partitions: u32,
    concurrency: usize,
    log_shards: u32,
}

fn args(argv: Vec<String>) -> Args {
    let mut a = Args {
        series: 1_000,
        points: 1_440,
        series_per_request: None,
        eod_series: 10_000,
        provisioned: 10_000,
        partitions: 4,
        concurrency: 8,
        log_shards: DEFAULT_LOG_SHARDS,
    };
    for Flag { name, value } in flags::numbers(argv) {
        match name.as_str() {
            "--series" => a.series = value as usize,
            "--points" => a.points = value as usize,
            "--series-per-request" => a.series_per_request = Some(value as usize),
            "--eod-series" => a.eod_series = value as usize,
            "--provisioned" => a.provisioned = value,
            "--partitions" => a.partitions = value as u32,
            "--concurrency" => a.concurrency = value as usize,
            "--log-shards" => a.log_shards = value as u32,
            other => flags::unknown(
                other,
                "--series, --points, --series-per-request, --eod-series, --provisioned, --partitions, --concurrency, --log-shards",
            ),
        }
    }
    a
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

fn peer(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} is not set: the stack's sink is a real PostgreSQL and its quarantine a real Azurite");
        std::process::exit(2)
    })
}

async fn stack(args: &Args, phase: &str) -> AzureStack {
    AzureStack::start(StackOptions {
        provisioned_ru: args.provisioned,
        partitions: args.partitions,
        postgres: peer("EVENTIDE_TEST_POSTGRES"),
        azurite: peer("EVENTIDE_TEST_AZURITE"),
        name: format!("stack{}{phase}", std::process::id()),
        // Ten minutes after the day ended: the whole day is in the past and still open.
        now: Utc.from_utc_datetime(&day().and_hms_opt(0, 0, 0).unwrap()) + Duration::minutes(1450),
        trigger: TriggerSettings::from_host_json(),
        log_shards: args.log_shards,
    })
    .await
    .expect("the stack starts")
}

fn loadgen_args(target: String, args: &Args, series: usize, points: usize) -> LoadgenArgs {
    LoadgenArgs {
        series: Some(series),
        points: Some(points),
        points_per_message: Some(10),
        series_per_request: args.series_per_request,
        day: Some(day()),
        concurrency: args.concurrency,
        request_timeout: 120,
        ..LoadgenArgs::against(target)
    }
}

pub fn run(argv: Vec<String>) {
    let args = args(argv);
    // The exporter's HTTPS client trusts the stand-in's test CA through `SSL_CERT_FILE`, as the
    // exporting tests' child processes do. SAFETY: set before the runtime starts, while this
    // is the process's only thread, so nothing reads the environment meanwhile.
    unsafe { std::env::set_var("SSL_CERT_FILE", FakeAppInsights::CA_FILE) };
    tokio::runtime::Runtime::new()
        .expect("a tokio runtime")
        .block_on(report(args));
}

async fn report(args: Args) {
    let mut exporting = Exporting::install().await;
    let trigger = TriggerSettings::from_host_json();
    println!("The emulated Azure stack on one machine:");
    println!(
        "  real:       the handler's contract router (eventide serve's), PostgreSQL (sink), Azurite (quarantine)"
    );
    println!(
        "  emulator:   Cosmos DB, the SDK's in-memory emulator: {} RU/s provisioned over {} partitions, throttling on",
        args.provisioned, args.partitions
    );
    println!("  fake:       Service Bus (FakeServiceBus, a loopback fake of the REST contract)");
    println!(
        "  stand-in:   the Functions host (FunctionsHost: HTTP front, Service Bus trigger with maxMessageBatchSize {} and maxConcurrentCalls {} from host.json, timer)",
        trigger.max_message_batch_size, trigger.max_concurrent_calls
    );
    println!(
        "  stand-in:   Application Insights (FakeAppInsights: the ingestion endpoint, counting what the real exporter sends)"
    );

    // Phase 1: W1.
    let s = stack(&args, "w1").await;
    exporting.observe(&s.app);
    let started = Instant::now();
    let report = loadgen::execute(&loadgen_args(
        s.host.front_url(),
        &args,
        args.series,
        args.points,
    ))
    .await
    .expect("loadgen runs");
    assert!(report.errors.is_empty(), "loadgen: {:?}", report.errors);
    let observations = report.accepted;
    s.processed(StdDuration::from_secs(3_600))
        .await
        .expect("processed");
    let processing = started.elapsed();
    let cosmos_process = s.cosmos();
    let bus_process = s.service_bus();
    s.clock.advance(Duration::hours(1));
    let summarizing = s
        .summarized(args.series as u64, StdDuration::from_secs(3_600))
        .await
        .expect("summarized");
    let cosmos_total = s.cosmos();
    let bus_total = s.service_bus();
    let rows = s.sink.read(None, Some(day())).await.expect("rows").len();
    let run = started.elapsed();
    let exported = exporting.flush().await;
    let n = observations as f64;
    println!();
    println!(
        "W1: {} series x {} points, 10 points of each series at a time, {} series per request: {} requests, {observations} observations accepted, {} rejected, errors {:?}",
        args.series,
        args.points,
        args.series_per_request.unwrap_or(args.series),
        report.requests,
        report.rejected,
        report.errors
    );
    println!(
        "  loadgen: {:.0} observations/s answered by the front (p50 {:.1} ms, p99 {:.1} ms); processed {:.1} s after the first request ({:.0} observations/s)",
        report.achieved_rate,
        report.latency_ms.p50,
        report.latency_ms.p99,
        processing.as_secs_f64(),
        n / processing.as_secs_f64()
    );
    println!(
        "  host: {} /process invocations ({} failed and abandoned), {} messages delivered; {} /summarize invocations",
        HostCounters::get(&s.host.counters.process_invocations),
        HostCounters::get(&s.host.counters.process_failures),
        HostCounters::get(&s.host.counters.messages_delivered),
        HostCounters::get(&s.host.counters.summarize_invocations),
    );
    println!(
        "  Cosmos DB, processing: {:.0} RU = {:.3} RU per observation ({:.0} RU on lost races and failed attempts); {} requests, {} answered 429 ({:.2}%); goodput {:.1}% of {} RU/s over {:.1} s",
        cosmos_process.request_units,
        cosmos_process.request_units / n,
        cosmos_process.wasted_request_units,
        cosmos_process.requests,
        cosmos_process.throttled,
        100.0 * cosmos_process.throttled_share(),
        100.0 * cosmos_process.goodput(args.provisioned, processing),
        args.provisioned,
        processing.as_secs_f64()
    );
    println!("    by operation: {}", cosmos_process.breakdown());
    let summaries = cosmos_total.since(&cosmos_process);
    println!(
        "  Cosmos DB, summaries: {:.0} RU ({:.1} RU per series-day) in {:.1} s; with them {:.3} RU per observation",
        summaries.request_units,
        summaries.request_units / args.series as f64,
        summarizing.as_secs_f64(),
        cosmos_total.request_units / n
    );
    println!("    by operation: {}", summaries.breakdown());
    println!(
        "  Service Bus (fake's counts): {} billed operations (sends {} + receives {} + schedules {} + receives {}) = {:.4} per observation ({:.4} while processing); settles {}, empty receives {}",
        bus_total.billed(),
        bus_total.observations.messages_sent,
        bus_total.observations.received,
        bus_total.summaries.messages_scheduled,
        bus_total.summaries.received,
        bus_total.billed() as f64 / n,
        bus_process.billed() as f64 / n,
        bus_total.settles(),
        bus_total.observations.empty_receives + bus_total.summaries.empty_receives,
    );
    println!("  PostgreSQL: {rows} summary rows for {}", day());
    // W1 spreads its points over the day: the observations of an hour at its real-time rate.
    exported.print(n, run, (args.series * args.points) as f64 / 24.0);
    assert_eq!(rows, args.series, "one row per series");
    s.stop().await;

    // Phase 2: the end of day for `eod_series` series-days.
    let s = stack(&args, "eod").await;
    let report = loadgen::execute(&loadgen_args(
        s.host.front_url(),
        &args,
        args.eod_series,
        10,
    ))
    .await
    .expect("loadgen runs");
    assert!(report.errors.is_empty(), "loadgen: {:?}", report.errors);
    s.processed(StdDuration::from_secs(3_600))
        .await
        .expect("processed");
    let before = s.cosmos();
    // The day's summaries come due: the clock moves past them.
    s.clock.advance(Duration::hours(1));
    let eod = s
        .summarized(args.eod_series as u64, StdDuration::from_secs(3_600))
        .await
        .expect("summarized");
    let cosmos = s.cosmos().since(&before);
    println!();
    println!(
        "End of day: {} series-days pending ({} observations), from their due time to every row in PostgreSQL: {:.1} s ({:.0} series-days/s); {} /summarize invocations; {:.0} RU ({:.1} per series-day), {} answered 429",
        args.eod_series,
        report.accepted,
        eod.as_secs_f64(),
        args.eod_series as f64 / eod.as_secs_f64(),
        HostCounters::get(&s.host.counters.summarize_invocations),
        cosmos.request_units,
        cosmos.request_units / args.eod_series as f64,
        cosmos.throttled
    );
    println!("    by operation: {}", cosmos.breakdown());
    s.stop().await;
}
