//! The `switchyard` binary: parse the command line, hand over (`app` sets up logging).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = switchyard::cli::Cli::parse();
    // This binary compiles plugins in child processes of itself (plugin/compiler.rs).
    if let Ok(exe) = std::env::current_exe() {
        switchyard::plugin::compile_with(exe);
    }
    match switchyard::app::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", switchyard::app::describe(&err));
            std::process::ExitCode::FAILURE
        }
    }
}
