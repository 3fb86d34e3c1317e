//! `process`: merge a batch of observation messages into the series-day store and make sure each
//! changed day has exactly one outstanding summarize message.
//!
//! Per series-day and batch the store is read once and written once, whatever the number of
//! messages and points. For each changed day, in this order:
//! 1. write the merged points, conditional on what was read;
//! 2. if no summary is outstanding, open the next epoch (send, then record: `scheduling`); if
//!    the outstanding one may already have run when the write landed (its due time had come by
//!    then), bump the day's state so that summary's own conditional update fails and it looks
//!    again — or, if it finished in the meantime, open the next epoch for the data just written.
//!
//! Points first, then the epoch: a summarize message never exists before the points it is for,
//! so a summary can never find its day still empty and settle it while the points are on their
//! way. A delivery that stops between the two steps (a crash, an outage that outlasted the
//! patience) leaves points that no summary will read; its redelivery finds them already written
//! and does step 2 for them (`missed_by_summary`).
//!
//! Any conditional write that loses a race is redone from a fresh read, so concurrent workers
//! and redeliveries converge on the same stored day.
//!
//! Points for a day that is closed by the time the batch runs (see `domain::lateness`) are not
//! merged: they are quarantined per message, series and day, in the public JSON form, with the
//! reason — whether another producer sent them or they waited in the queue past the close.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use crate::domain::message::{SeriesPoints, TimedValue, decode_observations_message, public_form};
use crate::domain::series_day::{Point, SeriesDayKey, check_stamp, normalize, revision, stamp_at};
use crate::telemetry::{TraceContext, adopt_or_link};

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::{
    DayPoints, ErrorKind, PortError, PortResult, PreparedMerge, QuarantineEntry, ReceivedMessage,
    StateWrite, WriteOutcome,
};
use super::scheduling::EpochOpening;

/// How often one batch redoes a merge that lost a race before failing (and being redelivered).
const MAX_ATTEMPTS: usize = 8;

/// One observation message as delivered by a trigger.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The broker's MessageId, when the trigger provides a trustworthy one.
    pub message_id: Option<String>,
    pub body: Vec<u8>,
    /// When the broker accepted the message; orders corrections from producers that do not
    /// stamp their messages.
    pub enqueued_at: Option<DateTime<Utc>>,
    /// The sender's trace context, when the message carried one.
    pub trace_context: Option<TraceContext>,
}

impl From<ReceivedMessage> for InboundMessage {
    /// A message peek-locked from a queue, as the trigger hands it to `process` (its body moves,
    /// not copied: a batch holds up to 16 MiB of them).
    fn from(message: ReceivedMessage) -> Self {
        Self {
            message_id: Some(message.message_id),
            body: message.body,
            enqueued_at: Some(message.enqueued_at),
            trace_context: message.trace_context,
        }
    }
}

