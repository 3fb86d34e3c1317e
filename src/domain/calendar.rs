//! Day boundaries in the configured time zone.
//!
//! A day is the calendar date of an observation's timestamp in one time zone (UTC unless
//! configured). Boundaries are computed with the zone's rules, so days around a daylight-saving
//! change are 23 or 25 hours long and a midnight that does not exist starts the day at the first
//! instant that does.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Maps timestamps to days and days to their UTC bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calendar {
    tz: Tz,
}

impl Default for Calendar {
    fn default() -> Self {
        Self { tz: Tz::UTC }
    }
}

impl Calendar {
    pub fn new(tz: Tz) -> Self {
        Self { tz }
    }

    /// Parses an IANA zone name such as `Europe/Zurich`.
    pub fn from_name(name: &str) -> Result<Self, String> {
        name.parse::<Tz>().map(Self::new).map_err(|_| {
            format!(
                "unknown time zone {name:?} (expected an IANA name such as UTC or Europe/Zurich)"
            )
        })
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The day of a timestamp (UTC nanoseconds).
    pub fn day_of(&self, ts: i64) -> NaiveDate {
        DateTime::<Utc>::from_timestamp_nanos(ts)
            .with_timezone(&self.tz)
            .date_naive()
    }

    /// The first instant of `day`.
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        let midnight = day.and_time(NaiveTime::MIN);
        // A zone may skip midnight (a DST jump at 00:00): then the day starts at the first
        // existing minute after it.
        (0..=180)
            .find_map(|minutes| {
                self.tz
                    .from_local_datetime(&(midnight + chrono::Duration::minutes(minutes)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
    }

    /// The first instant after `day`.
    pub fn end_of(&self, day: NaiveDate) -> DateTime<Utc> {
        self.start_of(day.checked_add_days(Days::new(1)).unwrap_or(day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::observation::parse_ts;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn utc_by_default() {
        let cal = Calendar::default();
        let ts = parse_ts("2026-11-24T23:30:00-05:00").unwrap();
        assert_eq!(cal.day_of(ts), date("2026-11-25"));
        assert_eq!(
            cal.end_of(date("2026-11-25")).to_rfc3339(),
            "2026-11-26T00:00:00+00:00"
        );
    }

    #[test]
    fn zoned_days_follow_daylight_saving() {
        let cal = Calendar::from_name("Europe/Zurich").unwrap();
        let ts = parse_ts("2026-03-28T23:30:00Z").unwrap();
        assert_eq!(cal.day_of(ts), date("2026-03-29"));
        let day = date("2026-03-29");
        let hours = (cal.end_of(day) - cal.start_of(day)).num_hours();
        assert_eq!(hours, 23);
        let autumn = date("2026-10-25");
        assert_eq!((cal.end_of(autumn) - cal.start_of(autumn)).num_hours(), 25);
    }

    #[test]
    fn skipped_midnight_starts_the_day_at_the_first_real_instant() {
        // America/Santiago springs forward at 00:00 local time.
        let cal = Calendar::from_name("America/Santiago").unwrap();
        let start = cal.start_of(date("2026-09-06"));
        assert_eq!(
            cal.day_of(start.timestamp_nanos_opt().unwrap()),
            date("2026-09-06")
        );
        assert!(Calendar::from_name("Mars/Olympus").is_err());
    }
}
