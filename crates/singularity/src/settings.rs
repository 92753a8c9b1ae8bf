//! The effective settings: command line over configuration file over
//! defaults. This is the only place the three meet.

use crate::cli::{DaemonArgs, Global};
use crate::communicator::Transport;
use crate::config::{self, parse_bool, ConfigError, FileValues};
use crate::configurators::external::External;
use crate::configurators::files::{FileSettings, Modes};
use crate::configurators::password::PasswordSettings;
use crate::crypto::hash::Scheme;
use crate::effective;
use crate::functions::Functions;
use crate::handler;
use crate::metrics::MetricsSettings;
use crate::network::{NetworkSettings, Renderer};
use crate::qga::QgaSettings;
use crate::update::UpdateSettings;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default configuration directory.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/singularity";
/// File name inside the configuration directory.
pub const CONFIG_FILE: &str = "singularity.conf";
/// The socket communicator's socket in the run-time directory, unless
/// `[socket] path` or `--socket` names another.
pub const SOCKET_NAME: &str = "agent.sock";

/// Everything the program needs to know, resolved, in groups that follow the
/// configuration file's sections. Groups that one module uses are defined
/// there ([`Transport`], [`QgaSettings`], [`UpdateSettings`], ...); the rest
/// here.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where log lines go, and from which level.
    pub log: LogSettings,
    /// Enabled functions.
    pub functions: Functions,
    /// The managed system and how changes to it are kept.
    pub system: SystemSettings,
    /// The daemon's process: run-time directory, identity, configurators.
    pub daemon: DaemonSettings,
    /// How requests arrive (`communicator` and its section).
    pub transport: Transport,
    /// `[socket] vm_data`: the directory that stands for XenStore's vm-data
    /// when requests come through the socket. Not part of the transport: a
    /// reload changes it at once.
    pub socket_vm_data: Option<PathBuf>,
    /// `[metrics]`.
    pub metrics: MetricsSettings,
    /// The network configurator's settings.
    pub network: NetworkSettings,
    /// `[file]`: where injected files may go and their modes.
    pub file: FileSettings,
    /// `[password]`.
    pub password: PasswordSettings,
    /// `[qga]`: the QEMU guest agent's command policy and freeze hook.
    pub qga: QgaSettings,
    /// `[update]`: `agentupdate`.
    pub update: UpdateSettings,
    /// `[apply]`: `singularity apply`.
    pub apply: ApplySettings,
    /// The configuration file itself.
    pub source: SourceSettings,
}

/// `[main] loglevel` and `loghandler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Log threshold.
    pub level: log::LevelFilter,
    /// Log destination.
    pub handler: String,
}

/// `[main] root`, `cache` and `backup`: what is managed and how changes are
/// kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSettings {
    /// Root of the managed system.
    pub root: PathBuf,
    /// Cache directory (a path on the managed system).
    pub cache: String,
    /// Keep backups.
    pub backup: bool,
}

/// `[daemon]`: the daemon's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Run-time directory.
    pub run_dir: PathBuf,
    /// Pid file.
    pub pidfile: PathBuf,
    /// User to switch to.
    pub uid: Option<String>,
    /// Group to switch to.
    pub gid: Option<String>,
    /// Allow core dumps.
    pub coredumps: bool,
    /// Stay in the foreground.
    pub nodaemonize: bool,
    /// Directories of external configurators.
    pub configurators: Vec<PathBuf>,
    /// How long one external configurator may take.
    pub configurator_timeout: Duration,
}

/// `[apply]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySettings {
    /// `apply` only prints what would change.
    pub noop: bool,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    /// The file (for messages).
    pub file: PathBuf,
    /// Warnings about it (unknown keys).
    pub warnings: Vec<String>,
}

impl Settings {
    /// What the request handler needs, with the external configurators found.
    pub fn handler(&self, externals: Vec<External>) -> handler::Settings {
        handler::Settings {
            functions: self.functions.clone(),
            file: self.file.clone(),
            password: self.password,
            network: self.network.clone(),
            externals,
            configurator_timeout: self.daemon.configurator_timeout,
            update: self.update.clone(),
        }
    }
}

