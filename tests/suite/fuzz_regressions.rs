//! Replays the fuzz targets' inputs on stable Rust, through the same harnesses the libFuzzer
//! targets call (`eventide::fuzzing`; docs/fuzzing.md): every file of the minimised corpus
//! (`fuzz/corpus/<target>/`) and every input that once failed (`fuzz/regressions/<target>/`),
//! so CI keeps what the fuzzer found without a nightly toolchain.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// A fuzz target's name, as in `fuzz/Cargo.toml`, and its harness.
struct Target {
    name: &'static str,
    harness: fn(&[u8]),
}

const TARGETS: &[Target] = &[
    Target {
        name: "body",
        harness: eventide::fuzzing::body,
    },
    Target {
        name: "observations_message",
        harness: eventide::fuzzing::observations_message,
    },
    Target {
        name: "functions_envelope",
        harness: eventide::fuzzing::functions_envelope,
    },
    Target {
        name: "summarize_request",
        harness: eventide::fuzzing::summarize_request,
    },
    Target {
        name: "cosmos_codec",
        harness: eventide::fuzzing::cosmos_codec,
    },
    Target {
        name: "connection_strings",
        harness: eventide::fuzzing::connection_strings,
    },
];

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every input of `target`; returns how many ran, or the inputs whose harness panicked.
fn replay(target: &Target, kind: &str) -> Result<usize, Vec<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target.name);
    let files = inputs(&dir);
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable input");
            catch_unwind(AssertUnwindSafe(|| (target.harness)(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    if failed.is_empty() {
        Ok(files.len())
    } else {
        Err(failed)
    }
}

#[test]
fn every_corpus_input_passes_its_harness() {
    for target in TARGETS {
        let replayed = replay(target, "corpus")
            .unwrap_or_else(|failed| panic!("{}: inputs failed: {failed:#?}", target.name));
        // An empty or missing corpus would make this test pass without replaying anything.
        assert!(replayed > 0, "fuzz/corpus/{} holds no inputs", target.name);
    }
}

#[test]
fn every_input_that_once_failed_now_passes() {
    for target in TARGETS {
        if let Err(failed) = replay(target, "regressions") {
            panic!("{}: regressions failed again: {failed:#?}", target.name);
        }
    }
}

#[test]
fn every_fuzz_target_has_a_harness_here() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .expect("fuzz/Cargo.toml");
    let declared: Vec<&str> = manifest
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "eventide-fuzz")
        .collect();
    let replayed: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(
        declared, replayed,
        "fuzz targets and replayed targets differ"
    );
}
