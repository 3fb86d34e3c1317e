//! The counters in the Prometheus text exposition format (version 0.0.4), for `GET /metrics`
//! in local mode: the same [`Metrics`] that `/api/status` shows and the exporters mirror.

use std::fmt::Write as _;

use crate::pipeline::metrics::Metrics;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every counter as `eventide_<name>_total`, with its description as HELP.
pub fn render(metrics: &Metrics) -> String {
    let values = metrics.snapshot();
    let mut page = String::new();
    for counter in Metrics::DESCRIPTIONS {
        let value = values.get(counter.name).copied().unwrap_or_default();
        let name = format!("eventide_{}_total", counter.name);
        let help = counter.doc.replace('\\', "\\\\").replace('\n', "\\n");
        // Writing to a String cannot fail.
        let _ = writeln!(
            page,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_a_described_total() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.observations_accepted, 7);
        let page = render(&metrics);
        assert!(page.contains(
            "# TYPE eventide_observations_accepted_total counter\neventide_observations_accepted_total 7\n"
        ));
        let samples = page.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, Metrics::DESCRIPTIONS.len());
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.split_once(' ').unwrap();
            assert!(
                name.starts_with("eventide_") && name.ends_with("_total"),
                "{line}"
            );
            value.parse::<u64>().unwrap();
        }
    }
}
