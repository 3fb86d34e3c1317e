//! The Cosmos DB store against the SDK's in-memory emulator: reconcile's query for overdue
//! series-days is bounded — with several partitions and many overdue days it returns the oldest
//! `limit` of them, oldest first, and transfers a bounded number of documents rather than every
//! overdue header — and a 128-bit summarized revision is kept exactly.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::{DayState, Revision, SeriesDayKey};
use eventide::pipeline::ports::{SeriesDayStore, StateWrite, WriteOutcome};
use eventide_testkit::cosmos::{Emulator, settings};

const PARTITIONS: u32 = 4;
const OVERDUE: usize = 300;
const LIMIT: usize = 7;

fn day() -> NaiveDate {
    "2026-11-24".parse().unwrap()
}

fn base() -> DateTime<Utc> {
    "2026-11-25T00:10:00Z".parse().unwrap()
}

fn key(i: usize) -> SeriesDayKey {
    SeriesDayKey::new(SeriesId::parse(&format!("series-{i:04}")).unwrap(), day())
}

#[tokio::test]
async fn overdue_days_come_oldest_first_from_a_bounded_query() {
    let emulator = Emulator::new();
    let s = settings(1_000_000.0);
    emulator.provision(&s, PARTITIONS, 1_000_000);
    let (_client, store) = emulator.open(&s, vec![]).await;

    // Due times in a scrambled order, one minute apart; one more day is pending but not due,
    // and one is due but no longer pending.
    let writes: Vec<StateWrite> = (0..OVERDUE + 2)
        .map(|i| {
            let rank = (i * 7919) % (OVERDUE + 2);
            StateWrite {
                key: key(i),
                expected_version: None,
                state: DayState {
                    epoch: 1,
                    pending: rank != 0,
                    due_at: base() + Duration::minutes(rank as i64),
                    touched: 0,
                    summarized_revision: None,
                },
            }
        })
        .collect();
    for chunk in writes.chunks(50) {
        let outcomes = store.write_states(chunk).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == WriteOutcome::Written));
    }
    let due_before = base() + Duration::minutes(OVERDUE as i64 + 1);

    let transferred = || store.stats().snapshot()["cosmos_query_documents"];
    let before = transferred();
    let due = store.pending_due_before(due_before, LIMIT).await.unwrap();
    let spent = transferred() - before;

    let rank_of = |k: &SeriesDayKey| {
        let i = (0..OVERDUE + 2).find(|&i| key(i) == *k).unwrap();
        (i * 7919) % (OVERDUE + 2)
    };
    let ranks: Vec<usize> = due.iter().map(rank_of).collect();
    assert_eq!(
        ranks,
        (1..=LIMIT).collect::<Vec<_>>(),
        "the oldest, oldest first"
    );
    assert!(
        spent <= (LIMIT * PARTITIONS as usize) as u64,
        "{spent} documents transferred for {LIMIT} overdue days out of {OVERDUE}"
    );

    // Everything overdue is still reachable with a larger limit.
    let all = store.pending_due_before(due_before, 10_000).await.unwrap();
    assert_eq!(all.len(), OVERDUE);
}

#[tokio::test]
async fn a_summarized_revision_is_kept_exactly() {
    let emulator = Emulator::new();
    let s = settings(1_000_000.0);
    emulator.provision(&s, 1, 1_000_000);
    let (_client, store) = emulator.open(&s, vec![]).await;
    // Beyond what a double holds exactly, as Cosmos DB keeps numbers.
    let revision = Revision::new((123_456_789 << 64) + 987_654_321);
    let state = DayState {
        epoch: 3,
        pending: false,
        due_at: base(),
        touched: 0,
        summarized_revision: Some(revision),
    };
    let write = StateWrite {
        key: key(1),
        expected_version: None,
        state: state.clone(),
    };
    assert_eq!(
        store.write_states(&[write]).await.unwrap(),
        [WriteOutcome::Written]
    );
    let read = store.read_states(&[key(1)]).await.unwrap();
    assert_eq!(read[0].as_ref().map(|v| &v.value), Some(&state));
}
