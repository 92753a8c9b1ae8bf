//! Generated files that ship with the binary: man pages, completions and the
//! default configuration. Everything is produced in memory first, so writing
//! (`xtask dist DIR`) and checking (the `dist` test) share one code path.

use crate::confman;
use clap::{Command, CommandFactory};
use clap_complete::Shell;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The command that refreshes the checked-in copies.
pub const REFRESH: &str = "cargo run -p xtask -- dist dist";

/// One generated file, its path relative to the output directory.
#[derive(Debug)]
pub struct Generated {
    /// Relative path, e.g. `man/singularity.8`.
    pub path: PathBuf,
    /// Contents.
    pub contents: Vec<u8>,
}

/// Directories (relative) whose every file is generated: files there that are
/// not generated any more are stale. `host/` holds the operator tools'
/// files, which ship in their own package.
pub const GENERATED_DIRS: &[&str] = &["man", "completions", "host/man", "host/completions"];

/// The fully built top-level command of the guest agent (subcommands get
/// their display names, global options propagate).
pub fn command() -> Command {
    built(singularity::cli::Cli::command())
}

/// The fully built top-level command of the operator tools.
pub fn host_command() -> Command {
    built(singularity_host::cli::Cli::command())
}

fn built(cmd: Command) -> Command {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Where one binary's man pages go, and what they refer to besides each other.
struct Manual<'a> {
    dir: &'a str,
    section: &'a str,
    title: &'a str,
    see_also: &'a [&'a str],
}

const AGENT_MANUAL: Manual = Manual {
    dir: "man",
    section: "8",
    title: "System Manager's Manual",
    see_also: &["singularity.conf(5)", "singularity-configurators(7)"],
};

const HOST_MANUAL: Manual = Manual {
    dir: "host/man",
    section: "1",
    title: "User Commands",
    see_also: &["singularity(8)"],
};

fn completions(cmd: &Command, dir: &str, out: &mut Vec<Generated>) {
    let name = cmd.get_name().to_string();
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut buf = Vec::new();
        let mut c = cmd.clone();
        clap_complete::generate(shell, &mut c, name.clone(), &mut buf);
        out.push(Generated {
            path: Path::new(dir).join(file),
            contents: buf,
        });
    }
}

/// Every generated file, in a fixed order.
pub fn generate() -> io::Result<Vec<Generated>> {
    let cmd = command();
    let mut out = Vec::new();
    man_pages(&cmd, &cmd, &AGENT_MANUAL, &mut out)?;
    out.push(Generated {
        path: PathBuf::from("man/singularity.conf.5"),
        contents: confman::render(&cmd, singularity::config::KEYS).into_bytes(),
    });
    out.push(Generated {
        path: PathBuf::from("man/singularity-configurators.7"),
        contents: crate::protoman::render(cmd.get_version().unwrap_or_default()).into_bytes(),
    });
    completions(&cmd, "completions", &mut out);
    out.push(Generated {
        path: PathBuf::from("singularity.conf"),
        contents: singularity::config::default_file().into_bytes(),
    });
    let host = host_command();
    man_pages(&host, &host, &HOST_MANUAL, &mut out)?;
    completions(&host, "host/completions", &mut out);
    Ok(out)
}

/// Pages for `cmd` and, recursively, its visible subcommands:
/// `singularity.8`, `singularity-daemon.8`, `singularity-host-password.1`...
fn man_pages(root: &Command, cmd: &Command, manual: &Manual, out: &mut Vec<Generated>) -> io::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let man = clap_mangen::Man::new(cmd.clone())
        .section(manual.section)
        .manual(manual.title);
    let mut page = Vec::new();
    man.render(&mut page)?;
    let section = manual.section;
    let mut refs = Vec::new();
    if !std::ptr::eq(root, cmd) {
        refs.push(format!("{}({section})", root.get_name()));
    }
    refs.extend(manual.see_also.iter().map(|r| r.to_string()));
    refs.extend(
        visible_subcommands(cmd).map(|s| format!("{}({section})", s.get_display_name().unwrap_or(s.get_name()))),
    );
    page.extend_from_slice(b".SH \"SEE ALSO\"\n");
    page.extend_from_slice(confman::see_also(&refs).as_bytes());
    out.push(Generated {
        path: Path::new(manual.dir).join(format!("{name}.{section}")),
        contents: page,
    });
    for sub in visible_subcommands(cmd) {
        man_pages(root, sub, manual, out)?;
    }
    Ok(())
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// Writes every generated file under `dir` and removes files in
/// [`GENERATED_DIRS`] that are no longer generated. Returns the relative
/// paths written and removed.
pub fn write(dir: &Path) -> io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let files = generate()?;
    let mut written = Vec::new();
    for f in &files {
        let target = dir.join(&f.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::read(&target).ok().as_deref() != Some(f.contents.as_slice()) {
            fs::write(&target, &f.contents)?;
            written.push(f.path.clone());
        }
    }
    let stale = stale(dir, &files)?;
    for path in &stale {
        fs::remove_file(dir.join(path))?;
    }
    Ok((written, stale))
}

