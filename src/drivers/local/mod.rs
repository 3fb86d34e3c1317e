//! `eventide local`: the whole flow in one process, on the embedded file unless the settings
//! put a port elsewhere. The triggers run in-process: the local HTTP API for ingest, workers
//! pumping the observations queue, and the summarize timer on the NCRONTAB schedule of
//! `functions/summarize/function.json` (see [`crate::drivers::server`]).

pub mod api_key;
pub mod console;
pub mod http;
pub mod openapi;
pub mod workers;
