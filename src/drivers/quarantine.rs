//! `eventide quarantine list|replay`: inspect what was quarantined, and re-submit it after a
//! fix. A replayed entry goes back to the queue its function reads, under a new MessageId (so
//! duplicate detection does not drop it), and leaves the quarantine; if it is still bad it is
//! quarantined again with its reason.

use serde::Serialize;

use super::local::Embedded;
use crate::adapters::embedded::quarantine::ListedEntry;
use crate::pipeline::ports::{Clock, MessageSender, OutgoingMessage};

/// What a replay did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    pub replayed: Vec<String>,
    /// Entries that cannot be replayed, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// The queue that feeds the function which quarantined an entry.
fn target<'a>(embedded: &'a Embedded, entry: &ListedEntry) -> Option<&'a dyn MessageSender> {
    match entry.function.as_str() {
        "process" | "observations" => Some(&embedded.observations),
        "summarize" | "summaries" => Some(&embedded.summaries),
        _ => None,
    }
}

/// Re-submits the entries with the given ids (all entries when `ids` is empty).
pub async fn replay(
    embedded: &Embedded,
    clock: &dyn Clock,
    ids: &[String],
) -> anyhow::Result<ReplayReport> {
    let entries = embedded.quarantine.list(usize::MAX >> 1).await?;
    let mut report = ReplayReport::default();
    for entry in entries
        .into_iter()
        .filter(|e| ids.is_empty() || ids.contains(&e.id))
    {
        let Some(queue) = target(embedded, &entry) else {
            let reason = format!("no queue feeds function {:?}", entry.function);
            report.skipped.push((entry.id, reason));
            continue;
        };
        let message = OutgoingMessage {
            message_id: format!("replay:{}:{}", entry.id, clock.now().timestamp_millis()),
            session_id: None,
            body: entry.body,
            scheduled_at: None,
        };
        queue.send(vec![message]).await?;
        embedded.quarantine.remove(entry.id.clone()).await?;
        report.replayed.push(entry.id);
    }
    for id in ids {
        if !report.replayed.contains(id) && !report.skipped.iter().any(|(s, _)| s == id) {
            report.skipped.push((id.clone(), "no such entry".into()));
        }
    }
    Ok(report)
}
