//! `singularity`: the command-line entry point.

use clap::Parser;
use singularity::cli::{Cli, Commands};
use singularity::{config, daemon, dom0, logging, settings, xenstored};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("singularity: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match &cli.command {
        Commands::Config(args) => {
            if args.default {
                print!("{}", config::default_file());
            } else {
                let s = settings::load(&cli.global, None).map_err(|e| e.to_string())?;
                print!("{s:#?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Commands::Xenstored(args) => {
            let handler = cli.global.loghandler.as_deref().unwrap_or("-");
            let level = cli
                .global
                .loglevel
                .as_deref()
                .and_then(settings::parse_level)
                .unwrap_or(log::LevelFilter::Warn);
            logging::init(handler, level)?;
            xenstored::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Host(args) => dom0::run::run(args),
        Commands::Daemon(args) => {
            let s = settings::load(&cli.global, Some(args)).map_err(|e| e.to_string())?;
            logging::init(&s.loghandler, s.loglevel)?;
            for w in &s.warnings {
                log::warn!("{w}");
            }
            daemon::serve(s, &cli.global, args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
