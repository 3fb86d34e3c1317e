//! The series-day store on Cosmos DB (see `layout` for the documents).
//!
//! Per trigger batch and series-day, `prepare` point-reads the header, unless this store read
//! it as pending before and its due time is not near (`pending`). A day whose summary is
//! pending (or that has no header yet) is merged by appending its points to the day log
//! (`day_log`): `commit` writes one log document per shard of the batch's days, and nothing
//! can conflict. A day already summarized is merged into its buckets, so that points it
//! already holds are recognized and open no new epoch: `prepare` point-reads each touched
//! bucket once, and `commit` writes each changed bucket once, conditional on the etag it read
//! (`If-Match`; create-if-absent for a new bucket). Never one request per observation. A lost
//! race is reported as `Conflict`; the pipeline re-reads and redoes it (a bounded loop in
//! `pipeline::process`). All the days of a batch are read and written concurrently, as far as
//! the request-unit budget lets them. What a merge writes travels from `prepare` to `commit`
//! sealed in the port's `PreparedWrites`, so the pipeline never sees this layout. Reading days
//! compacts their log shards first.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::{join_all, try_join_all};
use serde::Deserialize;

use super::client::{CallError, Gateway, Read, Written};
use super::codec;
use super::day_log::{Appended, Compactions};
use super::layout::{BucketDoc, HeaderDoc, MAX_HOUR_POINTS, Part, header_id};
use super::pending::PendingStates;
use super::settings::CosmosSettings;
use super::stats::CosmosStats;
use crate::adapters::stored_series;
use crate::domain::calendar::Calendar;
use crate::domain::series_day::{DayState, Point, SeriesDayKey, merge_into, normalize};
use crate::pipeline::clock::SystemClock;
use crate::pipeline::ports::{
    Clock, DayPoints, PortError, PortResult, PreparedMerge, PreparedWrites, SeriesDayStore,
    StateWrite, StoredDay, Versioned, WriteOutcome,
};
use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::{FeedScope, Query};

/// A document's `ttl` that keeps it until it is deleted on purpose (Cosmos DB's "never").
pub(super) const NEVER: i64 = -1;

/// The Cosmos DB series-day store.
///
/// Documents expire by Cosmos DB's per-item TTL, set so that a day is never forgotten while it
/// may still change or be summarized: while a summary is pending, the header and every bucket
/// carry `ttl = -1` (never); once the day is summarized, all of them carry the time left until
/// the retention has passed after the later of the day's end and now. Buckets are always written
/// with `-1` (a merge happens only while a summary is pending); every state write then brings
/// the day's buckets to the header's TTL, which costs one query per state write that may need it
/// and one replace per bucket whose TTL changes.
#[derive(Clone)]
pub struct CosmosStore {
    gateway: Arc<Gateway>,
    stats: Arc<CosmosStats>,
    /// The retention, in seconds.
    ttl_seconds: i64,
    /// Day boundaries, for when a day ends.
    calendar: Calendar,
    clock: Arc<dyn Clock>,
    /// Shards of each day's log; 0: every merge rewrites buckets.
    log_shards: u32,
    /// Compactions of the day log under way in this process.
    compactions: Arc<Compactions>,
    /// States read as pending, standing in for header reads (`None`: every merge reads).
    pending: Option<Arc<PendingStates>>,
}

/// What a merge of one day writes: what `prepare` seals and `commit` opens. It names its own
/// day, so `commit` writes exactly the day `prepare` read.
struct DayWrites {
    key: SeriesDayKey,
    writes: Writes,
}

/// How a merge stores its points.
enum Writes {
    /// Appended to the day log (the day's summary is pending, or it has none yet).
    Log(Vec<Point>),
    /// Merged into the day's buckets.
    Buckets(Vec<BucketWrite>),
}

/// One bucket document as it will be after the merge.
struct BucketWrite {
    part: Part,
    /// The etag the bucket had when read; `None`: it did not exist (create-if-absent).
    expected_etag: Option<String>,
    points: Vec<Point>,
}

/// A bucket as read: its etag and decoded points.
struct Bucket {
    etag: String,
    split: bool,
    points: Vec<Point>,
}

