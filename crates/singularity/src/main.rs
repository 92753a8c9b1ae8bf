//! `singularity`: the command-line entry point.

use clap::Parser;
use singularity::cli::{Action, Cli, Commands, DaemonArgs};
use singularity::{cached, config, daemon, effective, lifecycle, logging, rundir, settings, stdout, update};
use std::error::Error;
use std::fmt::Display;
use std::process::ExitCode;

/// Freed memory is wiped: nothing the host sent outlives its use in the heap.
#[global_allocator]
static ALLOCATOR: singularity::secret::WipingAllocator = singularity::secret::WipingAllocator;

fn main() -> ExitCode {
    // The update watcher is internal (started by an update with arguments
    // of its own): not a subcommand, so not in the help, man pages or
    // completions.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == update::restart::WATCH_COMMAND) {
        return match update::restart::watch(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                complain(&format!("singularity: {e}"));
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            complain(&format!("singularity: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes one line to standard error; a closed standard error is no reason
/// to panic.
fn complain(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn Error>> {
    match &cli.command {
        Commands::Config(args) => {
            if args.default {
                stdout::print(&config::default_file())?;
            } else {
                let (s, values) = settings::load_with_values(&cli.global, None)?;
                for w in &s.source.warnings {
                    complain(&format!("singularity: warning: {w}"));
                }
                stdout::print(&effective::render(&values, &cli.global, None))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Commands::Apply(args) => {
            let s = settings::load(&cli.global, None)?;
            logging::init(&s.log.handler, s.log.level)?;
            let applier = daemon::applier(&s);
            let functions = cached::actions(&args.actions, &s.functions, applier.root(), &s.system.cache)?;
            let noop = args.noop || s.apply.noop;
            let mut text = String::new();
            for line in cached::apply(&applier, &s.system.cache, &functions, &s.file.allowed, noop)? {
                text.push_str(line.trim_end());
                text.push('\n');
            }
            stdout::print(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Daemon(args) => {
            let mut s = settings::load(&cli.global, Some(args))?;
            if update::restart::resumed_marker().is_some() {
                // Re-executed by an update: same pid, already detached,
                // whatever action first started this process.
                s.daemon.nodaemonize = true;
                return start(s, &cli, args);
            }
            let lock = lifecycle::instance_lock_path(&s.system.root);
            match args.action {
                Action::Status => Ok(ExitCode::from(lifecycle::status(&s.daemon.pidfile))),
                Action::Stop => {
                    lifecycle::stop(&s.daemon.pidfile, &lock)?;
                    Ok(ExitCode::SUCCESS)
                }
                Action::Reload => {
                    if lifecycle::reload(&s.daemon.pidfile, &lock)? {
                        Ok(ExitCode::SUCCESS)
                    } else {
                        start(s, &cli, args)
                    }
                }
                Action::Restart => {
                    lifecycle::stop(&s.daemon.pidfile, &lock)?;
                    start(s, &cli, args)
                }
                Action::Start => start(s, &cli, args),
            }
        }
    }
}

/// Starts the daemon: detach (unless `--nodaemonize`), lock the pid file,
/// apply the core-dump and privilege settings, then serve.
fn start(s: settings::Settings, cli: &Cli, args: &DaemonArgs) -> Result<ExitCode, Box<dyn Error>> {
    let mut report = if s.daemon.nodaemonize {
        None
    } else {
        Some(lifecycle::daemonize()?)
    };
    logging::init(&s.log.handler, s.log.level).map_err(|e| fail(&mut report, e))?;
    for w in &s.source.warnings {
        log::warn!("{w}");
    }
    let euid = rustix::process::geteuid().as_raw();
    rundir::ensure(&s.daemon.run_dir, euid).map_err(|e| fail(&mut report, e))?;
    // One daemon per system, whatever its pid file.
    let _instance = lifecycle::InstanceLock::acquire(&lifecycle::instance_lock_path(&s.system.root))
        .map_err(|e| fail(&mut report, e))?;
    let _pidfile = lifecycle::PidFile::acquire(&s.daemon.pidfile).map_err(|e| fail(&mut report, e))?;
    lifecycle::set_coredumps(s.daemon.coredumps).map_err(|e| fail(&mut report, e))?;
    // Detached and alone now: this pid is the one a watcher must watch.
    let own_args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    update::resume::watch_again(&s.update, &singularity::root::Root::new(&s.system.root), &own_args);
    if let Some(r) = report.as_mut() {
        r.send(Ok(()));
    }
    let (uid, gid) = (s.daemon.uid.clone(), s.daemon.gid.clone());
    daemon::serve(s, &cli.global, args, || {
        lifecycle::drop_privileges(uid.as_deref(), gid.as_deref())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Sends a start-up failure to the waiting parent, if detached; returns it.
fn fail<E: Display>(report: &mut Option<lifecycle::StartReport>, e: E) -> E {
    if let Some(r) = report.as_mut() {
        r.send(Err(&e.to_string()));
    }
    e
}
