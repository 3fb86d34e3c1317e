use clap::Parser;
use eventide::drivers::cli::{Cli, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logging and telemetry are installed by `run`, from the command's settings.
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
