//! R8: one poisonous series-day among a thousand good ones: the sink refuses its row for good
//! (a real refusal by the real table: a trigger in SQLite, a check constraint in PostgreSQL);
//! the other 999 rows are written and the poisonous day is quarantined with the reason.

use super::rig::{Peers, Rig};
use super::{Workload, first_day, series_name};

/// Makes the sink's own table refuse every row of `series`.
async fn poison(rig: &Rig, series: &str) {
    match &rig.postgres {
        None => {
            let file = rusqlite::Connection::open(rig.dir.path().join("eventide.db")).unwrap();
            file.execute_batch(&format!(
                "CREATE TRIGGER chaos_poison_insert BEFORE INSERT ON daily_summary
                 WHEN NEW.series = '{series}' BEGIN SELECT RAISE(ABORT, 'poisoned series-day'); END;
                 CREATE TRIGGER chaos_poison_update BEFORE UPDATE ON daily_summary
                 WHEN NEW.series = '{series}' BEGIN SELECT RAISE(ABORT, 'poisoned series-day'); END;"
            ))
            .unwrap();
        }
        Some((url, schema)) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            // Both names are the test's own, not input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE \"{schema}\".daily_summary
                 ADD CONSTRAINT chaos_poison CHECK (series <> '{series}')"
            )))
            .execute(&pool)
            .await
            .unwrap();
        }
    }
}

async fn r8_one_poisonous_series_day(peers: Peers) {
    let Some(rig) = Rig::build("R8 one poisonous series-day among 1,000", peers, |_| {}).await
    else {
        return;
    };
    let poisoned = series_name(500);
    poison(&rig, &poisoned).await;
    let workload = Workload::new(1_000, 1, 4, 100, 8);
    rig.ingest(&workload).await;
    let messages = rig.take_observations().await;
    let count = messages.len() as u64;
    rig.deliver(messages, 2, 88).await;
    rig.summarize_all().await;

    let mut expected = workload.expected();
    expected.remove(&(poisoned.clone(), first_day()));
    let is_poison = |entry: &eventide::pipeline::ports::QuarantineEntry| {
        entry.function == "summarize" && String::from_utf8_lossy(&entry.body).contains(&poisoned)
    };
    let quarantined = rig.quarantined().await;
    let poison_entries: Vec<_> = quarantined.iter().filter(|e| is_poison(e)).collect();
    assert_eq!(poison_entries.len(), 1, "{quarantined:?}");
    assert!(
        poison_entries[0].reason.contains("poison"),
        "{}",
        poison_entries[0].reason
    );
    let mut figures = rig.figures(&expected, count, count, is_poison).await;
    figures.note = format!(
        "{} rows written, 1 quarantined: {}",
        expected.len(),
        poison_entries[0].reason
    );
    figures.report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_embedded() {
    r8_one_poisonous_series_day(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_real_peers() {
    r8_one_poisonous_series_day(Peers::Real).await;
}
