//! No setting can make the binary panic at start-up: each setting at the edges of what it
//! parses (zero, the largest value its type holds, beyond that, a century, nonsense) either
//! starts `eventide local` or stops it with an error saying what is wrong.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

const DURATIONS: [&str; 7] = [
    "EVENTIDE_GRACE",
    "EVENTIDE_SETTLE",
    "EVENTIDE_RECONCILE_AFTER",
    "EVENTIDE_MAX_LATENESS",
    "EVENTIDE_SUMMARIZE_BUDGET",
    "EVENTIDE_LOCK_DURATION",
    "EVENTIDE_DEDUP_WINDOW",
];
const NUMBERS: [&str; 7] = [
    "EVENTIDE_SUMMARIZE_BATCH",
    "EVENTIDE_WORKERS",
    "EVENTIDE_PROCESS_BATCH",
    "EVENTIDE_MAX_BODY_BYTES",
    "EVENTIDE_RETENTION_DAYS",
    "EVENTIDE_MAX_DELIVERIES",
    "EVENTIDE_PORT",
];

/// Every (setting, value) tried.
fn cases() -> Vec<(&'static str, &'static str)> {
    let mut cases = Vec::new();
    for name in DURATIONS {
        for value in ["0", "36525d", "36526d", "99999999999999999999d", "-1s"] {
            cases.push((name, value));
        }
    }
    for name in NUMBERS {
        for value in ["0", "4294967295", "18446744073709551616"] {
            cases.push((name, value));
        }
    }
    cases.extend([
        ("EVENTIDE_TIME_ZONE", "Mars/Olympus_Mons"),
        ("EVENTIDE_TIME_ZONE", ""),
        ("EVENTIDE_SUMMARIZE_SCHEDULE", "0 0 0 31 2 *"),
        ("EVENTIDE_SUMMARIZE_SCHEDULE", "99 99 99 99 99 99"),
        ("EVENTIDE_BIND", "0.0.0.0"),
        ("EVENTIDE_BIND", "not-an-address"),
        ("EVENTIDE_API_KEY", " "),
        ("EVENTIDE_SUMMARY_SINK", "postgres://["),
        (
            "EVENTIDE_QUARANTINE",
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=AAAA",
        ),
        ("EVENTIDE_COSMOS_TTL_SECONDS", "18446744073709551615"),
    ]);
    cases
}

/// Runs `eventide local` with one setting; returns its exit (None: it started and was stopped)
/// and what it wrote to standard error.
fn start_with(name: &str, value: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = eventide_testkit::command(env!("CARGO_BIN_EXE_eventide"))
        .arg("local")
        .current_dir(dir.path())
        .env("EVENTIDE_DB", dir.path().join("eventide.db"))
        .env("EVENTIDE_PORT", "0")
        .env("EVENTIDE_SUMMARIZE_SCHEDULE", "0 0 0 1 1 *")
        .env(name, value)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let mut line = String::new();
    let mut running = false;
    while stderr.read_line(&mut line).unwrap_or(0) > 0 {
        log.push_str(&line);
        if line.contains("eventide is running") {
            running = true;
            break;
        }
        line.clear();
    }
    if running {
        child.kill().unwrap();
        child.wait().unwrap();
        return (None, log);
    }
    let status = child.wait().unwrap();
    (status.code(), log)
}

#[test]
fn no_setting_panics_at_start_up() {
    // A hundred process starts: not beside the other heavy tests.
    let _exclusive = crate::kit::exclusive_blocking();
    let cases = cases();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = cases
            .chunks(cases.len().div_ceil(6))
            .map(|chunk| {
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for (name, value) in chunk {
                        let (exit, log) = start_with(name, value);
                        let panicked = log.contains("panicked") || exit == Some(101);
                        // A refusal says what is wrong in an `error:` line.
                        let unexplained =
                            exit.is_some_and(|code| code != 0) && !log.contains("error:");
                        if panicked || unexplained {
                            failures.push(format!("{name}={value:?}: exit {exit:?}\n{log}"));
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}
