//! The configuration file `singularity.conf`: INI with `[main]`, `[daemon]`,
//! `[apply]` and per-communicator/per-function sections. One table of
//! [`KEYS`] defines every key, its default, what it accepts and its
//! documentation; the parser, the annotated default file and the man page all
//! come from it. Parsing is pure: text in, [`FileValues`] out.

use std::collections::BTreeMap;
use std::fmt;

/// One configuration key.
#[derive(Debug)]
pub struct KeyDef {
    /// Section name, without brackets.
    pub section: &'static str,
    /// Key name.
    pub key: &'static str,
    /// Default value, as written in the file.
    pub default: &'static str,
    /// What values are accepted (shown in errors).
    pub accepts: &'static str,
    /// One-paragraph documentation.
    pub doc: &'static str,
}

/// Every key the file may hold.
pub const KEYS: &[KeyDef] = &[
    KeyDef { section: "main", key: "loglevel", default: "warning", accepts: "debug, info, warning, error, critical", doc: "Lowest severity that is logged." },
    KeyDef { section: "main", key: "loghandler", default: "syslog", accepts: "syslog, journald, - (standard error), or an absolute file path", doc: "Where log lines go." },
    KeyDef { section: "main", key: "backup", default: "false", accepts: "true or false", doc: "Keep the previous version of every replaced file as .<name>.bak beside it." },
    KeyDef { section: "main", key: "cache", default: "/var/cache/singularity", accepts: "an absolute path", doc: "Directory holding a copy of every file written, as <cache>/<function>/<path>, for `singularity apply`." },
    KeyDef { section: "main", key: "functions", default: "all", accepts: "a comma-separated list of network, hosts, hostname, resolvers, password, file, update, version, features, metrics, filesystems, time, power, vcpus, guestinfo, the functions of external configurators, or all", doc: "What the agent manages. Commands of disabled functions are answered 404 and left out of `features` (with the qga communicator: CommandNotFound, and not enabled in guest-info). all includes every external configurator's function. metrics (guest metrics in XenStore for the toolstack) runs with the xen communicator only; filesystems, time, power, vcpus and guestinfo have QEMU guest agent commands only." },
    KeyDef { section: "main", key: "root", default: "/", accepts: "an absolute path", doc: "Directory that stands for / of the managed system. With anything but /, no command is run and no kernel state is changed." },
    KeyDef { section: "main", key: "network_renderer", default: "auto", accepts: "auto, ifupdown, netplan, ifcfg, networkmanager, networkd, suse, gentoo, alpine or freebsd", doc: "How network configuration is written. auto chooses from /etc/os-release and the network manager in use." },
    KeyDef { section: "main", key: "communicator", default: "xen", accepts: "xen, socket or qga", doc: "How requests arrive: XenStore (nova's Xen driver), a local Unix socket, or the QEMU guest agent protocol (libvirt on KVM: nova's libvirt driver, Proxmox) on the port [qga] names." },
    KeyDef { section: "daemon", key: "run", default: "/var/run/singularity", accepts: "an absolute path", doc: "Run-time directory (a path on the agent's own system, not under root): holds the socket communicator's socket unless [socket] path says otherwise. Created 0755 when missing; a symbolic link, or a directory that is not the daemon user's or that others may write, is refused." },
    KeyDef { section: "daemon", key: "pidfile", default: "/var/run/singularity/singularity.pid", accepts: "an absolute path", doc: "Pid file, locked while the daemon runs. Whatever it is, the daemon also locks <root>/run/singularity.lock: one daemon per system." },
    KeyDef { section: "daemon", key: "uid", default: "", accepts: "a user name or number; empty keeps the current user", doc: "User to run as after start-up." },
    KeyDef { section: "daemon", key: "gid", default: "", accepts: "a group name or number; empty keeps the current group", doc: "Group to run as after start-up." },
    KeyDef { section: "daemon", key: "coredumps", default: "false", accepts: "true or false", doc: "Allow core dumps (they could hold secrets)." },
    KeyDef { section: "daemon", key: "configurators", default: "/etc/singularity/configurators", accepts: "a comma-separated list of absolute paths", doc: "Directories of external configurators: executables that serve commands of their own or add to built-in ones (protocol v1, singularity-configurators(7)). A directory that does not exist is skipped." },
    KeyDef { section: "daemon", key: "configurator_timeout", default: "30", accepts: "a whole number of seconds, 1 to 3600", doc: "How long one external configurator may take to answer; after that it is killed and the request is answered 500." },
    KeyDef { section: "daemon", key: "nodaemonize", default: "false", accepts: "true or false", doc: "Stay in the foreground (for systemd)." },
    KeyDef { section: "apply", key: "noop", default: "false", accepts: "true or false", doc: "Make `singularity apply` print what would change and change nothing, as --noop does." },
    KeyDef { section: "xen", key: "xenstore", default: "", accepts: "a path to a XenStore socket or device; empty tries $XENSTORED_PATH, /dev/xen/xenbus, /proc/xen/xenbus and the xenstored sockets", doc: "Where to reach XenStore." },
    KeyDef { section: "xen", key: "rescan_interval", default: "60", accepts: "a whole number of seconds, 1 to 86400", doc: "How often data/host is listed even without a watch event." },
    KeyDef { section: "metrics", key: "memory_interval", default: "60", accepts: "a whole number of seconds, 1 to 86400", doc: "How often the metrics function reads free memory; data/meminfo_free is written only when it changed." },
    KeyDef { section: "socket", key: "path", default: "", accepts: "an absolute path, or empty for <run>/agent.sock", doc: "Unix socket of the socket communicator (one JSON request per line); empty puts it in the run-time directory ([daemon] run)." },
    KeyDef { section: "socket", key: "vm_data", default: "", accepts: "an absolute path, or empty for none", doc: "Directory laid out like XenStore's vm-data (networking/<key> files, hostname) that resetnetwork reads when requests come over the socket." },
    KeyDef { section: "qga", key: "method", default: "virtio-serial", accepts: "virtio-serial, isa-serial, unix-listen or vsock-listen", doc: "How the qga communicator reaches the host, as qemu-ga's --method: a virtio-serial port (what libvirt and Proxmox set up), a serial port, or a listening Unix or vsock socket (one client at a time)." },
    KeyDef { section: "qga", key: "path", default: "", accepts: "a path, <cid>:<port> for vsock-listen, or empty for the method's default", doc: "The port: empty is /dev/virtio-ports/org.qemu.guest_agent.0 (found through /sys/class/virtio-ports when udev made no link) for virtio-serial, /dev/ttyS0 for isa-serial, <run>/qga.sock for unix-listen; vsock-listen needs <cid>:<port>." },
    KeyDef { section: "qga", key: "allow", default: "all", accepts: "a comma-separated list of guest-* command names, or all", doc: "The QEMU guest agent commands that may run, on top of functions (guest-sync, guest-sync-delimited, guest-ping and guest-info always may). Others answer CommandNotFound, as qemu-ga's --allow-rpcs does. guest-exec and guest-file-* do not exist here." },
    KeyDef { section: "qga", key: "block", default: "", accepts: "a comma-separated list of guest-* command names", doc: "QEMU guest agent commands that may not run, as qemu-ga's --block-rpcs." },
    KeyDef { section: "qga", key: "fsfreeze_hook", default: "", accepts: "an absolute path, or empty for none", doc: "A program, or a directory of programs run in name order, given the argument freeze before the filesystems are frozen (a non-zero exit aborts the freeze, and the programs that ran are given thaw) and thaw after each thaw, as qemu-ga's --fsfreeze-hook and Debian's fsfreeze-hook.d. Each must be owned by root and not writable by group or others." },
    KeyDef { section: "file", key: "allowed_paths", default: "/", accepts: "a comma-separated list of absolute paths", doc: "Injected files may only be written at or below these paths, once every symbolic link on the way is resolved. Links in these paths themselves are followed only when root owns them." },
    KeyDef { section: "file", key: "mode", default: "0600", accepts: "an octal mode from 0000 to 0777", doc: "Mode of a new injected file; an existing file keeps its own." },
    KeyDef { section: "file", key: "directory_mode", default: "0700", accepts: "an octal mode from 0000 to 0777", doc: "Mode of each directory created for an injected file; existing directories are left as they are." },
    KeyDef { section: "password", key: "hash", default: "sha512", accepts: "sha512 or sha256", doc: "crypt(3) scheme for the root password in /etc/shadow." },
    KeyDef { section: "password", key: "allow_empty", default: "false", accepts: "true or false", doc: "Let the host set an empty root password (refused by default, like one holding a NUL byte)." },
];

