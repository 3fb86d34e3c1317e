//! The figures behind the README, one report per subcommand:
//!
//! ```sh
//! cargo run --release --example reports -- azure_stack [--series N ...]  # W1 on the emulated Azure stack
//! cargo run --release --example reports -- cosmos_ru [--series N ...]   # Cosmos DB RU and goodput
//! cargo run --release --example reports -- handler_figures             # the custom handler
//! cargo run --release --example reports -- servicebus_ops [--series N]  # Service Bus operations
//! cargo run --release --example reports -- sink_bench [--series N ...]  # the SQL sinks
//! cargo run --release --example reports -- telemetry_bytes [SERIES...]  # telemetry per message
//! cargo run --release --example reports -- w1_vs_batch [--series N ...] # W1 vs the batch design
//! ```
//!
//! One example binary rather than six: each links the whole crate with the Azure SDKs, and
//! `cargo test --all-targets` builds every example on a two-core CI. Each report keeps its own
//! module, flags and runtime.

mod azure_stack;
mod cosmos_ru;
mod flags;
mod handler_figures;
mod rounds;
mod servicebus_ops;
mod sink_bench;
mod telemetry_bytes;
mod w1_vs_batch;

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let report = argv.next();
    let rest: Vec<String> = argv.collect();
    match report.as_deref() {
        Some("azure_stack") => azure_stack::run(rest),
        Some("cosmos_ru") => cosmos_ru::run(rest),
        Some("handler_figures") => handler_figures::run(),
        Some("servicebus_ops") => servicebus_ops::run(rest),
        Some("sink_bench") => sink_bench::run(rest)?,
        Some("telemetry_bytes") => telemetry_bytes::run(rest),
        Some("w1_vs_batch") => w1_vs_batch::run(rest)?,
        Some(other) => usage(&format!("no report {other:?}")),
        None => usage("no report named"),
    }
    Ok(())
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}: cargo run --release --example reports -- REPORT [ARGS]");
    eprintln!(
        "reports: azure_stack, cosmos_ru, handler_figures, servicebus_ops, sink_bench, telemetry_bytes, w1_vs_batch"
    );
    std::process::exit(2)
}
