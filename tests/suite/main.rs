//! Every integration test of Eventide, in one test binary: one module per area, and the harness
//! they share in [`kit`] (what the example reports need as well is in the `eventide-testkit`
//! crate).
//!
//! One binary rather than one per file because each test binary links the whole crate with the
//! Azure SDKs, and on a two-core CI those links were the larger part of the test build. The
//! tests run side by side on the harness's threads; see [`kit::exclusive`] for the few that
//! must not overlap.

mod kit;

mod azure_stack;
mod bad_input;
mod blob_quarantine;
mod chaos;
mod console;
mod cosmos_pipeline;
mod cosmos_store;
mod cost_bounds;
mod driver_parity;
mod end_to_end;
mod functions_config;
mod functions_contract;
mod functions_serve;
mod functions_servicebus;
mod fuzz_regressions;
mod harness;
mod identity_cosmos_keys;
mod identity_http;
mod infra_settings;
mod isolation_cosmos;
mod isolation_extreme_values;
mod isolation_lock_renewal;
mod isolation_refused_rows;
mod isolation_revisions;
mod isolation_sinks;
mod lateness_commit_race;
mod lateness_cosmos_ttl;
mod lateness_policy;
mod lateness_sink_range;
mod lateness_timestamp_range;
mod loadgen;
mod local_exposure;
mod openapi;
mod redelivery;
mod servicebus_client;
mod servicebus_dead_letters;
mod servicebus_live;
mod servicebus_pipeline;
mod sink_contract;
mod start_up_settings;
mod telemetry_app_insights;
mod telemetry_otlp;
mod telemetry_traces;