/// The definition of `section.key`, if it exists.
pub fn key_def(section: &str, key: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.section == section && k.key == key)
}

/// A value from the file with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The raw value, trimmed.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// The known keys found in one file, and warnings about the rest.
#[derive(Debug, Default)]
pub struct FileValues {
    /// File name used in messages.
    pub file: String,
    /// `(section, key)` → value.
    pub values: BTreeMap<(String, String), Located>,
    /// Unknown keys and sections, each naming file and line.
    pub warnings: Vec<String>,
}

/// A syntax error or a bad value.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Unknown keys and sections warned about one by one; the rest are counted.
pub const WARNINGS_MAX: usize = 5;

/// Parses INI text. Lines are `[section]`, `key = value` (or `key: value`),
/// blank, or comments starting with `#` or `;`. Only the first
/// [`WARNINGS_MAX`] unknown keys and sections are named, then how many more
/// there were.
pub fn parse(file: &str, text: &str) -> Result<FileValues, ConfigError> {
    let mut unknown = 0usize;
    let mut out = parse_counting(file, text, &mut unknown)?;
    let more = unknown.saturating_sub(WARNINGS_MAX);
    if more > 0 {
        out.warnings
            .push(format!("{file}: {more} more unknown keys or sections ignored"));
    }
    Ok(out)
}

