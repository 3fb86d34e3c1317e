//! What Eventide's integration tests (`tests/suite`) and example reports (`examples/reports`)
//! share, as a crate of its own so both reach it through a real API instead of including test
//! files by path, and so the Cosmos SDK's emulator features stay out of the library.
//!
//! - [`settings`]: the runtime's default settings, built without reading the environment, and
//!   [`every_port_embedded`] for the Functions driver's single-instance trials;
//! - [`command`]: a child process that inherits none of the caller's `EVENTIDE_*` variables;
//! - [`child`]: the `eventide` binary as a child process, started the way the Functions host
//!   starts it;
//! - [`fake_service_bus`]: `FakeServiceBus`, a loopback FAKE of the Service Bus REST contract;
//! - [`azure_mode`]: the pipeline with both queues on that fake, through the real REST client;
//! - [`cosmos`]: the Cosmos DB adapter on the SDK's in-memory emulator.
//!
//! Everything that builds runtime settings goes through [`settings`], and every child process
//! through [`command`], so a developer's shell (say, one with `EVENTIDE_SERVICEBUS` set) never
//! changes what a test or a report runs against.

pub mod azure_mode;
pub mod child;
pub mod cosmos;
pub mod fake_service_bus;

use std::ffi::OsStr;
use std::path::PathBuf;

use eventide::app::Config;
use eventide::app::config::{QuarantineTarget, QueueBackend, SinkTarget, StoreBackend};

/// The runtime's default settings on the SQLite file `db`, on a free port.
///
/// The defaults are the CLI's own (one source of truth), built with every setting's
/// environment lookup switched off ([`Config::on_file`]), so whatever `EVENTIDE_*` variables the
/// calling process has never reach a test or a report.
pub fn settings(db: impl Into<PathBuf>) -> Config {
    Config::on_file(db.into())
}

/// Chooses every port explicitly on the embedded file, as a single-instance trial under the
/// Functions driver must (it refuses implicit backends); a test that points one port elsewhere
/// changes that one afterwards.
pub fn every_port_embedded(config: &mut Config) {
    let backends = &mut config.backends;
    backends.series_day_store = Some(StoreBackend::Embedded);
    backends.observations_backend = Some(QueueBackend::Embedded);
    backends.summaries_backend = Some(QueueBackend::Embedded);
    backends.summary_sink = Some(SinkTarget::Embedded);
    backends.quarantine = Some(QuarantineTarget::Embedded);
}

/// Variables that would configure a child process behind the caller's back: Eventide's own
/// settings, and the Functions host's (whose port makes the binary act as a custom handler).
const AMBIENT_PREFIXES: [&str; 2] = ["EVENTIDE_", "FUNCTIONS_"];

/// A command for `program` that inherits the caller's environment except every `EVENTIDE_*`
/// and `FUNCTIONS_*` variable, so only what the caller sets on it configures the child.
pub fn command(program: impl AsRef<OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if AMBIENT_PREFIXES.iter().any(|p| text.starts_with(p)) {
            command.env_remove(&name);
        }
    }
    command
}
