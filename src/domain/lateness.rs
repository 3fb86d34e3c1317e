//! Which days still take data.
//!
//! A day is **open** until `max_lateness` after it ends and **closed** from then on. Data for a
//! closed day is refused (at ingest) or quarantined (from the queue) with the reason, never
//! merged: its points may be gone already, and a handful of late points would otherwise start a
//! new, nearly empty day whose summary replaces or silently loses to the full day's row. The
//! stores keep a day's points longer than any day stays open, so every point an open day takes
//! lands among the points it already has. A closed day changes only by a deliberate restatement
//! of the whole day.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::calendar::Calendar;

/// The open days as of one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayWindow {
    calendar: Calendar,
    max_lateness: Duration,
    /// The earliest open day: the day holding the instant `max_lateness` before now. Every
    /// earlier day ended by then.
    first_open: NaiveDate,
    /// Where the earliest open day starts, in UTC nanoseconds; `None` when that is before the
    /// first representable instant (then no timestamp is in a closed day).
    first_open_ns: Option<i64>,
}

impl DayWindow {
    /// The window as of `now`.
    pub fn at(calendar: Calendar, max_lateness: Duration, now: DateTime<Utc>) -> Self {
        let horizon = now - max_lateness;
        let first_open = horizon.with_timezone(&calendar.tz()).date_naive();
        Self {
            calendar,
            max_lateness,
            first_open,
            first_open_ns: calendar.start_of(first_open).timestamp_nanos_opt(),
        }
    }

    pub fn is_closed(&self, day: NaiveDate) -> bool {
        day < self.first_open
    }

    /// Whether the day of `ts` (UTC nanoseconds) is closed, without working out the day: days
    /// are consecutive, so that is every instant before the earliest open day starts.
    pub fn is_closed_at(&self, ts: i64) -> bool {
        self.first_open_ns.is_some_and(|start| ts < start)
    }

    /// When `day` closes (or closed).
    pub fn closes_at(&self, day: NaiveDate) -> DateTime<Utc> {
        self.calendar.end_of(day) + self.max_lateness
    }

    /// Why data for `day`, a closed day, is not taken.
    pub fn refusal(&self, day: NaiveDate) -> String {
        format!(
            "day {day} closed at {} (EVENTIDE_MAX_LATENESS after its end); restate the whole day \
             with `eventide backfill`",
            self.closes_at(day)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_day_closes_max_lateness_after_its_end() {
        let utc = Calendar::default();
        let day = date("2026-11-20");
        let closing: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
        let just_before = DayWindow::at(utc, Duration::days(1), closing - Duration::nanoseconds(1));
        assert!(!just_before.is_closed(day));
        let at_close = DayWindow::at(utc, Duration::days(1), closing);
        assert!(at_close.is_closed(day));
        let last_instant = closing - Duration::days(1) - Duration::nanoseconds(1);
        let ns = |t: DateTime<Utc>| t.timestamp_nanos_opt().unwrap();
        assert!(at_close.is_closed_at(ns(last_instant)));
        assert!(!at_close.is_closed_at(ns(last_instant) + 1));
        assert!(!just_before.is_closed_at(ns(last_instant)));
        assert!(!at_close.is_closed(date("2026-11-21")));
        assert_eq!(at_close.closes_at(day), closing);
        assert!(
            at_close
                .refusal(day)
                .starts_with("day 2026-11-20 closed at 2026-11-22T00:00:00Z"),
            "{}",
            at_close.refusal(day)
        );
    }

    #[test]
    fn zoned_days_close_at_their_own_end() {
        // Zurich's 2026-03-29 ends at 22:00Z (summer time); with two hours' lateness it closes
        // at midnight UTC.
        let zurich = Calendar::from_name("Europe/Zurich").unwrap();
        let day = date("2026-03-29");
        let close: DateTime<Utc> = "2026-03-30T00:00:00Z".parse().unwrap();
        let lateness = Duration::hours(2);
        assert_eq!(DayWindow::at(zurich, lateness, close).closes_at(day), close);
        assert!(!DayWindow::at(zurich, lateness, close - Duration::seconds(1)).is_closed(day));
        let closed = DayWindow::at(zurich, lateness, close);
        assert!(closed.is_closed(day));
        let day_end = close - lateness;
        let ns = day_end.timestamp_nanos_opt().unwrap();
        assert!(closed.is_closed_at(ns - 1) && !closed.is_closed_at(ns));
    }
}
