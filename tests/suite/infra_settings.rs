//! The deployment and the code agree. `infra/eventide.settings.json` holds the values the code
//! assumes of its Azure resources; the Bicep templates load it and the code reads it
//! (`eventide::infra_settings`). These tests check the three sides against each other:
//!
//! * the queue properties in the file satisfy what the adapters, `host.json` and the `process`
//!   trigger assume (a drifted lock duration, window or delivery count fails here);
//! * the templates take queue and container properties from the file, never from literals;
//! * every app setting the templates set is one the binary or the Functions host reads, and with
//!   them `serve` starts with every port chosen (under the host an unset port is an error).
//!
//! The Bicep CLI and Azure do not run here: the templates are read as text (they are parsed and
//! linted by `scripts/check-infra`), and the Functions host is represented by the settings it
//! documents, not run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use eventide::adapters::cosmos::layout::HeaderDoc;
use eventide::app::Driver;
use eventide::app::choices::PortChoices;
use eventide::app::config::{QuarantineTarget, QueueBackend, SinkTarget, StoreBackend};
use eventide::domain::series::SeriesId;
use eventide::drivers::cli::{Cli, Command};
use eventide::infra_settings::{Queue, infra_settings};
use serde_json::Value;

/// Service Bus limits (Standard tier): duplicate-detection window 20 s to 7 days, lock duration
/// at most 5 minutes.
const SERVICE_BUS_MAX_WINDOW: Duration = Duration::from_secs(7 * 86_400);
const SERVICE_BUS_MAX_LOCK: Duration = Duration::from_secs(5 * 60);
/// The observations queue drops the chunks of an ingest request re-sent within this time
/// (docs/deployment.md, "Queue properties the code assumes").
const OBSERVATIONS_MIN_WINDOW: Duration = Duration::from_secs(10 * 60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&read(&repo().join(path))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every template under infra/, with its path relative to the repository.
fn templates() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut folders = vec![repo().join("infra")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "bicep") {
                let name = path.strip_prefix(repo()).unwrap().display().to_string();
                found.push((name, read(&path)));
            }
        }
    }
    assert!(found.len() > 1, "no templates under infra/");
    found
}

/// An ISO 8601 duration of days, hours, minutes and seconds (`P2D`, `PT10M`, `PT1H30M`), the
/// form ARM takes queue durations in.
fn iso_duration(text: &str) -> Duration {
    let rest = text
        .strip_prefix('P')
        .unwrap_or_else(|| panic!("{text:?}: no P"));
    let (mut seconds, mut number, mut in_time) = (0u64, String::new(), false);
    for c in rest.chars() {
        let unit = match (c, in_time) {
            ('T', false) => {
                in_time = true;
                continue;
            }
            (d, _) if d.is_ascii_digit() => {
                number.push(d);
                continue;
            }
            ('D', false) => 86_400,
            ('H', true) => 3_600,
            ('M', true) => 60,
            ('S', true) => 1,
            _ => panic!("{text:?} is not an ISO 8601 duration this test reads"),
        };
        seconds += number.parse::<u64>().unwrap() * unit;
        number.clear();
    }
    Duration::from_secs(seconds)
}

fn property<'a>(queue: &'a Queue, name: &str) -> &'a Value {
    queue
        .properties
        .get(name)
        .unwrap_or_else(|| panic!("queue {} sets no {name}", queue.name))
}

fn duration_of(queue: &Queue, name: &str) -> Duration {
    iso_duration(property(queue, name).as_str().expect("a duration string"))
}

/// "00:05:00" (host.json's functionTimeout).
fn clock_duration(text: &str) -> Duration {
    let parts: Vec<u64> = text.split(':').map(|p| p.parse().unwrap()).collect();
    Duration::from_secs(parts[0] * 3_600 + parts[1] * 60 + parts[2])
}

