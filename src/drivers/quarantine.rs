//! `eventide quarantine list|replay`: inspect what was not processed, and re-submit it after a
//! fix. Works on every [`QuarantineSource`] in use: the quarantine the pipeline writes (the
//! embedded table, the Blob container, or both) and, for each queue on Service Bus, the
//! queue's dead-letter queue. A replayed entry goes back to the queue its function reads, under
//! a new MessageId (so duplicate detection does not drop it), and leaves its source; if it is
//! still bad it is quarantined again with its reason.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::pipeline::Ports;
use crate::pipeline::ports::{
    MessageSender, OutgoingMessage, PortResult, QuarantineEntry, QuarantineSource, Resubmission,
    Resubmit,
};

/// An entry as shown to an operator: the original bytes as text (invalid UTF-8 replaced).
#[derive(Debug, Serialize)]
pub struct ListedEntry<'a> {
    pub id: &'a str,
    pub at: DateTime<Utc>,
    pub function: &'a str,
    pub source: &'a str,
    pub reason: &'a str,
    pub body: std::borrow::Cow<'a, str>,
}

impl<'a> From<&'a QuarantineEntry> for ListedEntry<'a> {
    fn from(entry: &'a QuarantineEntry) -> Self {
        Self {
            id: &entry.id,
            at: entry.at,
            function: &entry.function,
            source: &entry.source,
            reason: &entry.reason,
            body: String::from_utf8_lossy(&entry.body),
        }
    }
}

/// What a replay did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    pub replayed: Vec<String>,
    /// Entries that cannot be replayed, with the reason.
    pub skipped: Vec<Skipped>,
}

/// An entry a replay left where it was.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

/// Up to `limit` entries of every source, newest first.
pub async fn list(
    quarantines: &[Arc<dyn QuarantineSource>],
    limit: usize,
) -> anyhow::Result<Vec<QuarantineEntry>> {
    let mut entries = Vec::new();
    for quarantine in quarantines {
        entries.extend(quarantine.list(limit).await?);
    }
    entries.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
    entries.truncate(limit);
    Ok(entries)
}

/// The queue that feeds the function which quarantined an entry.
fn target<'a>(ports: &'a Ports, entry: &QuarantineEntry) -> Option<&'a dyn MessageSender> {
    match entry.function.as_str() {
        "process" | "observations" => Some(ports.observations.as_ref()),
        "summarize" | "summaries" => Some(ports.summaries.as_ref()),
        _ => None,
    }
}

/// Sends an entry to the queue of its function under a new MessageId.
struct ToItsQueue<'a> {
    ports: &'a Ports,
}

#[async_trait]
impl Resubmit for ToItsQueue<'_> {
    async fn resubmit(&self, entry: &QuarantineEntry) -> PortResult<Resubmission> {
        let Some(queue) = target(self.ports, entry) else {
            return Ok(Resubmission::Declined {
                reason: format!("no queue feeds function {:?}", entry.function),
            });
        };
        let message = OutgoingMessage {
            message_id: format!(
                "replay:{}:{}",
                entry.id,
                self.ports.clock.now().timestamp_millis()
            ),
            session_id: None,
            body: entry.body.clone(),
            scheduled_at: None,
            trace_context: None,
        };
        queue.send(vec![message]).await?;
        Ok(Resubmission::Sent)
    }
}

/// Which entries a replay re-submits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every entry of every quarantine.
    All,
    /// The entries with these ids; an id that matches none is reported as skipped.
    Ids(Vec<String>),
    /// Every entry quarantined with exactly this reason (a group in the console).
    Reason(String),
}

impl Selection {
    /// The ids to ask `source` for; `None` when nothing there is selected. (An empty list asks
    /// a source for all of its entries.)
    async fn wanted(&self, source: &dyn QuarantineSource) -> PortResult<Option<Vec<String>>> {
        Ok(match self {
            Self::All => Some(Vec::new()),
            Self::Ids(ids) => Some(ids.clone()),
            Self::Reason(reason) => {
                let ids: Vec<String> = source
                    .list(usize::MAX >> 1)
                    .await?
                    .into_iter()
                    .filter(|entry| &entry.reason == reason)
                    .map(|entry| entry.id)
                    .collect();
                (!ids.is_empty()).then_some(ids)
            }
        })
    }
}

/// Re-submits the entries with the given ids (all entries when `ids` is empty) through the
/// pipeline's queues.
pub async fn replay(
    quarantines: &[Arc<dyn QuarantineSource>],
    ports: &Ports,
    ids: &[String],
) -> anyhow::Result<ReplayReport> {
    let selection = if ids.is_empty() {
        Selection::All
    } else {
        Selection::Ids(ids.to_vec())
    };
    replay_selected(quarantines, ports, &selection).await
}

/// Re-submits the selected entries through the pipeline's queues: the one replay behind both
/// `eventide quarantine replay` and the console's replay action.
pub async fn replay_selected(
    quarantines: &[Arc<dyn QuarantineSource>],
    ports: &Ports,
    selection: &Selection,
) -> anyhow::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let resubmit = ToItsQueue { ports };
    for quarantine in quarantines {
        let Some(wanted) = selection.wanted(quarantine.as_ref()).await? else {
            continue;
        };
        for replayed in quarantine.replay(&wanted, &resubmit).await? {
            match replayed.outcome {
                Resubmission::Sent => report.replayed.push(replayed.id),
                Resubmission::Declined { reason } => report.skipped.push(Skipped {
                    id: replayed.id,
                    reason,
                }),
            }
        }
    }
    let named: &[String] = match selection {
        Selection::Ids(ids) => ids,
        Selection::All | Selection::Reason(_) => &[],
    };
    for id in named {
        if !report.replayed.contains(id) && !report.skipped.iter().any(|s| &s.id == id) {
            report.skipped.push(Skipped {
                id: id.clone(),
                reason: "no such entry".into(),
            });
        }
    }
    Ok(report)
}
