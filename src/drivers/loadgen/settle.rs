//! Watching the target's `/api/status` (served by `eventide local`, not by a Function App) to
//! tell when everything a run sent was merged, and optionally summarized, and what the target
//! counted meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::sender::Target;

/// How often the status is read while waiting.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The part of `/api/status` a run reads (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct TargetStatus {
    pub queues: Option<Queues>,
    pub counters: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Queues {
    pub observations: Depth,
    pub summaries: Depth,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Depth {
    pub active: u64,
    pub deferred: u64,
}

impl Depth {
    fn total(self) -> u64 {
        self.active + self.deferred
    }
}

/// Reads `{base}/api/status`.
pub struct StatusProbe {
    target: Target,
    url: String,
}

impl StatusProbe {
    pub fn new(target: Target, base: &str) -> Self {
        Self {
            target,
            url: format!("{base}/api/status"),
        }
    }

    /// The target's status; `None` when it serves none (a Function App answers 404).
    pub async fn read(&self) -> anyhow::Result<Option<TargetStatus>> {
        let response = self.target.get(&self.url).send().await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = response.error_for_status()?;
        Ok(Some(response.json().await?))
    }
}

/// When the target had merged (and summarized) everything, and what it counted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settled {
    /// Seconds from the first request until the observations queue was empty and the target had
    /// processed every message it sent to it; `None` when that did not happen in time.
    pub merged_after_s: Option<f64>,
    /// Seconds from the first request until, in addition, every summarize message was handled
    /// and the summaries queue was empty; `None` when not awaited or not reached in time.
    pub summarized_after_s: Option<f64>,
    /// What the target's counters rose by during the run (`/api/status` `counters`).
    pub counters: BTreeMap<String, u64>,
}

/// What to wait for, and for how long.
pub struct Goal {
    /// Points the replies accepted: when any, the target must have sent messages for them.
    pub accepted: u64,
    pub await_summaries: bool,
    pub timeout: Duration,
}

/// Polls until `goal` is reached or its timeout passes, counting from `started`.
pub async fn settle(
    probe: &StatusProbe,
    baseline: &TargetStatus,
    started: Instant,
    goal: &Goal,
) -> anyhow::Result<Settled> {
    let waiting_since = Instant::now();
    let mut settled = Settled {
        merged_after_s: None,
        summarized_after_s: None,
        counters: BTreeMap::new(),
    };
    loop {
        let status = probe
            .read()
            .await?
            .ok_or_else(|| anyhow::anyhow!("the target stopped serving /api/status"))?;
        settled.counters = counter_deltas(baseline, &status);
        let count = |name: &str| settled.counters.get(name).copied().unwrap_or(0);
        let depth =
            |pick: fn(&Queues) -> Depth| status.queues.as_ref().map_or(0, |q| pick(q).total());
        // Messages, not points: a batch holding a point and its correction (or its duplicate)
        // merges one point, so `points_merged` may stay below what was accepted.
        if settled.merged_after_s.is_none()
            && depth(|q| q.observations) == 0
            && (goal.accepted == 0 || count("chunks_sent") > 0)
            && count("messages_processed") >= count("chunks_sent")
        {
            settled.merged_after_s = Some(started.elapsed().as_secs_f64());
        }
        let handled =
            count("summaries_written") + count("summaries_unchanged") + count("summarize_stale");
        if settled.merged_after_s.is_some()
            && goal.await_summaries
            && depth(|q| q.summaries) == 0
            && handled >= count("summaries_scheduled")
        {
            settled.summarized_after_s = Some(started.elapsed().as_secs_f64());
        }
        let done = settled.merged_after_s.is_some()
            && (!goal.await_summaries || settled.summarized_after_s.is_some());
        if done || waiting_since.elapsed() >= goal.timeout {
            return Ok(settled);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// How much each counter rose since `baseline`.
fn counter_deltas(baseline: &TargetStatus, now: &TargetStatus) -> BTreeMap<String, u64> {
    now.counters
        .iter()
        .map(|(name, value)| {
            let before = baseline.counters.get(name).copied().unwrap_or(0);
            (name.clone(), value.saturating_sub(before))
        })
        .collect()
}