impl From<&ReceivedMessage> for InboundMessage {
    fn from(message: &ReceivedMessage) -> Self {
        Self::from(message.clone())
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcessReport {
    pub messages: usize,
    pub points: usize,
    pub quarantined: usize,
    pub series_days_changed: usize,
}

/// A stable name for a message in quarantine: its id, or a digest of its body.
fn message_source(message: &InboundMessage) -> String {
    message.message_id.clone().unwrap_or_else(|| {
        let digest = Sha256::digest(&message.body);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("body-sha256:{hex}")
    })
}

impl Pipeline {
    /// Processes one batch. A bad message or item is quarantined and the rest goes on; an `Err`
    /// is a transient failure of a dependency, after which the whole batch may be redelivered.
    pub async fn process(&self, batch: &[InboundMessage]) -> PortResult<ProcessReport> {
        let now = self.ports.clock.now();
        let window = self.day_window(now);
        let mut report = ProcessReport {
            messages: batch.len(),
            ..Default::default()
        };
        let mut quarantine = Vec::new();
        let mut groups: HashMap<SeriesDayKey, Vec<Point>> = HashMap::new();
        for message in batch {
            let source = message_source(message);
            let decoded = match decode_observations_message(&message.body) {
                Ok(decoded) => decoded,
                Err(e) => {
                    quarantine.push(self.quarantine_entry(
                        now,
                        &source,
                        &source,
                        e.to_string(),
                        message.body.clone(),
                    ));
                    continue;
                }
            };
            let stamp = match check_stamp(decoded.stamp, now) {
                Ok(stamp) => stamp
                    .or(message.enqueued_at.map(stamp_at))
                    .unwrap_or_else(|| stamp_at(now)),
                Err(reason) => {
                    quarantine.push(self.quarantine_entry(
                        now,
                        &source,
                        &source,
                        reason,
                        message.body.clone(),
                    ));
                    continue;
                }
            };
            for rejected in decoded.rejected {
                let id = format!("{source}#{}", rejected.index);
                let reason = format!("item {}: {}", rejected.index, rejected.reason);
                quarantine.push(self.quarantine_entry(
                    now,
                    &id,
                    &source,
                    reason,
                    rejected.original.into_bytes(),
                ));
            }
            for SeriesPoints { series, points } in decoded.series {
                // A message spans few days: group locally, then clone the series once per day.
                let mut by_day: Vec<(NaiveDate, Vec<Point>)> = Vec::new();
                for TimedValue { ts, value } in points {
                    let day = self.settings.calendar.day_of(ts);
                    let point = Point { ts, value, stamp };
                    match by_day.iter_mut().find(|(d, _)| *d == day) {
                        Some((_, group)) => group.push(point),
                        None => by_day.push((day, vec![point])),
                    }
                }
                for (day, points) in by_day {
                    if window.is_closed(day) {
                        let refused: Vec<TimedValue> = points
                            .iter()
                            .map(|p| TimedValue {
                                ts: p.ts,
                                value: p.value,
                            })
                            .collect();
                        quarantine.push(self.quarantine_entry(
                            now,
                            &format!("{source}#{series}@{day}"),
                            &source,
                            window.refusal(day),
                            public_form(&series, &refused),
                        ));
                        continue;
                    }
                    groups
                        .entry(SeriesDayKey::new(series.clone(), day))
                        .or_default()
                        .extend(points);
                }
            }
        }
        if !quarantine.is_empty() {
            self.ports.quarantine.put(&quarantine).await?;
            report.quarantined = quarantine.len();
            self.metrics
                .quarantine(&self.metrics.quarantined_process, quarantine.len());
        }
        let days: Vec<DayPoints> = groups
            .into_iter()
            .map(|(key, mut points)| {
                normalize(&mut points);
                report.points += points.len();
                DayPoints { key, points }
            })
            .collect();
        report.series_days_changed = self.merge_days(days).await?;
        let merged_at = self.ports.clock.now();
        for enqueued_at in batch.iter().filter_map(|m| m.enqueued_at) {
            self.metrics
                .ingest_to_merged_seconds
                .observe_lag(enqueued_at, merged_at);
        }
        Metrics::add(&self.metrics.messages_processed, batch.len());
        Metrics::add(&self.metrics.points_merged, report.points);
        Metrics::add(
            &self.metrics.series_days_written,
            report.series_days_changed,
        );
        Ok(report)
    }

    /// Processes one delivered batch the way every trigger must. A transient failure is waited
    /// out for the patience (the batch is tried again with backoff, see `patience`), then
    /// returned: the batch will be delivered again and may then succeed. A permanent one never
    /// will, and redelivering it would only use up the broker's delivery count and dead-letter
    /// it without a reason; so its messages are quarantined with the reason, for an operator to
    /// replay after a fix, and the batch counts as handled.
    ///
    /// One span per delivery: the child of the sending request's span when the batch is one
    /// message, linked to the senders' spans otherwise. Summarize messages it sends carry it.
    pub async fn process_delivery(&self, batch: &[InboundMessage]) -> PortResult<ProcessReport> {
        let span = tracing::info_span!("process", otel.kind = "consumer", messages = batch.len());
        adopt_or_link(&span, batch.iter().filter_map(|m| m.trace_context.as_ref()));
        let started = std::time::Instant::now();
        let outcome = self
            .process_delivery_patiently(batch)
            .instrument(span)
            .await;
        self.metrics
            .process_batch_seconds
            .observe(started.elapsed());
        outcome
    }

    async fn process_delivery_patiently(
        &self,
        batch: &[InboundMessage],
    ) -> PortResult<ProcessReport> {
        let deadline = self.patience_deadline();
        let error = match self.patiently(deadline, || self.process(batch)).await {
            Err(e) if e.kind == ErrorKind::Permanent => e,
            outcome => return outcome,
        };
        tracing::error!(error = %error, messages = batch.len(), "process failed permanently; the batch is quarantined");
        let now = self.ports.clock.now();
        let entries: Vec<QuarantineEntry> = batch
            .iter()
            .map(|message| {
                let source = message_source(message);
                let reason = format!("the batch failed permanently: {error}");
                self.quarantine_entry(now, &source, &source, reason, message.body.clone())
            })
            .collect();
        self.ports.quarantine.put(&entries).await?;
        self.metrics
            .quarantine(&self.metrics.quarantined_process, entries.len());
        Ok(ProcessReport {
            messages: batch.len(),
            quarantined: entries.len(),
            ..Default::default()
        })
    }

    fn quarantine_entry(
        &self,
        now: DateTime<Utc>,
        id: &str,
        source: &str,
        reason: String,
        body: Vec<u8>,
    ) -> QuarantineEntry {
        QuarantineEntry {
            id: format!("process:{id}"),
            at: now,
            function: "process".into(),
            source: source.to_string(),
            reason,
            body,
        }
    }

    /// Merges the days, redoing those that lose a race; returns how many changed.
    async fn merge_days(&self, mut days: Vec<DayPoints>) -> PortResult<usize> {
        let mut changed = 0;
        for _ in 0..MAX_ATTEMPTS {
            if days.is_empty() {
                return Ok(changed);
            }
            let prepared = self.ports.store.prepare(&days).await?;

            // 1. Write the points of every changed day.
            let (to_commit, unchanged): (Vec<PreparedMerge>, Vec<PreparedMerge>) =
                prepared.into_iter().partition(|m| m.changed);
            let outcomes = self.ports.store.commit(&to_commit).await?;
            // 2. Make sure a summary will read each written day. Decided with the time the
            // commit landed, not the time the batch started: a batch slowed by throttling,
            // retries or conflicts can commit long after its summary came due.
            let committed_at = self.ports.clock.now();
            let mut retry: HashSet<SeriesDayKey> = HashSet::new();
            let mut openings = Vec::new();
            let mut touch = Vec::new();
            for (merge, outcome) in to_commit.into_iter().zip(outcomes) {
                if outcome == WriteOutcome::Conflict {
                    retry.insert(merge.key);
                    continue;
                }
                changed += 1;
                match merge.state {
                    // Outstanding: it covers these points, unless it may be running already.
                    Some(s) if s.value.pending => {
                        if committed_at >= s.value.due_at - self.settings.due_margin {
                            touch.push(merge.key);
                        }
                    }
                    previous => openings.push(EpochOpening {
                        due_at: self.due_at(merge.key.day, committed_at),
                        key: merge.key,
                        previous,
                    }),
                }
            }
            // An opening that lost a race met a state changed since `prepare`: decided anew.
            touch.extend(self.open_epochs(openings).await?);
            touch.extend(self.missed_by_summary(&unchanged, committed_at).await?);
            self.touch_states(touch, committed_at).await?;
            Metrics::add(&self.metrics.merge_conflicts, retry.len());
            days.retain(|d| retry.contains(&d.key));
        }
        Err(PortError::transient(
            format!("merging {} series-days", days.len()),
            format!("conditional writes kept conflicting after {MAX_ATTEMPTS} attempts"),
        ))
    }

    /// Days this batch found already written that their summary may have missed. A day is
    /// unchanged when its points were stored before: by an earlier delivery of the same
    /// messages — which may have stopped after its commit and before step 3 (a crash, or an
    /// outage that outlasted the batch's patience), so that a summary running then read the day
    /// without them and nobody told it. Such a day needs step 3 now: when its summary is pending
    /// and may be running, and when its last finished summary was computed from fewer points than
    /// are stored (read back to compare revisions; redeliveries are rare, so the read is too).
    async fn missed_by_summary(
        &self,
        unchanged: &[PreparedMerge],
        now: DateTime<Utc>,
    ) -> PortResult<Vec<SeriesDayKey>> {
        let mut missed = Vec::new();
        let mut finished = Vec::new();
        for merge in unchanged {
            match &merge.state {
                Some(s) if s.value.pending => {
                    if now >= s.value.due_at - self.settings.due_margin {
                        missed.push(merge.key.clone());
                    }
                }
                Some(s) => finished.push((merge.key.clone(), s.value.summarized_revision)),
                // Points without any epoch: the earlier delivery stopped before opening one.
                None => missed.push(merge.key.clone()),
            }
        }
        if finished.is_empty() {
            return Ok(missed);
        }
        let keys: Vec<SeriesDayKey> = finished.iter().map(|(key, _)| key.clone()).collect();
        let days = self.ports.store.read_days(&keys).await?;
        for ((key, summarized), day) in finished.into_iter().zip(days) {
            if day.is_some_and(|day| Some(revision(&day.points)) > summarized) {
                missed.push(key);
            }
        }
        Ok(missed)
    }

    /// Bumps the state of days just written while their summary may be running, so that the
    /// summary's conditional update fails; a day whose summary finished meanwhile gets the next
    /// epoch instead.
    async fn touch_states(
        &self,
        mut keys: Vec<SeriesDayKey>,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        for _ in 0..MAX_ATTEMPTS {
            if keys.is_empty() {
                return Ok(());
            }
            let states = self.ports.store.read_states(&keys).await?;
            let mut writes = Vec::new();
            let mut openings = Vec::new();
            for (key, state) in keys.drain(..).zip(states) {
                match state {
                    Some(s) if s.value.pending => {
                        let mut bumped = s.value.clone();
                        bumped.touched += 1;
                        writes.push(StateWrite {
                            key,
                            expected_version: Some(s.version),
                            state: bumped,
                        });
                    }
                    previous => openings.push(EpochOpening {
                        due_at: self.due_at(key.day, now),
                        key,
                        previous,
                    }),
                }
            }
            keys = self.open_epochs(openings).await?;
            let outcomes = self.ports.store.write_states(&writes).await?;
            keys.extend(
                writes
                    .into_iter()
                    .zip(outcomes)
                    .filter(|(_, o)| *o == WriteOutcome::Conflict)
                    .map(|(write, _)| write.key),
            );
        }
        Err(PortError::transient(
            format!("updating the state of {} series-days", keys.len()),
            format!("conditional writes kept conflicting after {MAX_ATTEMPTS} attempts"),
        ))
    }
}
