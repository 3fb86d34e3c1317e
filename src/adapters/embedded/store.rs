//! The series-day store on SQLite.
//!
//! A day is a small state row plus one row per UTC hour ("part") holding that hour's points in
//! the compact codec. A merge reads and rewrites only the hours it touches, so a day's cost per
//! write stays bounded however often the series reports. Versions are per-row counters checked
//! by every conditional write. The hour rows a merge rewrites travel from `prepare` to `commit`
//! sealed in the port's `PreparedWrites`, so the pipeline never sees this layout.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{EmbeddedDb, codec, from_millis, millis};
use crate::domain::calendar::Calendar;
use crate::domain::series::SeriesId;
use crate::domain::series_day::{
    DayState, Point, Revision, RevisionParts, SeriesDayKey, merge_into,
};
use crate::pipeline::ports::{
    Clock, DayPoints, PortResult, PreparedMerge, PreparedWrites, SeriesDayStore, StateWrite,
    StoredDay, Versioned, WriteOutcome,
};

const HOUR_NS: i64 = 3_600_000_000_000;

/// Series-days one transaction reads or writes at most. A batch's merge is many transactions, and
/// other calls on the shared connection (an ingest's send, above all) wait for one of them, not
/// for the whole batch: a transaction per series-day would cost a commit each, one per batch made
/// every request that arrived meanwhile wait for all of it.
const DAYS_PER_TRANSACTION: usize = 128;

/// Where the points of hour row `hour` are encoded from: the hour's start, or the earliest
/// timestamp for the first hour of the range, which starts before it.
fn hour_base(hour: i64) -> i64 {
    hour.saturating_mul(HOUR_NS)
}

/// The rows of one day a merge rewrites: what `prepare` seals and `commit` opens.
/// It names its own day, so `commit` writes exactly the day `prepare` read.
struct DayWrites {
    key: SeriesDayKey,
    hours: Vec<HourWrite>,
}

/// One hour row of a day as it will be after the merge.
struct HourWrite {
    /// The absolute UTC hour (ns / 3.6e12): the row's `part`.
    hour: i64,
    /// The row's version when it was read; `None`: the hour had no row yet.
    expected_version: Option<i64>,
    points: Vec<Point>,
}

/// The embedded series-day store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: EmbeddedDb,
    clock: Arc<dyn Clock>,
}

