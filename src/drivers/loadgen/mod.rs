//! `eventide loadgen`: drives any ingest endpoint — `eventide local`, or a deployed Function App
//! with its function key — with a named, reproducible workload, and reports offered and achieved
//! rate, latency percentiles, errors by kind and, when the target serves `/api/status`, how long
//! it took until everything was merged (and summarized) and what the target counted.
//!
//! [`workload`] decides what is sent, [`sender`] sends it, [`settle`] watches the target,
//! [`report`] tells. See docs/loadgen.md.

pub mod report;
pub mod sender;
pub mod settle;
pub mod workload;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use report::{Report, RunInfo, SegmentReport};
use sender::{Segment, Tally, Target};
use settle::{Goal, StatusProbe};
use workload::{BURST_BASE_RATE, BURST_FACTOR, Named, Pass, Request, Shape};

#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// Base URL of the target: `eventide local`'s, or a Function App's
    /// (`https://NAME.azurewebsites.net`); requests go to `/api/ingest`.
    #[arg(long, default_value = "http://127.0.0.1:7071")]
    pub target: String,
    /// A Function App's function key, sent as `x-functions-key`.
    #[arg(long, env = "EVENTIDE_LOADGEN_FUNCTIONS_KEY", hide_env_values = true)]
    pub functions_key: Option<String>,
    /// The named workload; the options below change its shape.
    #[arg(long, value_enum, default_value_t = Named::W1)]
    pub workload: Named,
    /// Series (W1: 1,000).
    #[arg(long)]
    pub series: Option<usize>,
    /// Points per series over the day, evenly spaced (W1: 1,440).
    #[arg(long)]
    pub points: Option<usize>,
    /// Points of one series a request carries at a time, what one series reports at once (W1:
    /// 10). Ingest packs a request's points, all its series together, into queue messages of up
    /// to 62 KiB; the report counts the messages the replies name.
    #[arg(long)]
    pub points_per_message: Option<usize>,
    /// Series whose messages one request carries (W1: every series, as one source reporting
    /// all its series at once sends them; 1: a request per series and message).
    #[arg(long)]
    pub series_per_request: Option<usize>,
    /// The UTC day the points belong to (default: today).
    #[arg(long)]
    pub day: Option<NaiveDate>,
    /// Seed of the generator: the same seed sends the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Observations per second to offer (the burst workload's base rate; default: unpaced, and
    /// 1,000/s for the burst).
    #[arg(long, conflicts_with = "duration")]
    pub rate: Option<f64>,
    /// Seconds to spread the first pass over (sets the rate).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Share of items with an invalid value.
    #[arg(long, default_value_t = 0.0)]
    pub bad_ratio: f64,
    /// Share of items stamped on a closed day.
    #[arg(long, default_value_t = 0.0)]
    pub late_ratio: f64,
    /// Share of valid points sent again with the same value, after the first pass.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_ratio: f64,
    /// Share of valid points sent again with a new value, after the first pass.
    #[arg(long, default_value_t = 0.0)]
    pub correction_ratio: f64,
    /// Also wait until every summarize message was handled (only a day that ended gets there).
    #[arg(long)]
    pub await_summaries: bool,
    /// Seconds to wait for the target to settle after the last reply.
    #[arg(long, default_value_t = 600)]
    pub settle_timeout: u64,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 60)]
    pub request_timeout: u64,
    /// Build every request body before the clock starts, so that the generator's own work does
    /// not compete with a target on the same machine (holds the whole workload in memory).
    #[arg(long)]
    pub build_first: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl LoadgenArgs {
    /// `eventide loadgen --target TARGET` with every other option at the command's default and
    /// no function key (the environment's `EVENTIDE_LOADGEN_FUNCTIONS_KEY` is for the command
    /// line only): the one place reports and tests start from, so a new option's default
    /// reaches them too.
    pub fn against(target: impl Into<String>) -> Self {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: LoadgenArgs,
        }
        let mut args = <Command as clap::Parser>::parse_from(["loadgen"]).args;
        args.target = target.into();
        args.functions_key = None;
        args
    }

    /// The workload's shape: the named workload's, changed by the options given.
    pub fn shape(&self) -> Shape {
        let series = self.series.unwrap_or(1_000);
        Shape {
            series,
            points: self.points.unwrap_or(1_440),
            points_per_message: self.points_per_message.unwrap_or(10),
            series_per_request: self.series_per_request.unwrap_or(series),
            day: self.day.unwrap_or_else(|| Utc::now().date_naive()),
            seed: self.seed,
            bad_ratio: self.bad_ratio,
            late_ratio: self.late_ratio,
            duplicate_ratio: self.duplicate_ratio,
            correction_ratio: self.correction_ratio,
        }
    }

    /// The segments to send, one after another.
    fn segments(&self, shape: &Shape) -> Vec<Segment> {
        let requests = shape.requests();
        let observations = shape.observations() as f64;
        // (name, requests, multiple of the base rate) of the first pass.
        let first: Vec<(&'static str, std::ops::Range<usize>, f64)> = match self.workload {
            Named::W1 => vec![("first pass", 0..requests, 1.0)],
            Named::Burst => {
                let third = requests / 3;
                vec![
                    ("before burst", 0..third, 1.0),
                    ("burst", third..2 * third, BURST_FACTOR),
                    ("after burst", 2 * third..requests, 1.0),
                ]
            }
        };
        let base_rate = match (self.rate, self.duration, self.workload) {
            (Some(rate), _, _) => Some(rate),
            (None, Some(duration), _) => {
                // Time at rate 1 of every segment, scaled to the duration asked for.
                let unit_time: f64 = first
                    .iter()
                    .map(|(_, range, factor)| {
                        observations * range.len() as f64 / requests as f64 / factor
                    })
                    .sum();
                Some(unit_time / duration.max(f64::EPSILON))
            }
            (None, None, Named::Burst) => Some(BURST_BASE_RATE),
            (None, None, Named::W1) => None,
        };
        let mut segments: Vec<Segment> = first
            .into_iter()
            .map(|(name, range, factor)| Segment {
                name,
                pass: Pass::First,
                requests: range,
                rate: base_rate.map(|r| r * factor),
            })
            .collect();
        if shape.duplicate_ratio + shape.correction_ratio > 0.0 {
            segments.push(Segment {
                name: "second pass",
                pass: Pass::Second,
                requests: 0..requests,
                rate: base_rate,
            });
        }
        segments
    }
}

