//! `singularity-host demo` runs without Xen or privileges, and its transcript
//! shows the boot sequence's replies and the files the agent wrote.

use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_singularity-host")
}

#[test]
fn demo_transcript_shows_replies_and_files() {
    let out = Command::new(bin()).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let version = env!("CARGO_PKG_VERSION");
    for expected in [
        format!(r#"{{"returncode":"0","message":"{version}"}}"#),
        r#"{"returncode":"0","message":"version,features,keyinit,password,injectfile,file_inject,resetnetwork,agentupdate"}"#
            .to_string(),
        r#"{"returncode":"0","message":""}"#.to_string(),
        r#"{"name": "file_inject", "value": {"b64_file": "#.to_string(),
        r#"{"returncode":"D0","message":"#.to_string(),
        r#"{"returncode":"404","message":"No such agent command 'help'"}"#.to_string(),
        "  0600  /root/.ssh/authorized_keys  (new)".to_string(),
        "  0700  /root/.ssh/  (new)".to_string(),
        "  0644  /etc/network/interfaces.d/50-singularity  (new)".to_string(),
        "+    address 203.0.113.10/24".to_string(),
        "+demo-guest".to_string(),
        "  0640  /etc/shadow  (changed)".to_string(),
        "+# The following ssh key was injected by Nova".to_string(),
        "+root:$6$".to_string(),
        "demo finished in".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    // Every exchange got a reply, and the root is removed without --keep.
    assert!(!text.contains("(no reply)"));
    let root = text.lines().find_map(|l| l.strip_prefix("guest root: ")).unwrap();
    let root = root.split(' ').next().unwrap();
    assert!(!std::path::Path::new(root).exists());
}

#[test]
fn demo_keep_leaves_the_root() {
    let out = Command::new(bin()).args(["demo", "--keep"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let kept = text
        .lines()
        .find_map(|l| l.strip_prefix("The guest root is kept at "))
        .unwrap();
    let keys = std::path::Path::new(kept).join("root/.ssh/authorized_keys");
    assert!(std::fs::read_to_string(&keys).unwrap().contains("ssh-ed25519"));
    std::fs::remove_dir_all(kept).unwrap();
}
