//! Which backend each port runs on, decided from the settings before anything is opened.
//!
//! Locally, a port left unset runs on the embedded file, so a bare machine runs the whole flow.
//! Under the Functions host that default would be a trap: every instance of a scaled-out app
//! would keep its own SQLite file, splitting series-days, summaries and quarantine across
//! instances and losing them when an instance is recycled. There, every port needs an explicit
//! choice (`embedded` included, for a single-instance trial), and start-up names each missing
//! setting.

use super::Driver;
use super::config::{BackendConfig, QuarantineTarget, QueueBackend, SinkTarget, StoreBackend};

/// The backend of every port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortChoices {
    pub store: StoreBackend,
    pub observations: QueueBackend,
    pub summaries: QueueBackend,
    pub sink: SinkTarget,
    pub quarantine: QuarantineTarget,
}

impl PortChoices {
    /// Decides every port, or explains every setting that is missing or inconsistent.
    pub fn decide(backends: &BackendConfig, driver: Driver) -> anyhow::Result<Self> {
        let mut problems = Vec::new();
        let strict = driver == Driver::Functions;
        let store = explicit_or_embedded(
            backends.series_day_store,
            StoreBackend::Embedded,
            "EVENTIDE_SERIES_DAY_STORE",
            "`cosmos`",
            strict,
            &mut problems,
        );
        let service_bus = backends.servicebus.is_configured();
        let mut queue = |setting: &'static str, chosen: Option<QueueBackend>| match chosen {
            Some(QueueBackend::Servicebus) if !service_bus => {
                problems.push(format!(
                    "{setting}=servicebus needs EVENTIDE_SERVICEBUS or EVENTIDE_SERVICEBUS_NAMESPACE"
                ));
                QueueBackend::Servicebus
            }
            Some(backend) => backend,
            None if service_bus => QueueBackend::Servicebus,
            None => explicit_or_embedded(
                None,
                QueueBackend::Embedded,
                setting,
                "configure EVENTIDE_SERVICEBUS or EVENTIDE_SERVICEBUS_NAMESPACE",
                strict,
                &mut problems,
            ),
        };
        let observations = queue(
            "EVENTIDE_OBSERVATIONS_BACKEND",
            backends.observations_backend,
        );
        let summaries = queue("EVENTIDE_SUMMARIES_BACKEND", backends.summaries_backend);
        let sink = explicit_or_embedded(
            backends.summary_sink.clone(),
            SinkTarget::Embedded,
            "EVENTIDE_SUMMARY_SINK",
            "an Azure SQL connection string or a postgres:// URL",
            strict,
            &mut problems,
        );
        let quarantine = explicit_or_embedded(
            backends.quarantine.clone(),
            QuarantineTarget::Embedded,
            "EVENTIDE_QUARANTINE",
            "a Blob service URL",
            strict,
            &mut problems,
        );
        if !problems.is_empty() {
            anyhow::bail!("{}", problems.join("; "));
        }
        Ok(Self {
            store,
            observations,
            summaries,
            sink,
            quarantine,
        })
    }

    /// Whether any port runs on the embedded file (which is opened only then).
    pub fn uses_embedded(&self) -> bool {
        self.store == StoreBackend::Embedded
            || self.uses_embedded_queue()
            || self.sink == SinkTarget::Embedded
            || self.quarantine == QuarantineTarget::Embedded
    }

    /// Whether a queue port runs on the embedded file (its workers run in-process, and it
    /// quarantines messages delivered too often in the embedded table).
    pub fn uses_embedded_queue(&self) -> bool {
        self.observations == QueueBackend::Embedded || self.summaries == QueueBackend::Embedded
    }

    /// Whether a queue port runs on Service Bus.
    pub fn uses_service_bus(&self) -> bool {
        self.observations == QueueBackend::Servicebus || self.summaries == QueueBackend::Servicebus
    }
}

