use clap::Parser;
use tracing_subscriber::EnvFilter;

use eventide::drivers::cli::{Cli, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Quiet by default: warnings and errors, plus a start-up line. `EVENTIDE_LOG` takes the
    // usual directives (e.g. `eventide=debug`).
    let filter = EnvFilter::try_from_env("EVENTIDE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,eventide=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