fn default_of(section: &str, key: &str) -> &'static str {
    config::key_def(section, key).map_or("", |k| k.default)
}

/// Parses a log level name.
pub fn parse_level(s: &str) -> Option<log::LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "debug" => Some(log::LevelFilter::Debug),
        "info" => Some(log::LevelFilter::Info),
        "warning" | "warn" => Some(log::LevelFilter::Warn),
        "error" | "critical" => Some(log::LevelFilter::Error),
        _ => None,
    }
}

fn absolute(s: &str) -> Option<String> {
    s.starts_with('/').then(|| s.to_string())
}

fn path_list(s: &str) -> Option<Vec<String>> {
    let items: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    items.iter().all(|p| p.starts_with('/')).then_some(items)
}

/// An octal permission mode (`0600`, `644`): no set-id or sticky bits.
fn octal_mode(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o777)
}

/// An absolute path, or empty for none.
fn optional_absolute(s: &str) -> Option<Option<String>> {
    if s.is_empty() {
        Some(None)
    } else {
        absolute(s).map(Some)
    }
}

fn non_empty(s: &str) -> Option<Option<String>> {
    Some((!s.is_empty()).then(|| s.to_string()))
}

/// Reads the configuration file chosen by `-f` (or the default one) and merges
/// it with the command line. A missing default file is fine; a missing file
/// that `-f` names is an error.
pub fn load(global: &Global, daemon: Option<&DaemonArgs>) -> Result<Settings, ConfigError> {
    load_with_values(global, daemon).map(|(settings, _)| settings)
}

/// [`load`], also returning the values read from the file (for `config`).
pub fn load_with_values(global: &Global, daemon: Option<&DaemonArgs>) -> Result<(Settings, FileValues), ConfigError> {
    let dir = global
        .configuration
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR));
    if global.configuration.is_some() {
        if let Ok(meta) = std::fs::metadata(&dir) {
            if !meta.is_dir() {
                let what = if meta.is_file() { "a file" } else { "not a directory" };
                let hint = match dir.parent() {
                    Some(parent) if dir.file_name() == Some(CONFIG_FILE.as_ref()) && !parent.as_os_str().is_empty() => {
                        format!(" (here: -f {})", parent.display())
                    }
                    _ => String::new(),
                };
                return Err(ConfigError(format!(
                    "{} is {what}: -f/--configuration takes the directory holding {CONFIG_FILE}{hint}",
                    dir.display()
                )));
            }
        }
    }
    let file = dir.join(CONFIG_FILE);
    let values = read_file(&file, global.configuration.is_some())?;
    let settings = resolve(global, daemon, &values, file)?;
    Ok((settings, values))
}

/// Largest configuration file read.
pub const CONFIG_MAX: u64 = 1024 * 1024;

fn read_file(file: &Path, required: bool) -> Result<FileValues, ConfigError> {
    match read_regular(file, CONFIG_MAX) {
        Ok(text) => config::parse(&file.display().to_string(), &text),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => Ok(FileValues::default()),
        Err(e) => Err(ConfigError(format!("cannot read {}: {e}", file.display()))),
    }
}

/// Reads a regular file of at most `max` bytes. The open does not block (a
/// FIFO would wait for a writer forever) and whatever it opened is checked
/// before a byte is read: a device, FIFO or directory is refused, and so is a
/// file over `max` (or one that grows past it while read).
fn read_regular(file: &Path, max: u64) -> io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(file)?;
    let meta = opened.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let too_big = || io::Error::new(io::ErrorKind::InvalidData, format!("larger than {} KiB", max / 1024));
    if meta.len() > max {
        return Err(too_big());
    }
    let mut text = String::new();
    opened.take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(too_big());
    }
    Ok(text)
}

/// Where a key's value comes from: the command line, through the one map of
/// options to keys ([`effective::command_line_value`], which `config` prints
/// from too), else the file.
struct Sources<'a> {
    file: &'a FileValues,
    global: &'a Global,
    daemon: Option<&'a DaemonArgs>,
}

