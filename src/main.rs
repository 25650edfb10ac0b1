use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = dars::cli::Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("DARS_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    match dars::cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