fn parse_counting(file: &str, text: &str, unknown: &mut usize) -> Result<FileValues, ConfigError> {
    let mut out = FileValues {
        file: file.to_string(),
        ..FileValues::default()
    };
    let mut section: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| ConfigError(format!("{file}:{line}: section header lacks ']'")))?
                .trim();
            if !KEYS.iter().any(|k| k.section == name) {
                *unknown += 1;
                if *unknown <= WARNINGS_MAX {
                    out.warnings.push(format!("{file}:{line}: unknown section [{name}]"));
                }
            }
            section = Some(name.to_string());
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            return Err(ConfigError(format!(
                "{file}:{line}: expected 'key = value', found '{trimmed}'"
            )));
        };
        let key = trimmed[..split].trim();
        let value = trimmed[split + 1..].trim();
        let Some(sec) = &section else {
            return Err(ConfigError(format!("{file}:{line}: key '{key}' before any [section]")));
        };
        if key_def(sec, key).is_none() {
            *unknown += 1;
            if *unknown <= WARNINGS_MAX {
                out.warnings
                    .push(format!("{file}:{line}: unknown key '{key}' in [{sec}]"));
            }
            continue;
        }
        out.values.insert(
            (sec.clone(), key.to_string()),
            Located {
                value: value.to_string(),
                line,
            },
        );
    }
    Ok(out)
}

impl FileValues {
    /// The raw value of a key, if the file sets it.
    pub fn get(&self, section: &str, key: &str) -> Option<&Located> {
        self.values.get(&(section.to_string(), key.to_string()))
    }

    /// Converts a key's value with `convert`; an error names file, line, key and
    /// what is accepted.
    pub fn typed<T>(
        &self,
        section: &str,
        key: &str,
        convert: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(found) = self.get(section, key) else {
            return Ok(None);
        };
        match convert(&found.value) {
            Some(v) => Ok(Some(v)),
            None => {
                let accepts = key_def(section, key).map_or("", |k| k.accepts);
                Err(ConfigError(format!(
                    "{}:{}: bad value '{}' for '{}' in [{}]: expected {}",
                    self.file, found.line, found.value, key, section, accepts
                )))
            }
        }
    }
}

