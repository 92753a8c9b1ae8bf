//! The command line of `singularity-host`, the operator and developer tools
//! that run outside guests. One clap definition drives parsing, `--help`, the
//! man pages and shell completions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Operator and developer tools for the singularity guest agent: drive an
/// agent from dom0 as nova does, serve a simulated XenStore, run the demo.
#[derive(Debug, Parser)]
#[command(name = "singularity-host", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Lowest severity logged: debug, info, warning, error, critical.
    #[arg(short = 'l', long, global = true, value_name = "LEVEL")]
    pub loglevel: Option<String>,
    /// Log destination: syslog, journald, - (standard error) or a file path.
    #[arg(short = 'H', long, global = true, value_name = "HANDLER")]
    pub loghandler: Option<String>,
    /// Which guest the agent commands address, and how.
    #[command(flatten)]
    pub target: Target,
    /// What to do.
    #[command(subcommand)]
    pub command: Tool,
}

/// The guest and the XenStore the agent commands go through.
#[derive(Debug, Args, Clone, Default)]
pub struct Target {
    /// The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places).
    #[arg(long, global = true, value_name = "PATH")]
    pub xenstore: Option<String>,
    /// The guest's domain id (agent commands).
    #[arg(long, global = true, value_name = "N")]
    pub domid: Option<u32>,
    /// Seconds to wait for a reply (default 30, 60 for resetnetwork).
    #[arg(long, global = true, value_name = "S")]
    pub timeout: Option<u64>,
    /// Also print the raw reply object.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Show the whole protocol against a simulated Xen host, with no Xen and no root.
    Demo(DemoArgs),
    /// Serve a simulated XenStore on Unix sockets (for tests, demos and development).
    Xenstored(XenstoredArgs),
    /// Commands sent to a guest's agent, as nova and the dom0 plugin send them.
    #[command(flatten)]
    Agent(HostCommand),
}

/// `singularity-host demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Leave the guest root in place for inspection.
    #[arg(long)]
    pub keep: bool,
}

/// `singularity-host xenstored`.
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

/// `singularity-host set-network`.
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
    fn target_options_go_before_or_after_the_command() {
        for args in [
            &["singularity-host", "--domid", "5", "version"][..],
            &["singularity-host", "version", "--domid", "5"][..],
        ] {
            let cli = Cli::parse_from(args);
            assert_eq!(cli.target.domid, Some(5));
            assert!(matches!(cli.command, Tool::Agent(HostCommand::Version)));
        }
    }
}
