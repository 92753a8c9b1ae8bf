//! The command line. One clap definition drives parsing, `--help`, the man
//! pages and shell completions.

use crate::communicator::Transport;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Guest agent for OpenStack virtual machines on Xen and KVM.
#[derive(Debug, Parser)]
#[command(name = "singularity", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Commands,
}

/// Global options; each may also be set in `[main]` of the configuration file.
#[derive(Debug, Args, Default, Clone)]
pub struct Global {
    /// Lowest severity logged: debug, info, warning, error, critical.
    #[arg(short = 'l', long, global = true, value_name = "LEVEL")]
    pub loglevel: Option<String>,
    /// Keep a .<name>.bak copy of every replaced file.
    #[arg(short = 'b', long, global = true)]
    pub backup: bool,
    /// Directory holding singularity.conf (the directory, not the file).
    #[arg(short = 'f', long = "configuration", global = true, value_name = "DIR")]
    pub configuration: Option<PathBuf>,
    /// Directory for the cache of written files.
    #[arg(short = 'c', long, global = true, value_name = "DIR")]
    pub cache: Option<String>,
    /// Log destination: syslog, journald, - (standard error) or a file path.
    #[arg(short = 'H', long, global = true, value_name = "HANDLER")]
    pub loghandler: Option<String>,
    /// Functions to manage (comma-separated, or all).
    #[arg(short = 'F', long, global = true, value_name = "LIST")]
    pub functions: Option<String>,
    /// Directory standing for / of the managed system.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Serve the hypervisor's requests.
    Daemon(DaemonArgs),
    /// Re-apply the cached configuration to the live system.
    Apply(ApplyArgs),
    /// Print the effective configuration as INI, each value after a comment
    /// naming its source (default, file and line, or command line).
    Config(ConfigArgs),
}

/// Daemon control actions (LSB semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Action {
    /// Start the daemon.
    #[default]
    Start,
    /// Stop the running daemon.
    Stop,
    /// Stop, then start.
    Restart,
    /// Re-read the configuration (or start if not running).
    Reload,
    /// Report whether the daemon runs (exit 3 if not).
    Status,
}

/// `singularity daemon`.
#[derive(Debug, Args, Clone)]
pub struct DaemonArgs {
    /// What to do.
    #[arg(value_enum, default_value_t = Action::Start)]
    pub action: Action,
    /// Run-time directory, holding the socket communicator's socket unless
    /// --socket or [socket] path names one; created 0755 when missing.
    #[arg(short = 'r', long = "run", value_name = "DIR")]
    pub run_dir: Option<String>,
    /// Pid file (the daemon also locks <root>/run/singularity.lock: one per system).
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<String>,
    /// User to run as.
    #[arg(short = 'u', long, value_name = "USER")]
    pub uid: Option<String>,
    /// Group to run as.
    #[arg(short = 'g', long, value_name = "GROUP")]
    pub gid: Option<String>,
    /// Allow core dumps.
    #[arg(long)]
    pub coredumps: bool,
    /// Stay in the foreground.
    #[arg(long)]
    pub nodaemonize: bool,
    /// Transport for requests.
    #[arg(long, value_enum, value_name = "KIND")]
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(Transport::NAMES))]
    pub communicator: Option<String>,
    /// XenStore socket or device (xen communicator).
    #[arg(long, value_name = "PATH")]
    pub xenstore: Option<String>,
    /// Unix socket path (socket communicator; default <run>/agent.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Directories of external configurators, absolute paths (replaces [daemon] configurators).
    #[arg(short = 'd', long, value_name = "DIR", num_args = 1.., value_parser = absolute_dir)]
    pub configurators: Vec<PathBuf>,
}

/// A directory argument that is not an absolute path.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not an absolute path (give the action before -d)")]
pub struct NotAbsolute(pub String);

/// An absolute directory path. Also what keeps `-d DIR stop` from taking
/// `stop` for a directory.
fn absolute_dir(s: &str) -> Result<PathBuf, NotAbsolute> {
    if s.starts_with('/') {
        Ok(PathBuf::from(s))
    } else {
        Err(NotAbsolute(s.to_string()))
    }
}

/// `singularity apply`.
#[derive(Debug, Args, Clone)]
pub struct ApplyArgs {
    /// Print a unified diff of every file that would change, and change
    /// nothing ([apply] noop = true does the same).
    #[arg(long)]
    pub noop: bool,
    /// What to re-apply: all, or the names of functions that write files
    /// (network, hosts, hostname, resolvers, password, file, update, or an
    /// external configurator's function).
    #[arg(required = true, value_name = "FUNCTION")]
    pub actions: Vec<String>,
}

/// `singularity config`.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Print the fully commented default configuration file.
    #[arg(long)]
    pub default: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_daemon_options() {
        let cli = Cli::parse_from([
            "singularity",
            "-F",
            "password",
            "daemon",
            "--nodaemonize",
            "--root",
            "/tmp/r",
        ]);
        assert_eq!(cli.global.functions.as_deref(), Some("password"));
        assert_eq!(cli.global.root, Some(PathBuf::from("/tmp/r")));
        match cli.command {
            Commands::Daemon(d) => assert!(d.nodaemonize && d.action == Action::Start),
            other => panic!("{other:?}"),
        }
    }
}