impl CosmosStore {
    /// A store over an opened container (see `client::open_container`).
    pub fn new(container: ContainerClient, settings: &CosmosSettings) -> Self {
        let stats = Arc::new(CosmosStats::default());
        Self {
            gateway: Arc::new(Gateway::new(container, settings, stats.clone())),
            stats,
            ttl_seconds: settings.ttl.as_secs().clamp(1, i32::MAX as u64) as i64,
            calendar: Calendar::default(),
            clock: Arc::new(SystemClock),
            log_shards: settings.log_shards,
            compactions: Arc::default(),
            pending: None,
        }
    }

    /// Lets a merge use a state this store read as pending instead of reading the header
    /// again, until `due_margin` (the pipeline's: how far ahead another instance's clock may
    /// be) before its due time, on the clock of [`Self::with_expiry`] — which must be the
    /// pipeline's. See `pending` for why that is safe.
    pub fn remembering_pending(mut self, due_margin: chrono::Duration) -> Self {
        self.pending = Some(Arc::new(PendingStates::new(due_margin)));
        self
    }

    /// Compactions of the day log under way in this process.
    pub(super) fn compactions(&self) -> &Compactions {
        &self.compactions
    }

    /// Shards of each day's log (0: no log).
    pub(super) fn log_shards(&self) -> u32 {
        self.log_shards
    }

    /// The calendar whose days end when the pipeline's do, and the clock the retention is
    /// counted on (UTC and the system clock unless set).
    pub fn with_expiry(mut self, calendar: Calendar, clock: Arc<dyn Clock>) -> Self {
        self.calendar = calendar;
        self.clock = clock;
        self
    }

    /// The `ttl` of a document of `day` once the day is summarized: the seconds left until
    /// the retention has passed after the later of the day's end and now.
    fn settled_ttl(&self, day: NaiveDate) -> i64 {
        let now = self.clock.now();
        let kept_from = self.calendar.end_of(day).max(now);
        let left = (kept_from - now)
            .num_seconds()
            .saturating_add(self.ttl_seconds);
        left.clamp(1, i64::from(i32::MAX))
    }

    /// Connects with the settings' endpoint and authentication, creating the database and
    /// container first when `create_if_missing` is set.
    pub async fn connect(settings: &CosmosSettings) -> anyhow::Result<Self> {
        let client = super::client::connect(settings).await?;
        let container = super::client::open_container(&client, settings).await?;
        Ok(Self::new(container, settings))
    }

    /// Request units, requests, 429s and retries so far.
    pub fn stats(&self) -> &Arc<CosmosStats> {
        &self.stats
    }

    /// Where every request of this store goes.
    pub(super) fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The budget's current rate in RU/s.
    pub fn current_rate(&self) -> f64 {
        self.gateway.budget().rate()
    }

    async fn read_header(
        &self,
        key: &SeriesDayKey,
    ) -> Result<Option<Versioned<DayState>>, CallError> {
        match self
            .gateway
            .read::<HeaderDoc>(key.series.as_str(), &header_id(key.day))
            .await?
        {
            Read::Missing => Ok(None),
            Read::Found { doc, etag } => Ok(Some(Versioned {
                value: header_state(&doc)?,
                version: etag,
            })),
        }
    }

    async fn read_bucket(
        &self,
        key: &SeriesDayKey,
        part: Part,
    ) -> Result<Option<Bucket>, CallError> {
        match self
            .gateway
            .read::<BucketDoc>(key.series.as_str(), &part.id(key.day))
            .await?
        {
            Read::Missing => Ok(None),
            Read::Found { doc, etag } => Ok(Some(Bucket {
                etag,
                split: doc.split,
                points: decode_bucket(&doc)?,
            })),
        }
    }

    /// The state a merge of `key` goes by: one read as pending before, while it stands in for
    /// a new read, or the header read now.
    async fn state_for_merge(
        &self,
        key: &SeriesDayKey,
    ) -> Result<Option<Versioned<DayState>>, CallError> {
        let now = self.clock.now();
        let Some(pending) = &self.pending else {
            return self.read_header(key).await;
        };
        if let Some(known) = pending.get(key, now) {
            return Ok(Some(known));
        }
        let state = self.read_header(key).await?;
        if let Some(state) = &state {
            pending.remember(key, state, now);
        }
        Ok(state)
    }

