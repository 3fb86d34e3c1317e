//! The Functions configuration files validate against the public JSON Schemas in
//! `tests/fixtures/schemas` (host.json as draft 7, function.json forced to draft 7 — under its
//! declared draft 4 the schema rejects every valid file, see tests/fixtures/README.md —
//! local.settings.json as declared).

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn schema(name: &str) -> Value {
    read(&repo().join("tests/fixtures/schemas").join(name))
}

fn assert_valid(validator: &jsonschema::Validator, path: &Path) {
    let instance = read(path);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} is invalid: {errors:#?}",
        path.display()
    );
}

#[test]
fn host_json_is_valid() {
    let validator = jsonschema::validator_for(&schema("host.json")).unwrap();
    assert_valid(&validator, &repo().join("host.json"));
}

#[test]
fn every_function_json_is_valid_as_draft_7() {
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema("function.json"))
        .unwrap();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(repo().join("functions")).unwrap() {
        let path = entry.unwrap().path().join("function.json");
        assert_valid(&validator, &path);
        checked.push(
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    checked.sort();
    assert_eq!(checked, ["ingest", "process", "summarize"]);
}

#[test]
fn local_settings_json_is_valid() {
    let validator = jsonschema::validator_for(&schema("local.settings.json")).unwrap();
    assert_valid(&validator, &repo().join("local.settings.json"));
}

#[test]
fn the_validators_do_reject_bad_files() {
    let host = jsonschema::validator_for(&schema("host.json")).unwrap();
    assert!(!host.is_valid(&serde_json::json!({"version": "2.0", "functionTimeout": 5})));
    let function = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema("function.json"))
        .unwrap();
    assert!(!function.is_valid(&serde_json::json!({"bindings": "none"})));
}