impl EmbeddedStore {
    pub fn new(db: EmbeddedDb, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// Runs `each` on every item, [`DAYS_PER_TRANSACTION`] items to a committed transaction,
    /// one call on the shared connection per slice; the results in item order.
    async fn in_slices<I, O>(
        &self,
        context: &'static str,
        items: Vec<I>,
        each: impl Fn(&Transaction<'_>, &I) -> rusqlite::Result<O> + Clone + Send + 'static,
    ) -> PortResult<Vec<O>>
    where
        I: Send + 'static,
        O: Send + 'static,
    {
        let mut results = Vec::with_capacity(items.len());
        let mut items = items.into_iter();
        loop {
            // Moved out, not copied: the items may be whole days of points.
            let slice: Vec<I> = items.by_ref().take(DAYS_PER_TRANSACTION).collect();
            if slice.is_empty() {
                break;
            }
            let each = each.clone();
            let done = self
                .db
                .call(context, move |c| {
                    let tx = c.transaction()?;
                    let done = slice
                        .iter()
                        .map(|item| each(&tx, item))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    tx.commit()?;
                    Ok(done)
                })
                .await?;
            results.extend(done);
        }
        Ok(results)
    }

    /// The embedded TTL: deletes the days the expiry covers. Like Cosmos DB's TTL it counts
    /// from the last write, so a day that still receives data is kept; unlike it, it also
    /// counts from the day's end, so a day written early (say, a forecast) is kept until it
    /// closed; and a day whose summary is pending is never deleted.
    pub async fn purge_expired(&self, expiry: Expiry) -> PortResult<usize> {
        let cutoff = millis(expiry.cutoff);
        let first_kept_day = expiry.first_kept_day.to_string();
        self.db
            .call("purging expired series-days", move |c| {
                let tx = c.transaction()?;
                tx.execute_batch(
                    "CREATE TEMP TABLE IF NOT EXISTS expired_day (series TEXT, day TEXT);
                     DELETE FROM expired_day;",
                )?;
                tx.execute(
                    "INSERT INTO expired_day (series, day)
                     SELECT p.series, p.day FROM day_part p
                     WHERE p.day < ?2 AND NOT EXISTS (SELECT 1 FROM day_state s
                                       WHERE s.series = p.series AND s.day = p.day AND s.pending = 1)
                     GROUP BY p.series, p.day HAVING MAX(p.written_at) < ?1",
                    params![cutoff, first_kept_day],
                )?;
                let deleted = tx.execute(
                    "DELETE FROM day_part WHERE (series, day) IN (SELECT series, day FROM expired_day)",
                    [],
                )?;
                tx.execute(
                    "DELETE FROM day_state WHERE pending = 0 AND due_at < ?1 AND day < ?2 AND NOT EXISTS
                     (SELECT 1 FROM day_part p WHERE p.series = day_state.series AND p.day = day_state.day)",
                    params![cutoff, first_kept_day],
                )?;
                tx.commit()?;
                Ok(deleted)
            })
            .await
    }
}

/// What the embedded TTL deletes: days not pending, last written before `cutoff` and ended
/// before it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// Now minus the retention.
    pub cutoff: DateTime<Utc>,
    /// The day holding the cutoff: it and every later day ended after the cutoff.
    pub first_kept_day: NaiveDate,
}

impl Expiry {
    /// The expiry of a store that keeps days for `retention`, as of `now`.
    pub fn at(now: DateTime<Utc>, retention: chrono::Duration, calendar: &Calendar) -> Self {
        let cutoff = now - retention;
        Self {
            cutoff,
            first_kept_day: cutoff.with_timezone(&calendar.tz()).date_naive(),
        }
    }
}

fn read_state(
    tx: &Connection,
    key: &SeriesDayKey,
) -> rusqlite::Result<Option<Versioned<DayState>>> {
    tx.prepare_cached(
        "SELECT version, epoch, pending, due_at, touched, summarized_revision,
                summarized_revision_low
         FROM day_state WHERE series = ?1 AND day = ?2",
    )?
    .query_row(params![key.series, key.day.to_string()], |r| {
        Ok(Versioned {
            version: r.get::<_, i64>(0)?.to_string(),
            value: DayState {
                epoch: r.get(1)?,
                pending: r.get(2)?,
                due_at: from_millis(r.get(3)?),
                touched: r.get::<_, i64>(4)? as u64,
                summarized_revision: stored_revision(r.get(5)?, r.get(6)?),
            },
        })
    })
    .optional()
}

/// The points of the hour row `part` (an absolute UTC hour), stored with `form`.
fn decode_blob(form: i64, part: i64, blob: &[u8]) -> rusqlite::Result<Vec<Point>> {
    codec::decode(form, hour_base(part), blob).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, e.into())
    })
}

fn read_part(
    tx: &Connection,
    key: &SeriesDayKey,
    part: i64,
) -> rusqlite::Result<Option<(i64, Vec<Point>)>> {
    tx.prepare_cached(
        "SELECT version, codec, points FROM day_part WHERE series = ?1 AND day = ?2 AND part = ?3",
    )?
    .query_row(params![key.series, key.day.to_string(), part], |r| {
        let blob = r.get_ref(2)?.as_blob()?;
        Ok((r.get::<_, i64>(0)?, decode_blob(r.get(1)?, part, blob)?))
    })
    .optional()
}

