//! The command line. One clap definition drives parsing, `--help`, the man
//! pages and shell completions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Guest agent for OpenStack virtual machines on Xen.
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
    /// Directory holding singularity.conf.
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
    /// Show the whole protocol against a simulated Xen host, with no Xen and no root.
    Demo(DemoArgs),
    /// Serve the hypervisor's requests.
    Daemon(DaemonArgs),
    /// Re-apply the cached configuration to the live system.
    Apply(ApplyArgs),
    /// Serve a simulated XenStore on Unix sockets (for tests, demos and development).
    Xenstored(XenstoredArgs),
    /// Print configuration.
    Config(ConfigArgs),
    /// Drive a guest's agent from dom0, as nova and the dom0 plugin do.
    Host(HostArgs),
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

/// Which transport carries requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CommunicatorKind {
    /// XenStore (the hypervisor).
    Xen,
    /// A local Unix socket, one JSON request per line.
    Socket,
}

/// `singularity daemon`.
#[derive(Debug, Args, Clone)]
pub struct DaemonArgs {
    /// What to do.
    #[arg(value_enum, default_value_t = Action::Start)]
    pub action: Action,
    /// Run-time directory.
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
    pub communicator: Option<CommunicatorKind>,
    /// XenStore socket or device (xen communicator).
    #[arg(long, value_name = "PATH")]
    pub xenstore: Option<String>,
    /// Unix socket path (socket communicator).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// `singularity demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Leave the guest root in place for inspection.
    #[arg(long)]
    pub keep: bool,
}

/// `singularity apply`.
#[derive(Debug, Args, Clone)]
pub struct ApplyArgs {
    /// Print a unified diff of every file that would change, and change nothing.
    #[arg(long)]
    pub noop: bool,
    /// What to re-apply.
    #[arg(required = true, value_parser = ["all", "network", "hosts", "hostname", "resolvers", "password", "file", "update"])]
    pub actions: Vec<String>,
}

/// `singularity xenstored`.
#[derive(Debug, Args, Clone)]
pub struct XenstoredArgs {
    /// The privileged (dom0) socket.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// A guest's xenbus as a stream socket: DOMID:PATH (repeatable).
    #[arg(long = "guest", value_name = "DOMID:PATH")]
    pub guests: Vec<String>,
    /// A guest's xenbus emulating /dev/xen/xenbus exactly (seqpacket): DOMID:PATH.
    #[arg(long = "guest-device", value_name = "DOMID:PATH")]
    pub guest_devices: Vec<String>,
    /// Behave like oxenstored (2048-byte values for everyone, its quirks).
    #[arg(long)]
    pub oxenstored: bool,
}

/// `singularity config`.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Print the fully commented default configuration file.
    #[arg(long)]
    pub default: bool,
}

/// `singularity host`.
#[derive(Debug, Args, Clone)]
pub struct HostArgs {
    /// The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places).
    #[arg(long, value_name = "PATH")]
    pub xenstore: Option<String>,
    /// The guest's domain id.
    #[arg(long, value_name = "N")]
    pub domid: u32,
    /// Seconds to wait for a reply (default 30, 60 for resetnetwork).
    #[arg(long, value_name = "S")]
    pub timeout: Option<u64>,
    /// Also print the raw reply object.
    #[arg(long)]
    pub json: bool,
    /// What to send.
    #[command(subcommand)]
    pub command: HostCommand,
}

/// Digest for the password key derivation (the host's OpenSSL default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Md {
    /// OpenSSL before 1.1.0.
    Md5,
    /// OpenSSL 1.1.0 and later.
    Sha256,
}

/// Host-side commands.
#[derive(Debug, Subcommand, Clone)]
pub enum HostCommand {
    /// Ask the agent's version.
    Version,
    /// Ask the agent's features.
    Features,
    /// Key exchange, then set root's password (read from standard input if PASSWORD is - or absent).
    Password {
        /// Key derivation digest.
        #[arg(long, value_enum, default_value_t = Md::Sha256)]
        md: Md,
        /// The password, or - for standard input.
        password: Option<String>,
    },
    /// Inject a file (contents from FILE, or standard input if FILE is - or absent).
    Inject {
        /// Absolute path in the guest.
        path: String,
        /// Local file with the contents, or -.
        file: Option<PathBuf>,
    },
    /// Ask the agent to reconfigure networking from vm-data.
    Resetnetwork,
    /// Ask the agent to update itself.
    Agentupdate {
        /// Where the new agent is.
        url: String,
        /// Its MD5 sum.
        md5: String,
    },
    /// Write one NIC's vm-data/networking entry, as nova does.
    SetNetwork(SetNetworkArgs),
    /// Write vm-data/hostname, as nova does.
    SetHostname {
        /// The hostname.
        name: String,
    },
    /// Send any request name and value (the value is sent as a JSON string).
    Raw {
        /// Request name.
        name: String,
        /// Request value.
        value: String,
    },
}

/// `singularity host set-network`.
#[derive(Debug, Args, Clone)]
pub struct SetNetworkArgs {
    /// MAC address of the NIC.
    #[arg(long)]
    pub mac: String,
    /// Network label.
    #[arg(long, default_value = "public")]
    pub label: String,
    /// IPv4 address/prefix.
    #[arg(long, value_name = "CIDR")]
    pub ip: Option<String>,
    /// IPv4 gateway.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// IPv6 address/prefix.
    #[arg(long, value_name = "CIDR")]
    pub ip6: Option<String>,
    /// IPv6 gateway.
    #[arg(long, value_name = "IP")]
    pub gateway6: Option<String>,
    /// DNS server (repeatable).
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Static route DEST/PREFIX,VIA (repeatable).
    #[arg(long, value_name = "CIDR,VIA")]
    pub route: Vec<String>,
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
