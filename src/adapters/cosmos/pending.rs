//! Summary states this store read as pending, so that a merge need not read its day's header
//! again until shortly before the summary comes due.
//!
//! Why: a trigger batch carries about ten points of each series-day it touches, and each
//! batch point-read the header of every series-day it touched: one request unit per ten
//! points, a third of what processing W1 cost once the day log took the writes.
//!
//! Why an earlier read may stand in for a new one: a pending state changes before its due time
//! only by a touch, which bumps a counter that a merge does not look at. It stops being pending
//! only through its summary, whose message is delivered at the due time, or through reconcile,
//! long after it. So until the due time, less the clock difference tolerated between instances
//! (the pipeline's due margin), a state read as pending answers a merge exactly as a fresh read
//! would: pending, due then. Its version may be older than the stored one; the pipeline never
//! writes conditionally on the version of a pending state a merge saw (a touch reads the state
//! again). A state this store writes is forgotten, and read afresh by the next merge.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::domain::series_day::{DayState, SeriesDayKey};
use crate::pipeline::ports::Versioned;

/// Remembered states, at most, before those past their use are swept out.
const SWEEP_AT: usize = 4096;

/// Pending states read by this store, each usable until its due time less the margin.
pub(super) struct PendingStates {
    /// The pipeline's due margin: how long before its due time a summary may already run, on
    /// a clock that is ahead of ours.
    margin: Duration,
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    states: HashMap<SeriesDayKey, Versioned<DayState>>,
    /// The number of states above which the next [`PendingStates::remember`] sweeps.
    sweep_at: usize,
}

impl PendingStates {
    pub(super) fn new(margin: Duration) -> Self {
        Self {
            margin,
            known: Mutex::default(),
        }
    }

    fn usable(&self, state: &DayState, now: DateTime<Utc>) -> bool {
        state.pending && now < state.due_at - self.margin
    }

    /// The state of `key` as last read, while it may stand in for a new read.
    pub(super) fn get(
        &self,
        key: &SeriesDayKey,
        now: DateTime<Utc>,
    ) -> Option<Versioned<DayState>> {
        let known = self.lock();
        known
            .states
            .get(key)
            .filter(|state| self.usable(&state.value, now))
            .cloned()
    }

    /// Keeps a state just read, when it is pending and not yet near its due time.
    pub(super) fn remember(
        &self,
        key: &SeriesDayKey,
        state: &Versioned<DayState>,
        now: DateTime<Utc>,
    ) {
        if !self.usable(&state.value, now) {
            return;
        }
        let mut known = self.lock();
        known.states.insert(key.clone(), state.clone());
        if known.states.len() > known.sweep_at.max(SWEEP_AT) {
            known
                .states
                .retain(|_, state| self.usable(&state.value, now));
            known.sweep_at = known.states.len() * 2;
        }
    }

    /// Forgets the state of `key` (this store is writing it).
    pub(super) fn forget(&self, key: &SeriesDayKey) {
        self.lock().states.remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known
            .lock()
            .expect("the pending states are never left half-changed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::series::SeriesId;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_478_400 + minute * 60, 0).unwrap()
    }

    fn key(series: &str) -> SeriesDayKey {
        SeriesDayKey::new(
            SeriesId::parse(series).unwrap(),
            "2026-11-24".parse().unwrap(),
        )
    }

    fn state(pending: bool, due_minute: i64) -> Versioned<DayState> {
        Versioned {
            value: DayState {
                epoch: 1,
                pending,
                due_at: at(due_minute),
                touched: 0,
                summarized_revision: None,
            },
            version: "etag-1".into(),
        }
    }

    #[test]
    fn a_pending_state_stands_in_until_its_due_time_less_the_margin() {
        let states = PendingStates::new(Duration::minutes(1));
        let day = key("plant-1/temp");
        states.remember(&day, &state(true, 100), at(0));
        assert_eq!(states.get(&day, at(98)), Some(state(true, 100)));
        assert_eq!(
            states.get(&day, at(99)),
            None,
            "within the margin of its due time"
        );
        assert_eq!(states.get(&key("plant-2/temp"), at(0)), None);
    }

    #[test]
    fn only_pending_states_far_from_due_are_kept_and_a_write_forgets() {
        let states = PendingStates::new(Duration::minutes(1));
        let (settled, late, kept) = (key("a"), key("b"), key("c"));
        states.remember(&settled, &state(false, 100), at(0));
        states.remember(&late, &state(true, 100), at(99));
        states.remember(&kept, &state(true, 100), at(0));
        assert_eq!(states.get(&settled, at(0)), None);
        assert_eq!(states.get(&late, at(0)), None);
        assert!(states.get(&kept, at(0)).is_some());
        states.forget(&kept);
        assert_eq!(states.get(&kept, at(0)), None);
    }

    #[test]
    fn states_past_their_use_are_swept_out() {
        let states = PendingStates::new(Duration::minutes(1));
        for i in 0..SWEEP_AT {
            states.remember(&key(&format!("s{i}")), &state(true, 10), at(0));
        }
        states.remember(&key("fresh"), &state(true, 1000), at(20));
        let known = states.lock();
        assert_eq!(known.states.len(), 1, "all but the one still usable");
        assert_eq!(known.sweep_at, 2);
    }
}