fn prepare_one(tx: &Connection, day: &DayPoints) -> rusqlite::Result<PreparedMerge> {
    let state = read_state(tx, &day.key)?;
    let mut hours = Vec::new();
    // `day.points` is sorted, so each hour is one contiguous run.
    for run in day
        .points
        .chunk_by(|a, b| a.ts.div_euclid(HOUR_NS) == b.ts.div_euclid(HOUR_NS))
    {
        let hour = run[0].ts.div_euclid(HOUR_NS);
        let (expected_version, mut points) = match read_part(tx, &day.key, hour)? {
            Some((version, points)) => (Some(version), points),
            None => (None, Vec::new()),
        };
        if merge_into(&mut points, run) {
            hours.push(HourWrite {
                hour,
                expected_version,
                points,
            });
        }
    }
    Ok(PreparedMerge {
        key: day.key.clone(),
        changed: !hours.is_empty(),
        state,
        writes: PreparedWrites::seal(DayWrites {
            key: day.key.clone(),
            hours,
        }),
    })
}

/// Writes all hours of one merge or none of them.
fn commit_one(tx: &Transaction<'_>, merge: &DayWrites, now: i64) -> rusqlite::Result<WriteOutcome> {
    let day = merge.key.day.to_string();
    tx.prepare_cached("SAVEPOINT merge_one")?.execute([])?;
    for write in &merge.hours {
        let blob = codec::encode(hour_base(write.hour), &write.points);
        let applied = match write.expected_version {
            None => tx
                .prepare_cached(
                    "INSERT INTO day_part (series, day, part, version, points, written_at, codec)
                     VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    merge.key.series,
                    day,
                    write.hour,
                    blob,
                    now,
                    codec::TAGGED
                ])?,
            Some(version) => tx
                .prepare_cached(
                    "UPDATE day_part SET points = ?4, version = version + 1, written_at = ?6,
                                         codec = ?7
                     WHERE series = ?1 AND day = ?2 AND part = ?3 AND version = ?5",
                )?
                .execute(params![
                    merge.key.series,
                    day,
                    write.hour,
                    blob,
                    version,
                    now,
                    codec::TAGGED
                ])?,
        };
        if applied == 0 {
            tx.execute_batch("ROLLBACK TO merge_one; RELEASE merge_one")?;
            return Ok(WriteOutcome::Conflict);
        }
    }
    tx.prepare_cached("RELEASE merge_one")?.execute([])?;
    Ok(WriteOutcome::Written)
}

/// A summarized revision as stored in its two columns; a state written before revisions had a
/// low part has only the high one (the sum of the stamps).
fn stored_revision(high: Option<i64>, low: Option<i64>) -> Option<Revision> {
    let high = high?;
    Some(match low {
        Some(low) => Revision::from_parts(RevisionParts { high, low }),
        None => Revision::from_stamp_sum(high),
    })
}

fn write_state(tx: &Connection, write: &StateWrite) -> rusqlite::Result<WriteOutcome> {
    let state = &write.state;
    let revision = state.summarized_revision.and_then(Revision::parts);
    let values = params![
        write.key.series,
        write.key.day.to_string(),
        state.epoch,
        state.pending,
        millis(state.due_at),
        state.touched as i64,
        revision.map(|r| r.high),
        write.expected_version,
        revision.map(|r| r.low),
    ];
    let applied = match write.expected_version {
        None => tx
            .prepare_cached(
                "INSERT INTO day_state (series, day, version, epoch, pending, due_at, touched,
                     summarized_revision, summarized_revision_low)
                 SELECT ?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?9 WHERE ?8 IS NULL -- binds the same nine values
                 ON CONFLICT DO NOTHING",
            )?
            .execute(values)?,
        Some(_) => tx
            .prepare_cached(
                "UPDATE day_state SET version = version + 1, epoch = ?3, pending = ?4, due_at = ?5,
                 touched = ?6, summarized_revision = ?7, summarized_revision_low = ?9
                 WHERE series = ?1 AND day = ?2 AND version = ?8",
            )?
            .execute(values)?,
    };
    Ok(if applied == 1 {
        WriteOutcome::Written
    } else {
        WriteOutcome::Conflict
    })
}