    async fn prepare_one(&self, day: &DayPoints) -> Result<PreparedMerge, CallError> {
        let state = self.state_for_merge(&day.key).await?;
        // A pending day's summary will read whatever is logged, so whether these points are
        // new does not matter; a day without a header holds nothing yet.
        if self.log_shards > 0 && state.as_ref().is_none_or(|s| s.value.pending) {
            return Ok(PreparedMerge {
                key: day.key.clone(),
                changed: true,
                state,
                writes: PreparedWrites::seal(DayWrites {
                    key: day.key.clone(),
                    writes: Writes::Log(day.points.clone()),
                }),
            });
        }
        // `day.points` is sorted, so each hour is one contiguous run.
        let runs: Vec<&[Point]> = day
            .points
            .chunk_by(|a, b| Part::hour_of(a.ts) == Part::hour_of(b.ts))
            .collect();
        let hours = try_join_all(
            runs.iter()
                .map(|run| self.read_bucket(&day.key, Part::Hour(Part::hour_of(run[0].ts)))),
        )
        .await?;
        let per_hour = runs
            .iter()
            .zip(hours)
            .map(|(run, bucket)| self.prepare_hour(&day.key, run, bucket));
        let buckets: Vec<BucketWrite> = try_join_all(per_hour)
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(PreparedMerge {
            key: day.key.clone(),
            changed: !buckets.is_empty(),
            state,
            writes: PreparedWrites::seal(DayWrites {
                key: day.key.clone(),
                writes: Writes::Buckets(buckets),
            }),
        })
    }

    /// The writes that merge one hour's incoming points.
    async fn prepare_hour(
        &self,
        key: &SeriesDayKey,
        run: &[Point],
        bucket: Option<Bucket>,
    ) -> Result<Vec<BucketWrite>, CallError> {
        let hour = Part::hour_of(run[0].ts);
        match bucket {
            Some(b) if b.split => self.prepare_slots(key, run).await,
            Some(b) => {
                let mut points = b.points;
                if !merge_into(&mut points, run) {
                    return Ok(Vec::new());
                }
                if points.len() <= MAX_HOUR_POINTS {
                    return Ok(vec![BucketWrite {
                        part: Part::Hour(hour),
                        expected_etag: Some(b.etag),
                        points,
                    }]);
                }
                // Outgrown: move every point of the hour to its slots, then mark the hour.
                let mut writes = self.prepare_slots(key, &points).await?;
                writes.push(BucketWrite {
                    part: Part::SplitMarker(hour),
                    expected_etag: Some(b.etag),
                    points: Vec::new(),
                });
                Ok(writes)
            }
            None if run.len() <= MAX_HOUR_POINTS => Ok(vec![BucketWrite {
                part: Part::Hour(hour),
                expected_etag: None,
                points: run.to_vec(),
            }]),
            None => {
                let mut writes = self.prepare_slots(key, run).await?;
                writes.push(BucketWrite {
                    part: Part::SplitMarker(hour),
                    expected_etag: None,
                    points: Vec::new(),
                });
                Ok(writes)
            }
        }
    }

    /// The writes that merge points of one split hour into its slots.
    async fn prepare_slots(
        &self,
        key: &SeriesDayKey,
        points: &[Point],
    ) -> Result<Vec<BucketWrite>, CallError> {
        let runs: Vec<&[Point]> = points
            .chunk_by(|a, b| Part::slot_of(a.ts) == Part::slot_of(b.ts))
            .collect();
        let stored = try_join_all(
            runs.iter()
                .map(|run| self.read_bucket(key, Part::slot_of(run[0].ts))),
        )
        .await?;
        Ok(runs
            .into_iter()
            .zip(stored)
            .filter_map(|(run, bucket)| {
                let part = Part::slot_of(run[0].ts);
                match bucket {
                    None => Some(BucketWrite {
                        part,
                        expected_etag: None,
                        points: run.to_vec(),
                    }),
                    Some(b) => {
                        let mut merged = b.points;
                        merge_into(&mut merged, run).then_some(BucketWrite {
                            part,
                            expected_etag: Some(b.etag),
                            points: merged,
                        })
                    }
                }
            })
            .collect())
    }

