//! `singularity config`: the effective configuration as INI. Every key of
//! [`KEYS`](crate::config::KEYS) is printed in its section, after a comment naming where its value
//! came from (`# default`, `# <file>:<line>` or `# command line`); the text
//! parses back with [`crate::config::parse`] to the same values. Pure: values in,
//! text out.

use crate::cli::{DaemonArgs, Global};
use crate::config::{FileValues, KeyDef};
use std::ffi::OsString;
use std::path::PathBuf;

/// Where a key's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A line of the configuration file.
    File {
        /// The file, as named in messages.
        file: String,
        /// 1-based line number.
        line: usize,
    },
    /// An option on the command line.
    CommandLine,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { file, line } => write!(f, "{file}:{line}"),
            Source::CommandLine => f.write_str("command line"),
        }
    }
}

/// The value an option on the command line gives `section.key`, if any, as
/// given (a path may not be UTF-8). Flags that can only switch something on
/// count only when given. The one map of options to keys: the settings are
/// resolved through it, and `config` prints from it.
pub fn command_line_value(global: &Global, daemon: Option<&DaemonArgs>, k: &KeyDef) -> Option<OsString> {
    let text = |s: &Option<String>| s.clone().map(OsString::from);
    let path = |p: &Option<PathBuf>| p.clone().map(PathBuf::into_os_string);
    let flag = |on: bool| on.then(|| OsString::from("true"));
    match (k.section, k.key) {
        ("main", "loglevel") => text(&global.loglevel),
        ("main", "loghandler") => text(&global.loghandler),
        ("main", "backup") => flag(global.backup),
        ("main", "cache") => text(&global.cache),
        ("main", "functions") => text(&global.functions),
        ("main", "root") => path(&global.root),
        _ => {
            let d = daemon?;
            match (k.section, k.key) {
                ("main", "communicator") => text(&d.communicator),
                ("daemon", "run") => text(&d.run_dir),
                ("daemon", "pidfile") => text(&d.pidfile),
                ("daemon", "uid") => text(&d.uid),
                ("daemon", "gid") => text(&d.gid),
                ("daemon", "coredumps") => flag(d.coredumps),
                ("daemon", "nodaemonize") => flag(d.nodaemonize),
                ("daemon", "configurators") => (!d.configurators.is_empty()).then(|| {
                    let mut list = OsString::new();
                    for (i, dir) in d.configurators.iter().enumerate() {
                        if i > 0 {
                            list.push(",");
                        }
                        list.push(dir);
                    }
                    list
                }),
                ("xen", "xenstore") => text(&d.xenstore),
                ("socket", "path") => path(&d.socket),
                _ => None,
            }
        }
    }
}

/// The effective value of one key and its source: command line over file
/// over default.
pub fn value_of(k: &KeyDef, file: &FileValues, global: &Global, daemon: Option<&DaemonArgs>) -> (String, Source) {
    if let Some(v) = command_line_value(global, daemon, k) {
        return (v.to_string_lossy().into_owned(), Source::CommandLine);
    }
    if let Some(found) = file.get(k.section, k.key) {
        return (
            found.value.clone(),
            Source::File {
                file: file.file.clone(),
                line: found.line,
            },
        );
    }
    (k.default.to_string(), Source::Default)
}

/// The whole effective configuration as INI text.
pub fn render(file: &FileValues, global: &Global, daemon: Option<&DaemonArgs>) -> String {
    crate::config::by_section(
        "# The effective configuration of singularity: each key follows a comment\n\
         # naming where its value came from.\n",
        |k| {
            let (value, source) = value_of(k, file, global, daemon);
            format!("# {source}\n{} = {value}\n", k.key)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, KEYS};

    #[test]
    fn every_key_is_printed_with_its_source_and_parses_back() {
        let file = parse("/etc/s.conf", "[main]\nbackup = yes\n\n[xen]\nrescan_interval = 5\n").unwrap();
        let global = Global {
            loglevel: Some("debug".into()),
            ..Global::default()
        };
        let text = render(&file, &global, None);
        assert!(text.contains("\n[main]\n# command line\nloglevel = debug\n"), "{text}");
        assert!(text.contains("# /etc/s.conf:2\nbackup = yes\n"), "{text}");
        assert!(text.contains("# /etc/s.conf:5\nrescan_interval = 5\n"), "{text}");
        assert!(text.contains("# default\ncache = /var/cache/singularity\n"), "{text}");
        let back = parse("out", &text).unwrap();
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        assert_eq!(back.values.len(), KEYS.len());
        for k in KEYS {
            let (value, _) = value_of(k, &file, &global, None);
            assert_eq!(
                back.get(k.section, k.key).unwrap().value,
                value,
                "{}.{}",
                k.section,
                k.key
            );
        }
    }

    #[test]
    fn daemon_options_count_only_for_the_daemon() {
        let daemon = DaemonArgs {
            action: crate::cli::Action::Start,
            run_dir: Some("/srv/run".into()),
            pidfile: None,
            uid: None,
            gid: None,
            coredumps: false,
            nodaemonize: true,
            communicator: Some("socket".into()),
            xenstore: None,
            socket: None,
            configurators: vec!["/a".into(), "/b".into()],
        };
        let file = FileValues::default();
        let global = Global::default();
        let key = |s, k| crate::config::key_def(s, k).unwrap();
        assert_eq!(
            value_of(key("daemon", "run"), &file, &global, Some(&daemon)),
            ("/srv/run".to_string(), Source::CommandLine)
        );
        assert_eq!(
            value_of(key("daemon", "coredumps"), &file, &global, Some(&daemon)),
            ("false".to_string(), Source::Default)
        );
        assert_eq!(
            command_line_value(&global, Some(&daemon), key("daemon", "configurators")),
            Some("/a,/b".into())
        );
        assert_eq!(
            command_line_value(&global, Some(&daemon), key("main", "communicator")),
            Some("socket".into())
        );
        assert_eq!(command_line_value(&global, None, key("daemon", "run")), None);
    }
}