fn read_day(tx: &Connection, key: &SeriesDayKey) -> rusqlite::Result<Option<StoredDay>> {
    let state = read_state(tx, key)?;
    let mut points = Vec::new();
    let mut stmt = tx.prepare_cached(
        "SELECT part, codec, points FROM day_part WHERE series = ?1 AND day = ?2 ORDER BY part",
    )?;
    let mut rows = stmt.query(params![key.series, key.day.to_string()])?;
    while let Some(row) = rows.next()? {
        points.extend(decode_blob(
            row.get(1)?,
            row.get(0)?,
            row.get_ref(2)?.as_blob()?,
        )?);
    }
    if state.is_none() && points.is_empty() {
        return Ok(None);
    }
    Ok(Some(StoredDay {
        key: key.clone(),
        state,
        points,
    }))
}

fn parse_day(text: String) -> rusqlite::Result<NaiveDate> {
    text.parse().map_err(|e: chrono::ParseError| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
    })
}

#[async_trait]
impl SeriesDayStore for EmbeddedStore {
    async fn prepare(&self, days: &[DayPoints]) -> PortResult<Vec<PreparedMerge>> {
        self.in_slices("reading series-days to merge", days.to_vec(), |tx, day| {
            prepare_one(tx, day)
        })
        .await
    }

    async fn commit(&self, merges: &[PreparedMerge]) -> PortResult<Vec<WriteOutcome>> {
        if merges.is_empty() {
            return Ok(Vec::new());
        }
        let merges = merges
            .iter()
            .map(|m| m.writes.open::<DayWrites>())
            .collect::<PortResult<Vec<_>>>()?;
        let now = millis(self.clock.now());
        self.in_slices("writing merged series-days", merges, move |tx, merge| {
            commit_one(tx, merge, now)
        })
        .await
    }

    async fn read_states(
        &self,
        keys: &[SeriesDayKey],
    ) -> PortResult<Vec<Option<Versioned<DayState>>>> {
        let keys = keys.to_vec();
        self.db
            .call("reading series-day states", move |c| {
                let tx = c.transaction()?;
                keys.iter().map(|k| read_state(&tx, k)).collect()
            })
            .await
    }