    async fn write_bucket(
        &self,
        key: &SeriesDayKey,
        write: &BucketWrite,
    ) -> Result<Written, CallError> {
        let part = write.part;
        let doc = BucketDoc {
            id: part.id(key.day),
            series_id: key.series.clone(),
            day: key.day.to_string(),
            part: match part {
                Part::SplitMarker(h) => Part::Hour(h).number(),
                other => other.number(),
            },
            p: codec::encode(part.base(), &write.points),
            split: matches!(part, Part::SplitMarker(_)),
            // Merges happen while a summary is pending; the state write that ends it sets the
            // bucket's real TTL.
            ttl: NEVER,
        };
        let pk = key.series.as_str();
        match &write.expected_etag {
            None => self.gateway.create(pk, &doc.id, &doc).await,
            Some(etag) => self.gateway.replace(pk, &doc.id, &doc, etag).await,
        }
    }

    /// Writes one merge: its buckets first, split markers last, and stops at the first
    /// conflict (what was written is a subset of the merge, which a redo completes).
    async fn commit_buckets(
        &self,
        key: &SeriesDayKey,
        writes: &[BucketWrite],
    ) -> Result<WriteOutcome, CallError> {
        let (markers, buckets): (Vec<&BucketWrite>, Vec<&BucketWrite>) = writes
            .iter()
            .partition(|w| matches!(w.part, Part::SplitMarker(_)));
        for group in [buckets, markers] {
            let outcomes = try_join_all(group.iter().map(|w| self.write_bucket(key, w))).await?;
            if outcomes.contains(&Written::Conflict) {
                return Ok(WriteOutcome::Conflict);
            }
        }
        Ok(WriteOutcome::Written)
    }

    async fn write_state(&self, write: &StateWrite) -> Result<WriteOutcome, CallError> {
        let StateWrite {
            key,
            expected_version,
            state,
        } = write;
        if let Some(pending) = &self.pending {
            pending.forget(key);
        }
        let doc = HeaderDoc {
            id: header_id(key.day),
            series_id: key.series.clone(),
            day: key.day.to_string(),
            kind: "h".into(),
            epoch: state.epoch,
            pending: state.pending,
            due_at: state.due_at.timestamp_millis(),
            touched: state.touched,
            summarized_revision: state.summarized_revision,
            ttl: if state.pending {
                NEVER
            } else {
                self.settled_ttl(key.day)
            },
        };
        let pk = key.series.as_str();
        let written = match expected_version {
            None => self.gateway.create(pk, &doc.id, &doc).await?,
            Some(etag) => self.gateway.replace(pk, &doc.id, &doc, etag).await?,
        };
        if written == Written::Conflict {
            return Ok(WriteOutcome::Conflict);
        }
        // Only a day summarized before can hold buckets whose TTL differs from a pending
        // header's; a day that is not pending has buckets written since with `-1`.
        if !state.pending || state.summarized_revision.is_some() {
            self.align_bucket_ttls(key, doc.ttl).await?;
        }
        Ok(WriteOutcome::Written)
    }

    /// Gives every bucket of the day the header's `ttl`. A bucket rewritten meanwhile (its etag
    /// changed) is left alone: a merge wrote it with `-1`, and the state write that follows
    /// that merge aligns it again.
    async fn align_bucket_ttls(&self, key: &SeriesDayKey, ttl: i64) -> Result<(), CallError> {
        let buckets = self
            .day_docs(key)
            .await?
            .into_iter()
            .filter(|doc| doc.get("kind").and_then(|k| k.as_str()) != Some("h"))
            .filter(|doc| doc.get("ttl").and_then(serde_json::Value::as_i64) != Some(ttl))
            .map(|doc| {
                let etag = document_etag(key, &doc)?;
                let mut bucket: BucketDoc = serde_json::from_value(doc)
                    .map_err(|e| CallError::Document(format!("{key} bucket: {e}")))?;
                bucket.ttl = ttl;
                Ok((bucket, etag))
            })
            .collect::<Result<Vec<_>, CallError>>()?;
        let pk = key.series.as_str();
        try_join_all(
            buckets
                .iter()
                .map(|(bucket, etag)| self.gateway.replace(pk, &bucket.id, bucket, etag)),
        )
        .await?;
        Ok(())
    }

