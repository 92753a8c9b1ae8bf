//! `singularity-host`: the command-line entry point of the operator tools.

use clap::Parser;
use singularity::{logging, settings};
use singularity_host::cli::{Cli, Tool};
use singularity_host::{demo, dom0, xenstored};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("singularity-host: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    // Standard error unless -H says otherwise, warnings unless -l does.
    let level = cli.loglevel.as_deref().and_then(settings::parse_level);
    logging::init(
        cli.loghandler.as_deref().unwrap_or("-"),
        level.unwrap_or(log::LevelFilter::Warn),
    )
    .map_err(|e| e.to_string())?;
    match &cli.command {
        Tool::Xenstored(args) => xenstored::run(args).map(|()| ExitCode::SUCCESS),
        Tool::Demo(args) => demo::run(args.keep).map(|()| ExitCode::SUCCESS),
        Tool::Agent(command) => dom0::run::run(&cli.target, command),
    }
}