#[test]
fn queue_properties_are_what_the_adapters_assume() {
    let settings = infra_settings();
    let (observations, summaries) = (
        &settings.service_bus.observations,
        &settings.service_bus.summaries,
    );
    let embedded = eventide::app::Config::defaults().embedded;
    let host = json("host.json");
    let process = json("functions/process/function.json");
    let trigger = &process["bindings"][0];

    // Names: the trigger reads the queue ingest sends to.
    assert_eq!(trigger["queueName"], observations.name.as_str());
    assert_eq!(trigger["isSessionsEnabled"], false);

    for queue in [observations, summaries] {
        // The process trigger has sessions off, summarize receives over REST (no sessions),
        // and quarantine replay sends without a SessionId.
        assert_eq!(
            property(queue, "requiresSession"),
            false,
            "{}: sessions",
            queue.name
        );
        assert_eq!(
            property(queue, "requiresDuplicateDetection"),
            true,
            "{}: duplicate detection",
            queue.name
        );
        // The embedded queues stand in for these two and quarantine after as many deliveries.
        assert_eq!(
            property(queue, "maxDeliveryCount"),
            embedded.max_deliveries,
            "{}: max delivery count",
            queue.name
        );
        let window = duration_of(queue, "duplicateDetectionHistoryTimeWindow");
        assert!(
            window <= SERVICE_BUS_MAX_WINDOW,
            "{}: window {window:?}",
            queue.name
        );
        let lock = duration_of(queue, "lockDuration");
        assert!(
            lock <= SERVICE_BUS_MAX_LOCK,
            "{}: lock {lock:?}",
            queue.name
        );
    }

    // One summarize message per (series, day, epoch): the window covers a day's first schedule
    // through its last retry, as the embedded queue's window does.
    let summaries_window = duration_of(summaries, "duplicateDetectionHistoryTimeWindow");
    assert!(
        summaries_window.as_secs() >= embedded.dedup_window.num_seconds() as u64,
        "summaries window {summaries_window:?} is shorter than the embedded queue's {}s",
        embedded.dedup_window.num_seconds()
    );
    assert!(
        duration_of(observations, "duplicateDetectionHistoryTimeWindow") >= OBSERVATIONS_MIN_WINDOW
    );
    // summarize renews its locks at half the lock duration; the embedded queue's lock is the
    // shortest it is tested with.
    let summaries_lock = duration_of(summaries, "lockDuration");
    assert!(
        summaries_lock.as_secs() >= embedded.lock_duration.num_seconds() as u64,
        "summaries lock {summaries_lock:?}"
    );
    // The host does not renew the locks of a batch: the lock must outlast an invocation.
    let timeout = clock_duration(host["functionTimeout"].as_str().unwrap());
    let observations_lock = duration_of(observations, "lockDuration");
    assert!(
        observations_lock >= timeout,
        "observations lock {observations_lock:?} is shorter than functionTimeout {timeout:?}"
    );

    // The trigger's concurrency, capped for the Cosmos DB budget, is host.json's.
    let service_bus = &host["extensions"]["serviceBus"];
    assert_eq!(
        service_bus["maxConcurrentCalls"],
        settings.service_bus_trigger.max_concurrent_calls
    );
    assert_eq!(
        service_bus["maxMessageBatchSize"],
        settings.service_bus_trigger.max_message_batch_size
    );
}

#[test]
fn the_cosmos_container_is_the_one_the_store_creates() {
    let cosmos = &infra_settings().cosmos;
    let policy =
        serde_json::to_value(eventide::adapters::cosmos::client::indexing_policy()).unwrap();
    let paths = |key: &str| -> Vec<String> {
        policy[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap().to_string())
            .collect()
    };
    let file_paths = |list: &[eventide::infra_settings::IndexedPath]| -> Vec<String> {
        list.iter().map(|p| p.path.clone()).collect()
    };
    assert_eq!(
        paths("includedPaths"),
        file_paths(&cosmos.indexing_policy.included_paths)
    );
    assert_eq!(
        paths("excludedPaths"),
        file_paths(&cosmos.indexing_policy.excluded_paths)
    );
    // The points are never indexed: everything but the listed header fields is excluded.
    assert_eq!(file_paths(&cosmos.indexing_policy.excluded_paths), ["/*"]);

    // The partition key and every indexed path are fields of the documents the store writes.
    let header = serde_json::to_value(HeaderDoc {
        id: "2026-12-01".into(),
        series_id: SeriesId::parse("plant-1/temp").unwrap(),
        day: "2026-12-01".into(),
        kind: "h".into(),
        epoch: 0,
        pending: true,
        due_at: 0,
        touched: 0,
        summarized_revision: None,
        ttl: -1,
    })
    .unwrap();
    let field = |path: &str| {
        path.trim_start_matches('/')
            .trim_end_matches("/?")
            .to_string()
    };
    assert_eq!(
        header[field(&cosmos.partition_key_path)],
        "plant-1/temp",
        "the partition key path {} is not the series' field",
        cosmos.partition_key_path
    );
    for indexed in &cosmos.indexing_policy.included_paths {
        assert!(
            header.get(field(&indexed.path)).is_some(),
            "{} is indexed but no header field",
            indexed.path
        );
    }
    // Documents outlive the latest a day may still take data (EVENTIDE_MAX_LATENESS).
    let lateness = eventide::app::Config::defaults().pipeline.max_lateness;
    assert!(cosmos.default_ttl_seconds as i64 > lateness.num_seconds());
}

