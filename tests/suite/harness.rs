//! The harness itself: a developer's shell with `EVENTIDE_SERVICEBUS` (or any other setting)
//! exported must not change what the tests run against.
//!
//! Setting a variable in this process would leak into every test running beside this one, so
//! the test runs itself again as a child process with every setting variable set, and the child
//! reports what the harness builds there.

use std::path::Path;
use std::process::Command;

use clap::{Args, Command as Cli};
use eventide::app::Config;

/// Set (to a file to write the report to) only in the child run.
const PROBE: &str = "EVENTIDE_TEST_HARNESS_PROBE";

/// Every environment variable the runtime's settings read.
fn setting_variables() -> Vec<String> {
    Config::augment_args(Cli::new("eventide"))
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// What the harness builds here: the runtime's settings, and the `EVENTIDE_*` / `FUNCTIONS_*`
/// variables a child process started through the kit would see.
fn probe() -> String {
    let settings = eventide_testkit::settings("eventide.db");
    let output = eventide_testkit::command("env").output().unwrap();
    let inherited: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("EVENTIDE_") || line.starts_with("FUNCTIONS_"))
        .map(str::to_string)
        .collect();
    format!("{settings:#?}\ninherited: {inherited:?}")
}

#[test]
fn ambient_eventide_variables_reach_neither_settings_nor_child_processes() {
    if let Some(report) = std::env::var_os(PROBE) {
        std::fs::write(report, probe()).unwrap();
        return;
    }
    let variables = setting_variables();
    assert!(
        variables.iter().any(|v| v == "EVENTIDE_SERVICEBUS"),
        "{variables:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("probe.txt");
    let this_test = concat!(
        module_path!(),
        "::ambient_eventide_variables_reach_neither_settings_nor_child_processes"
    );
    let (_crate, this_test) = this_test.split_once("::").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args([this_test, "--exact", "--test-threads=1"]);
    // Any value: one that does not parse would fail the child as surely as one that is used.
    for name in &variables {
        child.env(name, "ambient");
    }
    child
        .env(
            "EVENTIDE_SERVICEBUS",
            "Endpoint=sb://ambient.invalid/;SharedAccessKeyName=k;SharedAccessKey=a2V5",
        )
        .env("EVENTIDE_PORT", "7071")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "7072")
        .env(PROBE, &report);
    let output = child.output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let seen = read(&report);
    assert_eq!(
        seen,
        probe(),
        "the environment changed what the harness built"
    );
    assert!(seen.contains("connection: None"), "{seen}");
    assert!(seen.ends_with("inherited: []"), "{seen}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the child run wrote no report ({e}); did it run the test?"))
}
