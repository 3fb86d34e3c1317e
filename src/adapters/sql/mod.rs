//! Summary sinks: the `daily_summary` table in the SQL database the user runs.

pub mod sqlite;