    /// Every document of one series-day, as stored.
    async fn day_docs(&self, key: &SeriesDayKey) -> Result<Vec<serde_json::Value>, CallError> {
        let query = Query::from("SELECT * FROM c WHERE c.seriesId = @s AND c.day = @d")
            .with_parameter("@s", &key.series)
            .and_then(|q| q.with_parameter("@d", key.day.to_string()))
            .map_err(|e| CallError::Document(format!("building a query: {e}")))?;
        self.gateway
            .query(&query, &FeedScope::partition(key.series.to_string()))
            .await
    }

    async fn read_day(&self, key: &SeriesDayKey) -> Result<Option<StoredDay>, CallError> {
        let docs = self.day_docs(key).await?;
        if docs.is_empty() {
            return Ok(None);
        }
        let mut state = None;
        let mut points = Vec::new();
        for doc in docs {
            if doc.get("kind").and_then(|k| k.as_str()) == Some("h") {
                let etag = document_etag(key, &doc)?;
                let header: HeaderDoc = serde_json::from_value(doc)
                    .map_err(|e| CallError::Document(format!("{key} header: {e}")))?;
                state = Some(Versioned {
                    value: header_state(&header)?,
                    version: etag,
                });
            } else {
                let bucket: BucketDoc = serde_json::from_value(doc)
                    .map_err(|e| CallError::Document(format!("{key} bucket: {e}")))?;
                points.extend(decode_bucket(&bucket)?);
            }
        }
        // The union under the merge's join: copies left by an interrupted split coincide.
        normalize(&mut points);
        Ok(Some(StoredDay {
            key: key.clone(),
            state,
            points,
        }))
    }
}

/// The `_etag` of a document returned by a query.
fn document_etag(key: &SeriesDayKey, doc: &serde_json::Value) -> Result<String, CallError> {
    doc.get("_etag")
        .and_then(|e| e.as_str())
        .map(str::to_string)
        .ok_or_else(|| CallError::Document(format!("{key}: a document without _etag")))
}

fn header_state(doc: &HeaderDoc) -> Result<DayState, CallError> {
    Ok(DayState {
        epoch: doc.epoch,
        pending: doc.pending,
        due_at: DateTime::from_timestamp_millis(doc.due_at)
            .ok_or_else(|| CallError::Document(format!("{}: dueAt out of range", doc.id)))?,
        touched: doc.touched,
        summarized_revision: doc.summarized_revision,
    })
}

fn decode_bucket(doc: &BucketDoc) -> Result<Vec<Point>, CallError> {
    if doc.split {
        return Ok(Vec::new());
    }
    codec::decode(Part::from_number(doc.part).base(), &doc.p)
        .map_err(|e| CallError::Document(format!("{}: {e}", doc.id)))
}

fn port_error(context: &str) -> impl Fn(CallError) -> PortError + '_ {
    move |e| e.into_port(context)
}

#[async_trait]
impl SeriesDayStore for CosmosStore {
    async fn prepare(&self, days: &[DayPoints]) -> PortResult<Vec<PreparedMerge>> {
        try_join_all(days.iter().map(|d| self.prepare_one(d)))
            .await
            .map_err(port_error("reading series-days to merge from Cosmos DB"))
    }

    async fn commit(&self, merges: &[PreparedMerge]) -> PortResult<Vec<WriteOutcome>> {
        let days = merges
            .iter()
            .map(|m| m.writes.open::<DayWrites>())
            .collect::<PortResult<Vec<_>>>()?;
        let appended: Vec<Appended<'_>> = days
            .iter()
            .filter_map(|d| match &d.writes {
                Writes::Log(points) => Some(Appended {
                    key: &d.key,
                    points,
                }),
                Writes::Buckets(_) => None,
            })
            .collect();
        // Every merge runs to its end even when another fails, so nothing is left half-sent.
        let (logged, merged) = tokio::join!(
            self.append_to_log(&appended),
            join_all(days.iter().map(|d| async {
                match &d.writes {
                    // Written once the log's appends are, which is checked first below.
                    Writes::Log(_) => Ok(WriteOutcome::Written),
                    Writes::Buckets(writes) => self.commit_buckets(&d.key, writes).await,
                }
            }))
        );
        let context = "writing merged series-days to Cosmos DB";
        logged.map_err(port_error(context))?;
        merged
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(port_error(context))
    }