/// Runs the workload `args` describes against its target and returns the report.
pub async fn execute(args: &LoadgenArgs) -> anyhow::Result<Report> {
    let shape = args.shape();
    shape.validate()?;
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0, "--rate must be positive");
    }
    let base = args.target.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.request_timeout))
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()
        .context("building the HTTP client")?;
    let target = Target {
        client,
        ingest: format!("{base}/api/ingest"),
        functions_key: args.functions_key.clone(),
    };
    let probe = StatusProbe::new(target.clone(), &base);
    let baseline = probe
        .read()
        .await
        .with_context(|| format!("reading {base}/api/status (is the target up?)"))?;

    let segments = args.segments(&shape);
    let requests_of = |segment: &Segment| {
        let (shape, pass) = (&shape, segment.pass);
        segment
            .requests
            .clone()
            .map(move |index| shape.request(pass, index))
    };
    let mut built: Vec<Vec<Option<Request>>> = match args.build_first {
        true => segments.iter().map(|s| requests_of(s).collect()).collect(),
        false => Vec::new(),
    };
    built.reverse();
    let progress = progress_bar(segments.iter().map(|s| s.requests.len() as u64).sum());
    let started = Instant::now();
    let mut total = Tally::default();
    let mut reports = Vec::new();
    for segment in &segments {
        progress.set_message(segment.name);
        let requests: Box<dyn Iterator<Item = Option<Request>> + Send + '_> = match built.pop() {
            Some(requests) => Box::new(requests.into_iter()),
            None => Box::new(requests_of(segment)),
        };
        let tally =
            sender::send_segment(&target, requests, segment, args.concurrency, &progress).await?;
        reports.push(SegmentReport::new(segment, &tally));
        total.merge(&tally);
    }
    progress.finish_and_clear();

    let settled = match &baseline {
        None => None,
        Some(baseline) => {
            let goal = Goal {
                accepted: total.accepted,
                await_summaries: args.await_summaries,
                timeout: Duration::from_secs(args.settle_timeout),
            };
            Some(settle::settle(&probe, baseline, started, &goal).await?)
        }
    };
    let info = RunInfo {
        target: base,
        workload: args.workload,
        shape,
        concurrency: args.concurrency,
    };
    Ok(Report::new(info, reports, &total, settled))
}

/// Runs and prints the report.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let report = execute(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// A bar over `len` requests on stderr; hidden when stderr is not a terminal.
fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} requests ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}
