//! `singularity apply`: cached files written back to the live root, and
//! `--noop` diffs.

use crate::harness::{bin, Agent, TestRoot};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use std::process::{Command, Output};

fn apply(root: &TestRoot, args: &[&str]) -> Output {
    apply_with(root, "", args)
}

fn apply_with(root: &TestRoot, config: &str, args: &[&str]) -> Output {
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("singularity.conf"), config).unwrap();
    Command::new(bin())
        .arg("-f")
        .arg(conf.path())
        .args(["-H", "-", "--root"])
        .arg(root.base())
        .arg("apply")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn apply_restores_deleted_files_and_noop_shows_diffs() {
    let root = TestRoot::new();
    {
        let agent = Agent::socket(&root, &[], None);
        let mut c = agent.connect();
        for (path, data) in [
            ("/etc/motd", "hello\nworld\n"),
            ("/root/.ssh/authorized_keys", "ssh-rsa AAAA k\n"),
        ] {
            let req = json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode(path), "b64_file": STANDARD.encode(data)}});
            assert_eq!(c.json(req).0, "0");
        }
    }
    let out = apply(&root, &["--noop", "all"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "no changes\n");

    std::fs::remove_file(root.path("/root/.ssh/authorized_keys")).unwrap();
    root.write("/etc/motd", b"hello\nthere\n", 0o644);
    let before = root.snapshot();
    let out = apply(&root, &["--noop", "file"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("--- a/etc/motd\n+++ b/etc/motd\n"), "{text}");
    assert!(text.contains("-there\n+world\n"), "{text}");
    assert!(
        text.contains("+++ b/root/.ssh/authorized_keys\n") && text.contains("+ssh-rsa AAAA k\n"),
        "{text}"
    );
    assert_eq!(root.snapshot(), before, "--noop changes nothing");

    let out = apply(&root, &["file"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out), "file: restored\n");
    assert_eq!(root.read("/root/.ssh/authorized_keys"), b"ssh-rsa AAAA k\n");
    assert_eq!(root.mode("/root/.ssh/authorized_keys"), 0o600);
    assert_eq!(root.read("/etc/motd"), b"hello\nworld\n");
    assert_eq!(stdout(&apply(&root, &["file"])), "no changes\n");
}

#[test]
fn apply_respects_functions_and_rejects_bad_actions() {
    let root = TestRoot::new();
    root.write("/var/cache/singularity/file/etc/motd", b"cached\n", 0o644);
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("singularity.conf"), "").unwrap();
    let out = Command::new(bin())
        .arg("-f")
        .arg(conf.path())
        .args(["-F", "password", "--root"])
        .arg(root.base())
        .args(["apply", "file"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "nothing to apply: none of the chosen functions is enabled\n"
    );
    assert!(!root.path("/etc/motd").exists());

    // Any name may be an external configurator's function: a name with no
    // function and no cached files is refused by name.
    let out = apply(&root, &["bogus"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown function 'bogus'") && err.contains("network"),
        "{err}"
    );
    let out = apply(&root, &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn restored_injections_are_held_to_allowed_paths_as_resolved_now() {
    let root = TestRoot::new();
    let config = "[file]\nallowed_paths = /home/u/.ssh\n";
    {
        let agent = Agent::socket(&root, &[], Some(config));
        let mut c = agent.connect();
        let req = json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode("/home/u/.ssh/authorized_keys"), "b64_file": STANDARD.encode("ssh-rsa AAAA k\n")}});
        assert_eq!(c.json(req).0, "0");
    }
    // The user swaps their .ssh for a link into /etc (the test gives the
    // link to another user, as if that user had made it).
    std::fs::remove_dir_all(root.path("/home/u/.ssh")).unwrap();
    std::os::unix::fs::symlink("/etc", root.path("/home/u/.ssh")).unwrap();
    std::os::unix::fs::lchown(root.path("/home/u/.ssh"), Some(1000), Some(1000)).expect("lchown needs root");
    let before = root.snapshot();
    let out = apply_with(&root, config, &["file"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to write /home/u/.ssh/authorized_keys: it lies outside the allowed paths once symbolic links are resolved"),
        "{err}"
    );
    assert_eq!(root.snapshot(), before);
}

#[test]
fn apply_noop_in_the_configuration_file_works_like_the_option() {
    let root = TestRoot::new();
    root.write("/var/cache/singularity/file/etc/motd", b"cached\n", 0o644);
    let before = root.snapshot();
    let out = apply_with(&root, "[apply]\nnoop = true\n", &["file"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert!(
        text.contains("+++ b/etc/motd\n") && text.contains("+cached\n"),
        "{text}"
    );
    assert_eq!(root.snapshot(), before, "noop = true changes nothing");
    let out = apply_with(&root, "[apply]\nnoop = false\n", &["file"]);
    assert_eq!(stdout(&out), "file: restored\n");
    assert_eq!(root.read("/etc/motd"), b"cached\n");
}

#[test]
fn apply_on_an_empty_cache_says_nothing_is_cached_and_where() {
    let root = TestRoot::new();
    let cache = root.path("/var/cache/singularity");
    for args in [&["all"][..], &["--noop", "all"][..]] {
        let out = apply(&root, args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = stdout(&out);
        assert!(
            text.starts_with("nothing is cached for network, hosts, hostname")
                && text.ends_with(&format!(" in {}: nothing to apply\n", cache.display())),
            "{text}"
        );
    }
    // An empty cache directory is no different from a missing one.
    std::fs::create_dir_all(cache.join("file")).unwrap();
    let out = apply(&root, &["file"]);
    assert_eq!(
        stdout(&out),
        format!("nothing is cached for file in {}: nothing to apply\n", cache.display())
    );
}