    async fn read_states(
        &self,
        keys: &[SeriesDayKey],
    ) -> PortResult<Vec<Option<Versioned<DayState>>>> {
        try_join_all(keys.iter().map(|k| self.read_header(k)))
            .await
            .map_err(port_error("reading series-day states from Cosmos DB"))
    }

    async fn write_states(&self, writes: &[StateWrite]) -> PortResult<Vec<WriteOutcome>> {
        let results = join_all(writes.iter().map(|w| self.write_state(w))).await;
        results
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(port_error("writing series-day states to Cosmos DB"))
    }

    async fn read_days(&self, keys: &[SeriesDayKey]) -> PortResult<Vec<Option<StoredDay>>> {
        let damaged = self
            .compact_logs_of(keys)
            .await
            .map_err(port_error("compacting the day log in Cosmos DB"))?;
        // A day whose logged points cannot be decoded fails the read for good; read alone
        // (as the summary's isolation does), every other day of its log reads as usual.
        if let Some((key, reason)) = keys.iter().find_map(|k| damaged.get_key_value(k)) {
            return Err(
                CallError::Document(format!("{} on {}: {reason}", key.series, key.day))
                    .into_port("reading series-days from Cosmos DB"),
            );
        }
        try_join_all(keys.iter().map(|k| self.read_day(k)))
            .await
            .map_err(port_error("reading series-days from Cosmos DB"))
    }

    async fn pending_due_before(
        &self,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<SeriesDayKey>> {
        #[derive(Deserialize)]
        struct Due {
            #[serde(rename = "seriesId")]
            series: String,
            day: NaiveDate,
            #[serde(rename = "dueAt")]
            due_at: i64,
        }
        let context = "listing overdue series-days in Cosmos DB";
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Ordered by the indexed `dueAt` across partitions (the SDK merges the partitions'
        // ordered pages) and cut at `limit`, so however many days are overdue only about
        // `limit` headers per partition are transferred. The limit is a number, spliced as one.
        let query = Query::from(format!(
            "SELECT TOP {limit} c.seriesId, c.day, c.dueAt FROM c
             WHERE c.kind = 'h' AND c.pending = true AND c.dueAt < @t ORDER BY c.dueAt"
        ))
        .with_parameter("@t", due_before.timestamp_millis())
        .map_err(|e| PortError::permanent(context, e))?;
        let mut due: Vec<Due> = self
            .gateway
            .query_first(&query, &FeedScope::full_container(), limit)
            .await
            .map_err(port_error(context))?;
        // Ties on `dueAt` in a fixed order.
        due.sort_by(|a, b| (a.due_at, &a.series, a.day).cmp(&(b.due_at, &b.series, b.day)));
        due.into_iter()
            .map(|d| stored_series::parse(&d.series).map(|series| SeriesDayKey::new(series, d.day)))
            .collect::<Result<_, _>>()
            .map_err(|e| PortError::permanent(context, e))
    }

    async fn series_of_day(&self, day: NaiveDate) -> PortResult<Vec<SeriesDayKey>> {
        #[derive(Deserialize)]
        struct Series {
            #[serde(rename = "seriesId")]
            series: String,
        }
        let context = "listing the series of a day in Cosmos DB";
        let query = Query::from("SELECT c.seriesId FROM c WHERE c.kind = 'h' AND c.day = @d")
            .with_parameter("@d", day.to_string())
            .map_err(|e| PortError::permanent(context, e))?;
        let found: Vec<Series> = self
            .gateway
            .query(&query, &FeedScope::full_container())
            .await
            .map_err(port_error(context))?;
        let series: BTreeMap<String, ()> = found.into_iter().map(|s| (s.series, ())).collect();
        series
            .into_keys()
            .map(|s| stored_series::parse(&s).map(|series| SeriesDayKey::new(series, day)))
            .collect::<Result<_, _>>()
            .map_err(|e| PortError::permanent(context, e))
    }
}