impl Sources<'_> {
    /// The text an option gives `section.key`, if one does; `what` names
    /// the value in a refusal.
    fn command_line(&self, section: &str, key: &str, what: &str) -> Result<Option<String>, ConfigError> {
        let Some(k) = config::key_def(section, key) else {
            return Ok(None);
        };
        match effective::command_line_value(self.global, self.daemon, k) {
            None => Ok(None),
            Some(value) => value
                .into_string()
                .map(Some)
                .map_err(|v| ConfigError(format!("bad {what} '{}': not UTF-8", v.to_string_lossy()))),
        }
    }

    /// `section.key` converted: from the command line (a refusal names the
    /// value as `what`), else from the file; `None` when neither sets it.
    fn get<T>(
        &self,
        section: &str,
        key: &str,
        what: &str,
        convert: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.command_line(section, key, what)? else {
            return self.file.typed(section, key, convert);
        };
        match convert(&value) {
            Some(converted) => Ok(Some(converted)),
            None => {
                let accepts = config::key_def(section, key).map_or("", |k| k.accepts);
                Err(ConfigError(format!("bad {what} '{value}': expected {accepts}")))
            }
        }
    }
}

/// Merges parsed file values with the command line.
pub fn resolve(
    global: &Global,
    daemon: Option<&DaemonArgs>,
    v: &FileValues,
    file: PathBuf,
) -> Result<Settings, ConfigError> {
    let s = Sources {
        file: v,
        global,
        daemon,
    };
    let text = |value: &str| Some(value.to_string());
    let loglevel = s
        .get("main", "loglevel", "log level", parse_level)?
        .unwrap_or(log::LevelFilter::Warn);
    let configurators = s
        .get("daemon", "configurators", "configurator directories", path_list)?
        .unwrap_or_else(|| vec![default_of("daemon", "configurators").to_string()])
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let configurator_timeout = Duration::from_secs(
        v.typed("daemon", "configurator_timeout", |s| {
            s.parse::<u64>().ok().filter(|n| (1..=3600).contains(n))
        })?
        .unwrap_or(30),
    );
    // Any other well-formed name may be an external configurator's
    // function: the daemon, which finds them, warns about the undeclared.
    let functions = match s.command_line("main", "functions", "function list")? {
        Some(f) => Functions::parse_with_external(&f).map_err(|e| ConfigError(format!("bad function list: {e}")))?,
        None => v
            .typed("main", "functions", |f| Functions::parse_with_external(f).ok())?
            .unwrap_or_else(Functions::all),
    };
    let backup = s.get("main", "backup", "backup", parse_bool)?.unwrap_or(false);
    let cache = s
        .get("main", "cache", "cache directory", absolute)?
        .unwrap_or_else(|| default_of("main", "cache").into());
    let root = PathBuf::from(
        s.get("main", "root", "root directory", absolute)?
            .unwrap_or_else(|| "/".into()),
    );
    let parse_comm = |c: &str| Transport::NAMES.into_iter().find(|n| *n == c);
    let communicator = s
        .get("main", "communicator", "communicator", parse_comm)?
        .unwrap_or("xen");
    let rescan = v.typed("xen", "rescan_interval", |s| {
        s.parse::<u64>().ok().filter(|n| (1..=86400).contains(n))
    })?;
    let memory_interval = v.typed("metrics", "memory_interval", |s| {
        s.parse::<u64>().ok().filter(|n| (1..=86400).contains(n))
    })?;
    let password_scheme = v
        .typed("password", "hash", |s| s.parse::<Scheme>().ok())?
        .unwrap_or(Scheme::Sha512);
    let password_allow_empty = v.typed("password", "allow_empty", parse_bool)?.unwrap_or(false);
    let inject_allowed = v
        .typed("file", "allowed_paths", path_list)?
        .unwrap_or_else(|| vec!["/".into()]);
    let defaults = Modes::default();
    let inject_modes = Modes {
        file: v.typed("file", "mode", octal_mode)?.unwrap_or(defaults.file),
        directory: v
            .typed("file", "directory_mode", octal_mode)?
            .unwrap_or(defaults.directory),
    };
    let xenstore = s.get("xen", "xenstore", "XenStore path", non_empty)?.flatten();
    let run_dir = s
        .get("daemon", "run", "run-time directory", absolute)?
        .unwrap_or_else(|| default_of("daemon", "run").into());
    let pidfile = s
        .get("daemon", "pidfile", "pid file", text)?
        .unwrap_or_else(|| default_of("daemon", "pidfile").into());
    // The socket lives in the run-time directory unless it is named.
    let socket_path = s
        .get("socket", "path", "socket path", optional_absolute)?
        .flatten()
        .map_or_else(|| Path::new(&run_dir).join(SOCKET_NAME), PathBuf::from);
    let apply_noop = v.typed("apply", "noop", parse_bool)?.unwrap_or(false);
    let update = update_settings(v, global)?;
    let qga = qga_settings(v)?;
    let qga_method = v
        .typed("qga", "method", crate::qga::Method::named)?
        .unwrap_or(crate::qga::Method::VirtioSerial);
    let qga_path = v.typed("qga", "path", non_empty)?.flatten();
    let uid = s.get("daemon", "uid", "user", non_empty)?.flatten();
    let gid = s.get("daemon", "gid", "group", non_empty)?.flatten();
    let coredumps = s.get("daemon", "coredumps", "coredumps", parse_bool)?.unwrap_or(false);
    let nodaemonize = s
        .get("daemon", "nodaemonize", "nodaemonize", parse_bool)?
        .unwrap_or(false);
    let loghandler = s
        .get("main", "loghandler", "log handler", text)?
        .unwrap_or_else(|| default_of("main", "loghandler").into());
    let socket_vm_data = v
        .typed("socket", "vm_data", optional_absolute)?
        .flatten()
        .map(PathBuf::from);
    let network_renderer = v
        .typed("main", "network_renderer", |s| {
            if s == "auto" {
                Some(None)
            } else {
                s.parse::<Renderer>().ok().map(|r| Some(r.name().to_string()))
            }
        })?
        .flatten();

    let transport = match communicator {
        "socket" => Transport::Socket { path: socket_path },
        "qga" => Transport::Qga {
            method: qga_method,
            path: qga_path,
        },
        _ => Transport::Xen {
            xenstore,
            rescan_interval: Duration::from_secs(rescan.unwrap_or(60)),
        },
    };

    Ok(Settings {
        log: LogSettings {
            level: loglevel,
            handler: loghandler,
        },
        functions,
        system: SystemSettings { root, cache, backup },
        daemon: DaemonSettings {
            run_dir: PathBuf::from(run_dir),
            pidfile: PathBuf::from(pidfile),
            uid,
            gid,
            coredumps,
            nodaemonize,
            configurators,
            configurator_timeout,
        },
        transport,
        socket_vm_data,
        metrics: MetricsSettings {
            memory_interval: memory_interval.map_or(crate::metrics::MEMORY_INTERVAL, Duration::from_secs),
        },
        network: NetworkSettings {
            renderer: network_renderer,
        },
        file: FileSettings {
            allowed: inject_allowed,
            modes: inject_modes,
        },
        password: PasswordSettings {
            scheme: password_scheme,
            allow_empty: password_allow_empty,
        },
        qga,
        update,
        apply: ApplySettings { noop: apply_noop },
        source: SourceSettings {
            file,
            warnings: v.warnings.clone(),
        },
    })
}

