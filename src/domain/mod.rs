//! Pure types and math: no I/O, no clock, no SDK. Everything here is deterministic and
//! unit-testable on its own.

pub mod calendar;
pub mod idempotency;
pub mod lateness;
pub mod message;
pub mod observation;
pub mod parse;
pub mod schedule;
pub mod series;
pub mod series_day;
pub mod stats;
