//! Configuration shared by the drivers: every setting is a flag with an `EVENTIDE_*`
//! environment variable behind it, so app settings configure a deployment and flags a shell.

use std::path::PathBuf;

use anyhow::anyhow;
use chrono::Duration;

use super::backends::BackendArgs;
use crate::adapters::embedded::queue::QueueSettings;
use crate::domain::calendar::Calendar;
use crate::pipeline::Settings;

/// Parses `90s`, `10m`, `1h`, `2d` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 10m, 1h or 2d"))?;
    match unit {
        "ms" => Ok(Duration::milliseconds(n)),
        "s" => Ok(Duration::seconds(n)),
        "m" => Ok(Duration::minutes(n)),
        "h" => Ok(Duration::hours(n)),
        "d" => Ok(Duration::days(n)),
        _ => Err(format!(
            "{text:?} has an unknown unit (use ms, s, m, h or d)"
        )),
    }
}

/// Settings of the use cases.
#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// IANA time zone whose calendar days are summarized.
    #[arg(long, env = "EVENTIDE_TIME_ZONE", default_value = "UTC")]
    pub time_zone: String,
    /// How long after a day ends its summary is due.
    #[arg(long, env = "EVENTIDE_GRACE", default_value = "10m", value_parser = parse_duration)]
    pub grace: Duration,
    /// How long late data waits for more before the day is summarized again.
    #[arg(long, env = "EVENTIDE_SETTLE", default_value = "5m", value_parser = parse_duration)]
    pub settle: Duration,
    /// How long past due a pending summary may stay before reconcile reschedules it.
    #[arg(long, env = "EVENTIDE_RECONCILE_AFTER", default_value = "1h", value_parser = parse_duration)]
    pub reconcile_after: Duration,
}

impl PipelineArgs {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        Ok(Settings {
            calendar: Calendar::from_name(&self.time_zone).map_err(|e| anyhow!(e))?,
            grace: self.grace,
            settle: self.settle,
            reconcile_after: self.reconcile_after,
            ..Settings::default()
        })
    }
}

/// Settings of the embedded runtime.
#[derive(clap::Args, Debug, Clone)]
pub struct LocalArgs {
    /// The SQLite file holding documents, queues, quarantine and summaries.
    #[arg(long, env = "EVENTIDE_DB", default_value = "eventide.db")]
    pub db: PathBuf,
    /// Port of the local API on 127.0.0.1 (7071 is the port `func start` uses).
    #[arg(long, env = "EVENTIDE_PORT", default_value_t = 7071)]
    pub port: u16,
    /// Folder holding the function folders; the timer schedule comes from summarize/function.json.
    #[arg(long, env = "EVENTIDE_FUNCTIONS_DIR", default_value = "functions")]
    pub functions_dir: PathBuf,
    /// Overrides the summarize schedule (NCRONTAB with seconds).
    #[arg(long, env = "EVENTIDE_SUMMARIZE_SCHEDULE")]
    pub summarize_schedule: Option<String>,
    /// Time one summarize tick may take before it leaves the rest to the next tick.
    #[arg(long, env = "EVENTIDE_SUMMARIZE_BUDGET", default_value = "4m", value_parser = parse_duration)]
    pub summarize_budget: Duration,
    /// Concurrent workers pumping the observations queue.
    #[arg(long, env = "EVENTIDE_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Messages per process batch.
    #[arg(long, env = "EVENTIDE_BATCH", default_value_t = 256)]
    pub batch: usize,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "EVENTIDE_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Days a series-day is kept after its last write (the embedded TTL).
    #[arg(long, env = "EVENTIDE_RETENTION_DAYS", default_value_t = 2)]
    pub retention_days: u32,
    /// Peek-lock duration of both embedded queues.
    #[arg(long, env = "EVENTIDE_LOCK_DURATION", default_value = "1m", value_parser = parse_duration)]
    pub lock_duration: Duration,
    /// Deliveries after which a message is quarantined.
    #[arg(long, env = "EVENTIDE_MAX_DELIVERIES", default_value_t = 10)]
    pub max_deliveries: u32,
    /// Duplicate-detection window of both embedded queues.
    #[arg(long, env = "EVENTIDE_DEDUP_WINDOW", default_value = "2d", value_parser = parse_duration)]
    pub dedup_window: Duration,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub backends: BackendArgs,
}

impl LocalArgs {
    pub fn queue_settings(&self) -> QueueSettings {
        QueueSettings {
            lock_duration: self.lock_duration,
            max_deliveries: self.max_deliveries,
            dedup_window: self.dedup_window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::seconds(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::minutes(10));
        assert_eq!(
            parse_duration("250ms").unwrap(),
            Duration::milliseconds(250)
        );
        assert_eq!(parse_duration("2d").unwrap(), Duration::days(2));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