/// Files in [`GENERATED_DIRS`] under `dir` that `files` does not contain.
fn stale(dir: &Path, files: &[Generated]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for sub in GENERATED_DIRS {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let rel = Path::new(sub).join(entry?.file_name());
            if !files.iter().any(|f| f.path == rel) {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What differs between `dir` and freshly generated files: one line per
/// missing, different or stale file. Empty when up to date.
pub fn check(dir: &Path) -> io::Result<Vec<String>> {
    let files = generate()?;
    let mut problems = Vec::new();
    for f in &files {
        match fs::read(dir.join(&f.path)) {
            Ok(have) if have == f.contents => {}
            Ok(have) => problems.push(format!(
                "{}: differs{}",
                f.path.display(),
                first_difference(&have, &f.contents)
            )),
            Err(e) => problems.push(format!("{}: {e}", f.path.display())),
        }
    }
    for path in stale(dir, &files)? {
        problems.push(format!("{}: no longer generated", path.display()));
    }
    Ok(problems)
}

/// ` at line N: have "...", want "..."` for the first differing line.
fn first_difference(have: &[u8], want: &[u8]) -> String {
    let have = String::from_utf8_lossy(have);
    let want = String::from_utf8_lossy(want);
    let mut h = have.lines();
    let mut w = want.lines();
    for n in 1.. {
        match (h.next(), w.next()) {
            (None, None) => break,
            (a, b) if a == b => continue,
            (a, b) => {
                return format!(
                    " at line {n}: have {:?}, want {:?}",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                )
            }
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_subcommand_gets_a_page() {
        let files = generate().unwrap();
        let names: Vec<_> = files.iter().map(|f| f.path.to_string_lossy().into_owned()).collect();
        assert!(names.contains(&"man/singularity.8".to_string()));
        assert!(names.contains(&"man/singularity-daemon.8".to_string()));
        for sub in visible_subcommands(&command()) {
            let want = format!("man/singularity-{}.8", sub.get_name());
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }

    #[test]
    fn operator_tools_get_their_own_section_1_pages() {
        let files = generate().unwrap();
        let names: Vec<_> = files.iter().map(|f| f.path.to_string_lossy().into_owned()).collect();
        for sub in visible_subcommands(&host_command()) {
            let want = format!("host/man/singularity-host-{}.1", sub.get_name());
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(names.contains(&"host/man/singularity-host-demo.1".to_string()));
        assert!(names.contains(&"host/completions/singularity-host.bash".to_string()));
        // The guest agent's manual documents only what runs in a guest.
        for name in names.iter().filter(|n| n.starts_with("man/")) {
            for tool in ["host", "xenstored", "demo"] {
                assert!(!name.contains(&format!("singularity-{tool}")), "{name}");
            }
        }
    }

    #[test]
    fn subcommand_pages_name_the_full_command() {
        let files = generate().unwrap();
        let daemon = files
            .iter()
            .find(|f| f.path == Path::new("man/singularity-daemon.8"))
            .unwrap();
        let text = String::from_utf8_lossy(&daemon.contents);
        assert!(text.contains("singularity\\-daemon"), "{text}");
        assert!(text.contains(".BR singularity (8),"), "{text}");
    }

    #[test]
    fn write_then_check_is_clean_and_stale_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("man")).unwrap();
        fs::write(dir.path().join("man/singularity-gone.8"), "old").unwrap();
        assert_eq!(check(dir.path()).unwrap().len(), generate().unwrap().len() + 1);
        let (written, removed) = write(dir.path()).unwrap();
        assert_eq!(written.len(), generate().unwrap().len());
        assert_eq!(removed, vec![PathBuf::from("man/singularity-gone.8")]);
        assert!(check(dir.path()).unwrap().is_empty());
        fs::write(dir.path().join("singularity.conf"), "x\n").unwrap();
        let problems = check(dir.path()).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("singularity.conf: differs at line 1"),
            "{problems:?}"
        );
    }
}