/// `[update]`, and the global options the new build's `config` check gets.
fn update_settings(v: &FileValues, global: &Global) -> Result<UpdateSettings, ConfigError> {
    let number = |min: u64, max: u64| move |s: &str| s.parse::<u64>().ok().filter(|n| (min..=max).contains(n));
    let defaults = UpdateSettings::default();
    let mut config_args: Vec<std::ffi::OsString> = Vec::new();
    let mut pass = |flag: &str, value: Option<std::ffi::OsString>| {
        if let Some(value) = value {
            config_args.push(flag.into());
            config_args.push(value);
        }
    };
    pass("--configuration", global.configuration.clone().map(Into::into));
    pass("--root", global.root.clone().map(Into::into));
    pass("--functions", global.functions.clone().map(Into::into));
    pass("--cache", global.cache.clone().map(Into::into));
    if global.backup {
        config_args.push("--backup".into());
    }
    Ok(UpdateSettings {
        target: v.typed("update", "target", optional_absolute)?.flatten(),
        ca_file: v
            .typed("update", "ca_file", optional_absolute)?
            .flatten()
            .map(PathBuf::from),
        public_key: v
            .typed("update", "public_key", |s| match s {
                "" => Some(None),
                path if path.starts_with('/') => Some(Some(path.to_string())),
                key => minisign_verify::PublicKey::from_base64(key)
                    .ok()
                    .map(|_| Some(key.to_string())),
            })?
            .flatten(),
        max_size: v
            .typed("update", "max_size", number(1, 1024))?
            .map_or(defaults.max_size, |m| m << 20),
        timeout: v
            .typed("update", "timeout", number(1, 3600))?
            .map_or(defaults.timeout, Duration::from_secs),
        connect_timeout: v
            .typed("update", "connect_timeout", number(1, 300))?
            .map_or(defaults.connect_timeout, Duration::from_secs),
        config_args,
    })
}