/// The chosen backend; unset, the embedded one — refused under the host (`strict`), where the
/// problem names the setting and what to set it to.
fn explicit_or_embedded<T>(
    chosen: Option<T>,
    embedded: T,
    setting: &str,
    hint: &str,
    strict: bool,
    problems: &mut Vec<String>,
) -> T {
    if chosen.is_none() && strict {
        problems.push(format!(
            "{setting} is not set; under the Functions host every port needs an explicit \
             backend ({hint}, or `embedded` for a single-instance trial)"
        ));
    }
    chosen.unwrap_or(embedded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::config::Config;
    use azure_core::credentials::Secret;

    fn backends() -> BackendConfig {
        Config::defaults().backends
    }

    #[test]
    fn locally_every_unset_port_is_embedded() {
        let choices = PortChoices::decide(&backends(), Driver::Local).unwrap();
        assert_eq!(choices.store, StoreBackend::Embedded);
        assert_eq!(choices.observations, QueueBackend::Embedded);
        assert_eq!(choices.sink, SinkTarget::Embedded);
        assert!(choices.uses_embedded());
    }

    #[test]
    fn under_the_host_every_unset_port_is_named() {
        let err = PortChoices::decide(&backends(), Driver::Functions)
            .unwrap_err()
            .to_string();
        for setting in [
            "EVENTIDE_SERIES_DAY_STORE",
            "EVENTIDE_OBSERVATIONS_BACKEND",
            "EVENTIDE_SUMMARIES_BACKEND",
            "EVENTIDE_SUMMARY_SINK",
            "EVENTIDE_QUARANTINE",
        ] {
            assert!(err.contains(setting), "{setting} missing from: {err}");
        }
    }

    #[test]
    fn service_bus_chooses_the_queues_but_not_the_store() {
        let mut config = backends();
        config.servicebus.connection = Some(Secret::new(
            "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v",
        ));
        config.summary_sink = Some(SinkTarget::Embedded);
        config.quarantine = Some(QuarantineTarget::Embedded);
        let err = PortChoices::decide(&config, Driver::Functions)
            .unwrap_err()
            .to_string();
        assert!(err.contains("EVENTIDE_SERIES_DAY_STORE"), "{err}");
        assert!(!err.contains("EVENTIDE_OBSERVATIONS_BACKEND"), "{err}");

        config.series_day_store = Some(StoreBackend::Embedded);
        let choices = PortChoices::decide(&config, Driver::Functions).unwrap();
        assert_eq!(choices.observations, QueueBackend::Servicebus);
        assert_eq!(choices.summaries, QueueBackend::Servicebus);
        assert!(!choices.uses_embedded_queue());
    }

    #[test]
    fn explicit_embedded_everywhere_is_accepted_under_the_host() {
        let mut config = backends();
        config.series_day_store = Some(StoreBackend::Embedded);
        config.observations_backend = Some(QueueBackend::Embedded);
        config.summaries_backend = Some(QueueBackend::Embedded);
        config.summary_sink = Some(SinkTarget::Embedded);
        config.quarantine = Some(QuarantineTarget::Embedded);
        assert!(PortChoices::decide(&config, Driver::Functions).is_ok());
    }

    #[test]
    fn service_bus_chosen_without_a_connection_is_refused() {
        let mut config = backends();
        config.observations_backend = Some(QueueBackend::Servicebus);
        let err = PortChoices::decide(&config, Driver::Local)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("EVENTIDE_OBSERVATIONS_BACKEND=servicebus needs"),
            "{err}"
        );
    }

    #[test]
    fn nothing_embedded_means_the_file_is_not_needed() {
        let choices = PortChoices {
            store: StoreBackend::Cosmos,
            observations: QueueBackend::Servicebus,
            summaries: QueueBackend::Servicebus,
            sink: SinkTarget::Postgres(Secret::new("postgres://h/db")),
            quarantine: QuarantineTarget::BlobConnectionString(Secret::new(
                "UseDevelopmentStorage=true",
            )),
        };
        assert!(!choices.uses_embedded());
    }
}
