//! The `switchyard` binary: parse the command line, set up logging, hand over.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = switchyard::cli::Cli::parse();
    // This binary compiles plugins in child processes of itself (plugin/compiler.rs).
    if let Ok(exe) = std::env::current_exe() {
        switchyard::plugin::compile_with(exe);
    }
    switchyard::telemetry::logging::init();
    match switchyard::app::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
