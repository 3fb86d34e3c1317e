//! Drivers expose the application built by [`crate::app`]: the local runtime, the Functions
//! custom handler, the CLI and the demo. They wire and translate; the behaviour they share
//! (replies, error mapping, the end of day) is written once, in [`reply`] and [`crate::app`].

pub mod cli;
pub mod cost;
pub mod demo;
pub mod functions;
pub mod loadgen;
pub mod local;
pub mod quarantine;
pub mod reply;
pub mod server;
pub mod staging;
pub mod timer_schedule;
