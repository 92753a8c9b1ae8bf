//! `singularity config`: the effective configuration as INI with the source of
//! every value, read back by the agent itself; `-f` given a file; output into
//! a pipe whose reader is gone.

use crate::harness::{bin, TestRoot};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn config(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin()).arg("-f").arg(dir).args(args).output().unwrap()
}

/// `key = value` lines by section, comments dropped.
fn values(text: &str) -> Vec<String> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            section = line.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push(format!("{section} {line}"));
        }
    }
    out
}

#[test]
fn config_prints_every_key_with_its_source_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("singularity.conf");
    std::fs::write(
        &conf,
        "[main]\n# a comment\nbackup = yes\n\n[xen]\nrescan_interval = 7\n",
    )
    .unwrap();
    let out = config(dir.path(), &["-l", "info", "config"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\n[main]\n# command line\nloglevel = info\n"), "{text}");
    assert!(
        text.contains(&format!("# {}:3\nbackup = yes\n", conf.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("# {}:6\nrescan_interval = 7\n", conf.display())),
        "{text}"
    );
    assert!(text.contains("# default\ncache = /var/cache/singularity\n"), "{text}");
    for k in singularity::config::KEYS {
        assert!(
            text.contains(&format!("\n{} = ", k.key)),
            "[{}] {} missing:\n{text}",
            k.section,
            k.key
        );
    }

    // Fed back as the configuration file, it gives the same values, now
    // from that file.
    let again = tempfile::tempdir().unwrap();
    std::fs::write(again.path().join("singularity.conf"), &text).unwrap();
    let out = config(again.path(), &["config"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let second = String::from_utf8(out.stdout).unwrap();
    assert_eq!(values(&second), values(&text));
    assert!(
        !second.contains("# default\n") && !second.contains("# command line\n"),
        "{second}"
    );
}

#[test]
fn configuration_option_given_a_file_says_it_wants_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("singularity.conf");
    std::fs::write(&conf, "[main]\n").unwrap();
    let out = config(&conf, &["config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "singularity: {} is a file: -f/--configuration takes the directory holding singularity.conf (here: -f {})",
            conf.display(),
            dir.path().display()
        )
    );
}

/// Runs the binary with standard output on a pipe whose read end is already
/// closed: every write fails with EPIPE.
fn into_closed_pipe(cmd: &mut Command) -> Output {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here only.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    cmd.stdout(Stdio::from(write)).stderr(Stdio::piped()).output().unwrap()
}

#[test]
fn no_command_panics_when_its_reader_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("singularity.conf"), "").unwrap();
    let root = TestRoot::new();
    root.write("/var/cache/singularity/file/etc/motd", b"cached\n", 0o644);
    let runs: [&[&str]; 3] = [
        &["config"],
        &["config", "--default"],
        &["-H", "-", "apply", "--noop", "all"],
    ];
    for args in runs {
        let out = into_closed_pipe(
            Command::new(bin())
                .arg("-f")
                .arg(dir.path())
                .arg("--root")
                .arg(root.base())
                .args(args),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}\n{err}", out.status);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(!root.path("/etc/motd").exists(), "--noop wrote nothing");
}
