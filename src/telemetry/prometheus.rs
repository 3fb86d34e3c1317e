//! The metrics in the Prometheus text exposition format (version 0.0.4), for `GET /metrics`
//! in local mode: the same [`Metrics`] that `/api/status` shows and the exporters mirror, under
//! the same instruments and attributes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::mirror::BACKLOG_DOC;
use crate::pipeline::metrics::{BUCKET_BOUNDS, Export, Metrics};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One exported counter family: its description and its samples (`{key="value"}` or nothing).
#[derive(Default)]
struct Family {
    help: &'static str,
    samples: Vec<(String, u64)>,
}

/// Every exported counter as `eventide_<instrument>_total` (a breakdown's counters as one
/// family with a label each), and every histogram as `eventide_<name>` with cumulative
/// `le` buckets, `_sum` and `_count`.
pub fn render(metrics: &Metrics, backlog: &[(&'static str, u64)]) -> String {
    let values = metrics.snapshot();
    let mut families: BTreeMap<&'static str, Family> = BTreeMap::new();
    let mut order = Vec::new();
    for counter in Metrics::counters() {
        // An adapter's counters only when it is attached.
        let Some(&value) = values.get(counter.name) else {
            continue;
        };
        let (instrument, labels) = match counter.export {
            Export::Local => continue,
            Export::Own => (counter.name, String::new()),
            Export::Grouped {
                instrument,
                key,
                value,
            } => (instrument, format!("{{{key}=\"{value}\"}}")),
        };
        let family = families.entry(instrument).or_insert_with(|| {
            order.push(instrument);
            Family {
                help: counter.doc,
                ..Family::default()
            }
        });
        family.samples.push((labels, value));
    }
    let mut page = String::new();
    // Writing to a String cannot fail.
    for instrument in order {
        let family = &families[instrument];
        let name = format!("eventide_{instrument}_total");
        let _ = writeln!(
            page,
            "# HELP {name} {}\n# TYPE {name} counter",
            escape(family.help)
        );
        for (labels, value) in &family.samples {
            let _ = writeln!(page, "{name}{labels} {value}");
        }
    }
    if !backlog.is_empty() {
        let name = "eventide_queue_backlog";
        let _ = writeln!(page, "# HELP {name} {BACKLOG_DOC}\n# TYPE {name} gauge");
        for (queue, waiting) in backlog {
            let _ = writeln!(page, "{name}{{queue=\"{queue}\"}} {waiting}");
        }
    }
    for (described, (_, histogram)) in Metrics::HISTOGRAMS.iter().zip(metrics.histograms()) {
        let name = format!("eventide_{}", described.name);
        let snapshot = histogram.snapshot();
        let _ = writeln!(
            page,
            "# HELP {name} {}\n# TYPE {name} histogram",
            escape(described.doc)
        );
        let mut cumulative = 0;
        for (bound, count) in BUCKET_BOUNDS.iter().zip(&snapshot.buckets) {
            cumulative += count;
            let _ = writeln!(page, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(
            page,
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
            snapshot.count, snapshot.sum_seconds, snapshot.count
        );
    }
    page
}

fn escape(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_described_totals_with_bounded_labels() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.observations_accepted, 7);
        metrics.reject("ts", 3);
        let page = render(&metrics, &[("observations", 4)]);
        assert!(page.contains(
            "# TYPE eventide_queue_backlog gauge\neventide_queue_backlog{queue=\"observations\"} 4\n"
        ));
        assert!(page.contains(
            "# TYPE eventide_observations_accepted_total counter\neventide_observations_accepted_total 7\n"
        ));
        assert!(page.contains("eventide_observations_rejected_total{class=\"ts\"} 3\n"));
        assert!(
            !page.contains("eventide_observations_rejected_total 3"),
            "the total is the sum of its classes, not a series of its own"
        );
        let counters = page
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("_total"))
            .count();
        let exported = Metrics::DESCRIPTIONS
            .iter()
            .filter(|c| c.export != Export::Local)
            .count();
        assert_eq!(counters, exported);
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("eventide_"), "{line}");
            value.parse::<f64>().unwrap();
        }
    }

    #[test]
    fn histograms_have_cumulative_buckets_sum_and_count() {
        let metrics = Metrics::default();
        metrics
            .sink_write_seconds
            .observe(std::time::Duration::from_millis(20));
        metrics
            .sink_write_seconds
            .observe(std::time::Duration::from_secs(2));
        let page = render(&metrics, &[]);
        for sample in [
            "# TYPE eventide_sink_write_seconds histogram\n",
            "eventide_sink_write_seconds_bucket{le=\"0.01\"} 0\n",
            "eventide_sink_write_seconds_bucket{le=\"0.025\"} 1\n",
            "eventide_sink_write_seconds_bucket{le=\"2.5\"} 2\n",
            "eventide_sink_write_seconds_bucket{le=\"+Inf\"} 2\n",
            "eventide_sink_write_seconds_sum 2.02\n",
            "eventide_sink_write_seconds_count 2\n",
        ] {
            assert!(page.contains(sample), "{sample} in {page}");
        }
    }
}