/// Keys whose values must come from the settings file in every template: the queue properties
/// and the container's layout.
fn managed_keys() -> BTreeSet<String> {
    let settings = infra_settings();
    let mut keys: BTreeSet<String> = [
        &settings.service_bus.observations,
        &settings.service_bus.summaries,
    ]
    .iter()
    .flat_map(|queue| queue.properties.keys().cloned())
    .collect();
    keys.extend(
        [
            "defaultTtl",
            "indexingPolicy",
            "includedPaths",
            "excludedPaths",
        ]
        .map(String::from),
    );
    keys
}

#[test]
fn the_templates_take_queue_and_container_properties_from_the_settings_file() {
    let keys = managed_keys();
    let mut literals = Vec::new();
    for (name, text) in templates() {
        for (number, line) in text.lines().enumerate() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            let value = value.trim();
            let from_file = ["settings.", "cosmos.", "queue."]
                .iter()
                .any(|prefix| value.starts_with(prefix));
            if keys.contains(key) && !from_file {
                literals.push(format!("{name}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        literals.is_empty(),
        "set these in infra/eventide.settings.json, not in the template:\n{}",
        literals.join("\n")
    );
    let all: String = templates().into_iter().map(|(_, text)| text).collect();
    for wiring in [
        "properties: queue.properties",
        "paths: [cosmos.partitionKeyPath]",
        "defaultTtl: cosmos.defaultTtlSeconds",
        "indexingPolicy: cosmos.indexingPolicy",
        "loadJsonContent('../eventide.settings.json')",
    ] {
        assert!(all.contains(wiring), "no template says `{wiring}`");
    }
}

/// The app settings the Function App gets: the fixed ones from the settings file, and the ones
/// between the markers in functionapp.bicep (name → the Bicep expression).
fn app_settings() -> BTreeMap<String, String> {
    let template = read(&repo().join("infra/modules/functionapp.bicep"));
    let start = template
        .find("// app-settings:start")
        .expect("start marker");
    let end = template.find("// app-settings:end").expect("end marker");
    let mut settings: BTreeMap<String, String> = infra_settings()
        .app_settings
        .iter()
        .map(|(k, v)| (k.clone(), format!("'{v}'")))
        .collect();
    for line in template[start..end].lines() {
        if let Some((name, expression)) = line.trim().split_once(':')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            settings.insert(name.to_string(), expression.trim().to_string());
        }
    }
    assert!(settings.len() > 10, "found only {settings:?}");
    settings
}

/// A value like the one the deployment gives each setting: the fixed ones as they are, the
/// others modelled on what the templates compute (the SQL sink from sql.bicep's own output,
/// with its resource names filled in).
fn deployed_value(name: &str, expression: &str) -> String {
    if let Some(fixed) = infra_settings().app_settings.get(name) {
        return fixed.clone();
    }
    let sql = read(&repo().join("infra/modules/sql.bicep"));
    let sink = sql
        .lines()
        .find_map(|l| l.strip_prefix("output summarySink string = '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("sql.bicep outputs summarySink");
    let settings = infra_settings();
    match name {
        "EVENTIDE_AZURE_CLIENT_ID" => "00000000-0000-0000-0000-000000000001".into(),
        "EVENTIDE_TIME_ZONE" => "Europe/Zurich".into(),
        "EVENTIDE_COSMOS_ENDPOINT" => "https://cosmos-eventide-x.documents.azure.com:443/".into(),
        "EVENTIDE_COSMOS_DATABASE" => settings.cosmos.database.clone(),
        "EVENTIDE_COSMOS_CONTAINER" => settings.cosmos.container.clone(),
        "EVENTIDE_COSMOS_TTL_SECONDS" => settings.cosmos.default_ttl_seconds.to_string(),
        "EVENTIDE_COSMOS_RU_PER_SECOND" => "10".into(),
        "EVENTIDE_SERVICEBUS_NAMESPACE" => "sb-eventide-x.servicebus.windows.net".into(),
        "EVENTIDE_OBSERVATIONS_QUEUE" => settings.service_bus.observations.name.clone(),
        "EVENTIDE_SUMMARIES_QUEUE" => settings.service_bus.summaries.name.clone(),
        "EVENTIDE_QUARANTINE" => "https://steventidex.blob.core.windows.net/".into(),
        "EVENTIDE_QUARANTINE_CONTAINER" => settings.storage.quarantine_container.clone(),
        "EVENTIDE_SUMMARY_SINK" => sink
            .replace(
                "${server.properties.fullyQualifiedDomainName}",
                "sql-x.database.windows.net",
            )
            .replace("${database.name}", "eventide"),
        _ => panic!("{name} = {expression}: give it a deployed-like value in this test"),
    }
}

/// The serve command's settings: environment variable → long flag.
fn serve_flags() -> BTreeMap<String, String> {
    let command = Cli::command();
    let serve = command
        .get_subcommands()
        .find(|c| c.get_name() == "serve")
        .unwrap();
    serve
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            Some((env, arg.get_long()?.to_string()))
        })
        .collect()
}

/// The settings section of docs/configuration.md about what the Functions host reads.
fn host_settings_doc() -> String {
    let docs = read(&repo().join("docs/configuration.md"));
    let start = docs
        .find("## Settings the Functions host reads")
        .expect("section");
    let end = docs[start + 3..]
        .find("\n## ")
        .map_or(docs.len(), |i| start + 3 + i);
    docs[start..end].to_string()
}

#[test]
fn every_app_setting_the_templates_set_is_read_and_serve_starts_with_them() {
    let settings = app_settings();
    let flags = serve_flags();
    let host_doc = host_settings_doc();
    let mut args = vec![
        "eventide".to_string(),
        "serve".into(),
        "--handler-port".into(),
        "7072".into(),
    ];
    for (name, expression) in &settings {
        if name.starts_with("EVENTIDE_") {
            let flag = flags.get(name).unwrap_or_else(|| {
                panic!("the templates set {name}, which eventide does not read")
            });
            args.push(format!("--{flag}"));
            args.push(deployed_value(name, expression));
        } else {
            assert!(
                host_doc.contains(&format!("`{name}`")),
                "the templates set {name}: neither Eventide's nor listed in docs/configuration.md \
                 under \"Settings the Functions host reads\""
            );
        }
    }

    // Parse as the binary would, ignoring this process's environment.
    let command =
        Cli::command().mut_subcommand("serve", |serve| serve.mut_args(|arg| arg.env(None)));
    let matches = command
        .try_get_matches_from(&args)
        .unwrap_or_else(|e| panic!("the deployed settings do not parse: {e}"));
    let Some(Command::Serve { config, .. }) = Cli::from_arg_matches(&matches).unwrap().command
    else {
        panic!("not serve");
    };
    // Under the host every port must be chosen; with these settings none is embedded.
    let choices = PortChoices::decide(&config.backends, Driver::Functions)
        .unwrap_or_else(|e| panic!("serve would refuse to start: {e}"));
    assert_eq!(choices.store, StoreBackend::Cosmos);
    assert_eq!(choices.observations, QueueBackend::Servicebus);
    assert_eq!(choices.summaries, QueueBackend::Servicebus);
    assert!(
        matches!(choices.sink, SinkTarget::SqlServer(_)),
        "{:?}",
        choices.sink
    );
    assert!(
        matches!(
            config.backends.quarantine,
            Some(QuarantineTarget::BlobServiceUrl(_))
        ),
        "{:?}",
        config.backends.quarantine
    );
    assert!(!choices.uses_embedded());
    config.check_lateness(StoreBackend::Cosmos).unwrap();
    // Managed identity, and it is the template's user-assigned one.
    assert_eq!(
        config.identity.client_id.as_deref(),
        Some("00000000-0000-0000-0000-000000000001")
    );
    // No key or connection string with a secret among them.
    for secret in [
        "EVENTIDE_COSMOS_KEY",
        "EVENTIDE_SERVICEBUS",
        "AzureWebJobsStorage",
    ] {
        assert!(!settings.contains_key(secret), "{secret} is set");
    }
}