/// A comma-separated list of QEMU guest agent command names.
fn command_list(s: &str) -> Option<Vec<String>> {
    let names: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    names.iter().all(|n| crate::qga::command(n).is_some()).then_some(names)
}

/// The `[qga]` section but its port, which is the transport's.
fn qga_settings(v: &FileValues) -> Result<QgaSettings, ConfigError> {
    Ok(QgaSettings {
        allow: v
            .typed("qga", "allow", |s| {
                if s.trim() == "all" {
                    Some(None)
                } else {
                    command_list(s).map(Some)
                }
            })?
            .flatten(),
        block: v.typed("qga", "block", command_list)?.unwrap_or_default(),
        fsfreeze_hook: v
            .typed("qga", "fsfreeze_hook", optional_absolute)?
            .flatten()
            .map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn file(text: &str) -> FileValues {
        config::parse("s.conf", text).unwrap()
    }

    fn resolve_with(global: &Global, daemon: Option<&DaemonArgs>, text: &str) -> Result<Settings, ConfigError> {
        resolve(global, daemon, &file(text), PathBuf::from("s.conf"))
    }

    fn rescan(s: &Settings) -> Duration {
        match s.transport {
            Transport::Xen { rescan_interval, .. } => rescan_interval,
            ref other => panic!("not xen: {other:?}"),
        }
    }

    #[test]
    fn the_shipped_file_with_every_default_set_changes_nothing() {
        // Uncomment every `#key = value` of the default file: setting each
        // documented default explicitly must give the built-in defaults.
        let keys: Vec<&str> = crate::config::KEYS.iter().map(|k| k.key).collect();
        let mut set = 0;
        let text: String = crate::config::default_file()
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.split_once(" = ").is_some_and(|(k, _)| keys.contains(&k)) => {
                    set += 1;
                    format!("{rest}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        assert_eq!(set, keys.len(), "every key has a commented default line");
        let explicit = resolve_with(&Global::default(), None, &text).unwrap();
        assert!(explicit.source.warnings.is_empty(), "{:?}", explicit.source.warnings);
        let built_in = resolve_with(&Global::default(), None, "").unwrap();
        assert_eq!(format!("{explicit:?}"), format!("{built_in:?}"));
    }

    #[test]
    fn command_line_beats_file_beats_default() {
        let defaults = resolve_with(&Global::default(), None, "").unwrap();
        assert_eq!(defaults.log.level, log::LevelFilter::Warn);
        assert_eq!(defaults.functions, Functions::all());
        assert_eq!(defaults.system.cache, "/var/cache/singularity");
        assert_eq!(
            defaults.daemon.pidfile,
            PathBuf::from("/var/run/singularity/singularity.pid")
        );
        assert_eq!(rescan(&defaults), Duration::from_secs(60));
        assert!(!defaults.system.backup);

        let text = "[main]\nloglevel = debug\nfunctions = password\ncache = /srv/cache\n[xen]\nrescan_interval = 5\n";
        let from_file = resolve_with(&Global::default(), None, text).unwrap();
        assert_eq!(from_file.log.level, log::LevelFilter::Debug);
        assert_eq!(from_file.functions.to_string(), "password");
        assert_eq!(from_file.system.cache, "/srv/cache");
        assert_eq!(rescan(&from_file), Duration::from_secs(5));

        let cli = Global {
            loglevel: Some("error".into()),
            functions: Some("file,version".into()),
            cache: Some("/tmp/c".into()),
            backup: true,
            ..Global::default()
        };
        let from_cli = resolve_with(&cli, None, text).unwrap();
        assert_eq!(from_cli.log.level, log::LevelFilter::Error);
        assert_eq!(from_cli.functions.to_string(), "file,version");
        assert_eq!(from_cli.system.cache, "/tmp/c");
        assert!(from_cli.system.backup);
    }

    #[test]
    fn bad_values_name_file_line_key_and_accepted_values() {
        let cases = [
            ("[main]\nloglevel = loud\n", "s.conf:2: bad value 'loud' for 'loglevel' in [main]: expected debug, info, warning, error, critical"),
            ("[xen]\nrescan_interval = 0\n", "s.conf:2: bad value '0' for 'rescan_interval' in [xen]: expected a whole number of seconds, 1 to 86400"),
            ("[main]\ncache = relative\n", "s.conf:2: bad value 'relative' for 'cache' in [main]: expected an absolute path"),
            ("[password]\nhash = md5\n", "s.conf:2: bad value 'md5' for 'hash' in [password]: expected sha512 or sha256"),
            ("[file]\nallowed_paths = /root, etc\n", "s.conf:2: bad value '/root, etc' for 'allowed_paths' in [file]: expected a comma-separated list of absolute paths"),
            ("[file]\nmode = 0644x\n", "s.conf:2: bad value '0644x' for 'mode' in [file]: expected an octal mode from 0000 to 0777"),
            ("[file]\ndirectory_mode = 4755\n", "s.conf:2: bad value '4755' for 'directory_mode' in [file]: expected an octal mode from 0000 to 0777"),
            ("\n[main]\ncommunicator = kvm\n", "s.conf:3: bad value 'kvm' for 'communicator' in [main]: expected xen, socket or qga"),
        ];
        for (text, message) in cases {
            assert_eq!(
                resolve_with(&Global::default(), None, text).unwrap_err().0,
                message,
                "{text}"
            );
        }
        let cli = Global {
            loglevel: Some("loud".into()),
            ..Global::default()
        };
        assert_eq!(
            resolve_with(&cli, None, "").unwrap_err().0,
            "bad log level 'loud': expected debug, info, warning, error, critical"
        );
    }

    #[test]
    fn command_line_values_are_checked_as_the_file_values_are() {
        let with_root = |root: PathBuf| Global {
            root: Some(root),
            ..Global::default()
        };
        assert_eq!(
            resolve_with(&with_root(PathBuf::from("srv/guest")), None, "")
                .unwrap_err()
                .0,
            "bad root directory 'srv/guest': expected an absolute path"
        );
        let not_utf8 = std::ffi::OsString::from_vec(b"/srv/\xff".to_vec());
        assert_eq!(
            resolve_with(&with_root(PathBuf::from(not_utf8)), None, "")
                .unwrap_err()
                .0,
            "bad root directory '/srv/\u{fffd}': not UTF-8"
        );
        // A flag given on the command line wins over the file's false.
        let backup = Global {
            backup: true,
            ..Global::default()
        };
        assert!(
            resolve_with(&backup, None, "[main]\nbackup = false\n")
                .unwrap()
                .system
                .backup
        );
    }

    #[test]
    fn the_socket_defaults_to_the_run_directory() {
        let daemon = |run: Option<&str>, socket: Option<&str>| DaemonArgs {
            action: crate::cli::Action::Start,
            run_dir: run.map(String::from),
            pidfile: None,
            uid: None,
            gid: None,
            coredumps: false,
            nodaemonize: false,
            communicator: Some("socket".into()),
            xenstore: None,
            socket: socket.map(PathBuf::from),
            configurators: Vec::new(),
        };
        let g = Global::default();
        let socket = |d: &DaemonArgs, text: &str| match resolve_with(&g, Some(d), text).unwrap().transport {
            Transport::Socket { path } => path,
            other => panic!("not the socket: {other:?}"),
        };
        let plain = daemon(None, None);
        assert_eq!(socket(&plain, ""), PathBuf::from("/var/run/singularity/agent.sock"));
        assert_eq!(
            socket(&plain, "[daemon]\nrun = /srv/r\n"),
            PathBuf::from("/srv/r/agent.sock")
        );
        assert_eq!(
            socket(&daemon(Some("/x"), None), "[daemon]\nrun = /srv/r\n"),
            PathBuf::from("/x/agent.sock")
        );
        assert_eq!(
            socket(&daemon(Some("/x"), None), "[socket]\npath = /s.sock\n"),
            PathBuf::from("/s.sock")
        );
        assert_eq!(
            socket(&daemon(Some("/x"), Some("/c.sock")), ""),
            PathBuf::from("/c.sock")
        );
        assert_eq!(
            resolve_with(&g, Some(&daemon(Some("run"), None)), "").unwrap_err().0,
            "bad run-time directory 'run': expected an absolute path"
        );
        assert!(resolve_with(&g, None, "[apply]\nnoop = yes\n").unwrap().apply.noop);
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let s = resolve_with(&Global::default(), None, "[main]\ncolour = blue\n").unwrap();
        assert_eq!(
            s.source.warnings,
            vec!["s.conf:2: unknown key 'colour' in [main]".to_string()]
        );
    }

    #[test]
    fn explicit_configuration_directory_must_hold_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let global = Global {
            configuration: Some(dir.path().to_path_buf()),
            ..Global::default()
        };
        let err = load(&global, None).unwrap_err().0;
        assert!(
            err.starts_with(&format!("cannot read {}/singularity.conf: ", dir.path().display())),
            "{err}"
        );
    }

    /// Loads the configuration in `dir` on another thread; `None` if that
    /// takes more than ten seconds (a read that blocks).
    fn load_from(dir: &Path) -> Option<Result<Settings, ConfigError>> {
        let global = Global {
            configuration: Some(dir.to_path_buf()),
            ..Global::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(load(&global, None));
        });
        rx.recv_timeout(Duration::from_secs(10)).ok()
    }

    #[test]
    fn a_configuration_that_is_not_a_small_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join(CONFIG_FILE);
        let refusal = |dir: &Path| load_from(dir).expect("does not block").unwrap_err().0;
        std::os::unix::fs::symlink("/dev/zero", &conf).unwrap();
        assert_eq!(
            refusal(dir.path()),
            format!("cannot read {}: not a regular file", conf.display())
        );
        std::fs::remove_file(&conf).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, conf.as_path(), rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        assert_eq!(
            refusal(dir.path()),
            format!("cannot read {}: not a regular file", conf.display())
        );
        std::fs::remove_file(&conf).unwrap();
        std::fs::create_dir(&conf).unwrap();
        assert!(refusal(dir.path()).ends_with(": not a regular file"));
        std::fs::remove_dir(&conf).unwrap();
        let mut big = String::from("[main]\nbackup = yes\n");
        while big.len() as u64 <= CONFIG_MAX {
            big.push_str("# padding padding padding padding padding padding\n");
        }
        std::fs::write(&conf, &big).unwrap();
        assert_eq!(
            refusal(dir.path()),
            format!("cannot read {}: larger than 1024 KiB", conf.display())
        );
        big.truncate(CONFIG_MAX as usize - 100);
        std::fs::write(&conf, &big).unwrap();
        assert!(load_from(dir.path()).unwrap().unwrap().system.backup);
    }
}
