//! NCRONTAB schedules, as the Functions timer trigger reads them:
//! `{second} {minute} {hour} {day} {month} {day-of-week}`, evaluated in UTC.
//!
//! The local runtime fires the summarize timer from the same expression as
//! `functions/summarize/function.json`, so both ways of running keep one schedule.

use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};

/// A parsed six-field NCRONTAB expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    expression: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(expression: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(format!(
                "NCRONTAB {expression:?} must have 6 fields ({{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}), found {}",
                fields.len()
            ));
        }
        let parse = |i: usize, name: &str, min: u32, max: u32, names: &[&str]| {
            parse_field(fields[i], min, max, names)
                .map_err(|e| format!("NCRONTAB {expression:?}, {name} field: {e}"))
        };
        let mut weekdays = parse(5, "day-of-week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(Self {
            seconds: parse(0, "second", 0, 59, &[])?,
            minutes: parse(1, "minute", 0, 59, &[])?,
            hours: parse(2, "hour", 0, 23, &[])?,
            days: parse(3, "day", 1, 31, &[])?,
            months: parse(4, "month", 1, 12, &MONTHS)?,
            weekdays,
            expression: expression.to_string(),
        })
    }
}

fn parse_value(text: &str, min: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        // Month names start at 1, weekday names at 0 (Sunday).
        return Ok(i as u32 + min);
    }
    text.parse::<u32>()
        .map_err(|_| format!("{text:?} is not a number"))
}

fn parse_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step {step:?} must be a positive number"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_value(a, min, names)?, parse_value(b, min, names)?)
        } else {
            let v = parse_value(range, min, names)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is outside {min}-{max}"));
        }
        for v in (lo..=hi).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

fn has(bits: u64, v: u32) -> bool {
    bits & (1 << v) != 0
}

impl Schedule {
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = after.duration_trunc(Duration::seconds(1)).ok()? + Duration::seconds(1);
        let limit = after + Duration::days(366 * 5);
        while t <= limit {
            if !has(self.months, t.month()) {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = chrono::NaiveDate::from_ymd_opt(y, m, 1)?
                    .and_hms_opt(0, 0, 0)?
                    .and_utc();
            } else if !has(self.days, t.day())
                || !has(self.weekdays, t.weekday().num_days_from_sunday())
            {
                t = (t.date_naive() + Duration::days(1))
                    .and_hms_opt(0, 0, 0)?
                    .and_utc();
            } else if !has(self.hours, t.hour()) {
                t = t.duration_trunc(Duration::hours(1)).ok()? + Duration::hours(1);
            } else if !has(self.minutes, t.minute()) {
                t = t.duration_trunc(Duration::minutes(1)).ok()? + Duration::minutes(1);
            } else if !has(self.seconds, t.second()) {
                t += Duration::seconds(1);
            } else {
                return Some(t);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn next(expr: &str, after: &str) -> String {
        expr.parse::<Schedule>()
            .unwrap()
            .next_after(at(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn common_expressions() {
        assert_eq!(
            next("0 5 0 * * *", "2025-06-02T00:05:00Z"),
            "2025-06-03T00:05:00+00:00"
        );
        assert_eq!(
            next("0 */5 * * * *", "2025-06-02T10:07:13Z"),
            "2025-06-02T10:10:00+00:00"
        );
        assert_eq!(
            next("*/10 * * * * *", "2025-06-02T10:07:13Z"),
            "2025-06-02T10:07:20+00:00"
        );
        assert_eq!(
            next("0 30 9 * * MON-FRI", "2025-06-06T10:00:00Z"),
            "2025-06-09T09:30:00+00:00"
        );
        assert_eq!(
            next("0 0 0 1 JAN *", "2025-06-06T10:00:00Z"),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 12 * * 0", "2025-06-02T00:00:00Z"),
            "2025-06-08T12:00:00+00:00"
        );
        assert_eq!(
            next("0 0 12 * * 7", "2025-06-02T00:00:00Z"),
            "2025-06-08T12:00:00+00:00"
        );
        assert_eq!(
            next("0 0 0 29 2 *", "2025-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
    }

    #[test]
    fn invalid_expressions_say_why() {
        for (expr, needle) in [
            ("0 5 0 * *", "6 fields"),
            ("0 61 * * * *", "minute field"),
            ("0 */0 * * * *", "step"),
            ("x * * * * *", "not a number"),
        ] {
            let err = expr.parse::<Schedule>().unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