/// `true`/`false` and the usual INI spellings.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The fully commented default configuration file.
pub fn default_file() -> String {
    by_section(
        "# singularity.conf: configuration of the singularity guest agent.\n\
         # Every key is shown with its default value, commented out.\n\
         # Command-line options override this file.\n",
        |k| format!("\n# {}\n# Accepts: {}.\n#{} = {}\n", k.doc, k.accepts, k.key, k.default),
    )
}

/// INI text: `header`, then every key of [`KEYS`] under its `[section]`,
/// as `entry` writes it.
pub fn by_section(header: &str, entry: impl Fn(&KeyDef) -> String) -> String {
    let mut out = header.to_string();
    let mut section = "";
    for k in KEYS {
        if k.section != section {
            section = k.section;
            out.push_str(&format!("\n[{section}]\n"));
        }
        out.push_str(&entry(k));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documentation of `functions` and `network_renderer` names every
    /// built-in function and renderer: one added to its registry and not
    /// here fails.
    #[test]
    fn documented_values_follow_the_registries() {
        let accepts = |key: &str| KEYS.iter().find(|k| k.key == key).unwrap().accepts;
        for f in crate::functions::Function::ALL {
            assert!(accepts("functions").contains(f.name()), "{f} undocumented");
        }
        for r in crate::network::Renderer::ALL {
            assert!(accepts("network_renderer").contains(r.name()), "{r} undocumented");
        }
    }

    #[test]
    fn parses_sections_keys_and_comments() {
        let v = parse(
            "t.conf",
            "# c\n[main]\nbackup = yes\n; x\nfunctions: password,file\n[xen]\nrescan_interval=5\n",
        )
        .unwrap();
        assert_eq!(v.get("main", "backup").unwrap().value, "yes");
        assert_eq!(v.get("main", "functions").unwrap().line, 5);
        assert_eq!(
            v.typed("xen", "rescan_interval", |s| s.parse::<u64>().ok()).unwrap(),
            Some(5)
        );
        assert!(v.warnings.is_empty());
    }

    #[test]
    fn unknown_keys_warn_and_bad_values_fail_with_location() {
        let v = parse("t.conf", "[main]\nbogus = 1\nbackup = maybe\n[extra]\n").unwrap();
        assert_eq!(v.warnings[0], "t.conf:2: unknown key 'bogus' in [main]");
        assert_eq!(v.warnings[1], "t.conf:4: unknown section [extra]");
        let err = v.typed("main", "backup", parse_bool).unwrap_err();
        assert_eq!(
            err.0,
            "t.conf:3: bad value 'maybe' for 'backup' in [main]: expected true or false"
        );
        assert!(parse("t.conf", "x = 1\n")
            .unwrap_err()
            .0
            .contains("before any [section]"));
        assert!(parse("t.conf", "[main\n").unwrap_err().0.contains("lacks ']'"));
        assert!(parse("t.conf", "[main]\njunk\n").unwrap_err().0.contains("t.conf:2"));
    }

    #[test]
    fn many_unknown_keys_give_a_few_warnings_and_a_count() {
        let mut text = String::from("[main]\nbackup = yes\n");
        for i in 0..700_000 {
            text.push_str(&format!("k{i} = 1\n"));
        }
        let v = parse("t.conf", &text).unwrap();
        assert_eq!(v.warnings.len(), WARNINGS_MAX + 1);
        assert_eq!(v.warnings[0], "t.conf:3: unknown key 'k0' in [main]");
        assert_eq!(
            v.warnings[WARNINGS_MAX],
            format!(
                "t.conf: {} more unknown keys or sections ignored",
                700_000 - WARNINGS_MAX
            )
        );
        assert_eq!(v.get("main", "backup").unwrap().value, "yes");
    }

    #[test]
    fn default_file_parses_back_to_nothing_set() {
        let text = default_file();
        let v = parse("d", &text).unwrap();
        assert!(v.values.is_empty() && v.warnings.is_empty());
        for k in KEYS {
            assert!(text.contains(&format!("#{} = {}", k.key, k.default)), "{}", k.key);
        }
    }
}