    async fn write_states(&self, writes: &[StateWrite]) -> PortResult<Vec<WriteOutcome>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let writes = writes.to_vec();
        self.db
            .call("writing series-day states", move |c| {
                let tx = c.transaction()?;
                let outcomes = writes
                    .iter()
                    .map(|w| write_state(&tx, w))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                tx.commit()?;
                Ok(outcomes)
            })
            .await
    }

    async fn read_days(&self, keys: &[SeriesDayKey]) -> PortResult<Vec<Option<StoredDay>>> {
        let keys = keys.to_vec();
        self.db
            .call("reading series-days", move |c| {
                let tx = c.transaction()?;
                keys.iter().map(|k| read_day(&tx, k)).collect()
            })
            .await
    }

    async fn pending_due_before(
        &self,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<SeriesDayKey>> {
        let due_before = millis(due_before);
        self.db
            .call("listing overdue series-days", move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT series, day FROM day_state WHERE pending = 1 AND due_at < ?1 ORDER BY due_at LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![due_before, limit as i64], |r| {
                    Ok(SeriesDayKey::new(r.get::<_, SeriesId>(0)?, parse_day(r.get(1)?)?))
                })?;
                rows.collect()
            })
            .await
    }

    async fn series_of_day(&self, day: NaiveDate) -> PortResult<Vec<SeriesDayKey>> {
        self.db
            .call("listing the series of a day", move |c| {
                let mut stmt = c.prepare_cached(
                    // Every stored day has a state row: it is written before the first points.
                    "SELECT series FROM day_state WHERE day = ?1 ORDER BY series",
                )?;
                let rows = stmt.query_map([day.to_string()], |r| {
                    Ok(SeriesDayKey::new(r.get::<_, SeriesId>(0)?, day))
                })?;
                rows.collect()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::clock::ManualClock;
    use crate::pipeline::ports::ErrorKind;

    fn store() -> (EmbeddedStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("s.db")).unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-25T00:00:00Z".parse().unwrap()));
        (EmbeddedStore::new(db, clock), dir)
    }

    fn key() -> SeriesDayKey {
        SeriesDayKey::new(
            SeriesId::parse("plant-1/temp").unwrap(),
            "2026-11-24".parse().unwrap(),
        )
    }

    #[tokio::test]
    async fn a_merge_prepared_elsewhere_is_refused_permanently() {
        let (store, _dir) = store();
        let foreign = PreparedMerge {
            key: key(),
            changed: true,
            state: None,
            writes: PreparedWrites::seal("another store's layout"),
        };
        let e = store.commit(&[foreign]).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(e.to_string().contains("not prepared by this store"), "{e}");
    }

    #[tokio::test]
    async fn a_stored_series_that_breaks_the_rules_fails_the_read_permanently() {
        let (store, _dir) = store();
        store
            .db
            .call("writing a row by hand", |c| {
                c.execute(
                    "INSERT INTO day_state (series, day, version, epoch, pending, due_at, touched)
                     VALUES ('a b', '2026-11-24', 1, 1, 1, 0, 0)",
                    [],
                )
            })
            .await
            .unwrap();
        let e = store
            .series_of_day("2026-11-24".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert!(e.to_string().contains(r#"stored series "a b""#), "{e}");
    }

    #[tokio::test]
    async fn an_hour_row_written_before_schema_6_merges_with_new_points() {
        let (store, _dir) = store();
        let hour = |h: i64| 491_208 * HOUR_NS + h * HOUR_NS; // 2026-01-14T00:00Z on
        let point = |ts, value| Point {
            ts,
            value,
            stamp: 7,
        };
        // An hour as schema 5 stored it: 24 bytes a point, no codec column yet (default 1).
        let raw = codec::encode_raw(&[point(hour(0), 1.5), point(hour(0) + 60_000_000_000, 2.5)]);
        let key = SeriesDayKey::new(key().series, "2026-01-14".parse().unwrap());
        let (series, day) = (key.series.to_string(), key.day.to_string());
        store
            .db
            .call("writing a schema-5 row by hand", move |c| {
                c.execute(
                    "INSERT INTO day_part (series, day, part, version, points, written_at)
                     VALUES (?1, ?2, ?3, 1, ?4, 0)",
                    params![series, day, 491_208, raw],
                )
            })
            .await
            .unwrap();
        // A merge into that hour and the next rewrites the first compactly, creates the second.
        let days = [DayPoints {
            key: key.clone(),
            points: vec![point(hour(0) + 120_000_000_000, 3.5), point(hour(1), 4.5)],
        }];
        let prepared = store.prepare(&days).await.unwrap();
        let outcomes = store.commit(&prepared).await.unwrap();
        assert!(matches!(outcomes[..], [WriteOutcome::Written]));
        let stored = store.read_days(&[key]).await.unwrap().remove(0).unwrap();
        let values: Vec<f64> = stored.points.iter().map(|p| p.value).collect();
        assert_eq!(values, [1.5, 2.5, 3.5, 4.5]);
        let codecs: Vec<i64> = store
            .db
            .call("reading codecs", |c| {
                c.prepare("SELECT codec FROM day_part ORDER BY part")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await
            .unwrap();
        assert_eq!(codecs, [codec::TAGGED, codec::TAGGED]);
    }
}
