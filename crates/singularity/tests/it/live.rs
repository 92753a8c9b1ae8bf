//! The live system (`--root /`), where the agent follows the machine's own
//! links, `/proc` included. The test re-runs itself under `unshare --mount`
//! with a tmpfs over `/mnt`: the agent really works on `/`, but everything
//! it could write to is in that tmpfs, which only the private mount
//! namespace sees and which disappears with it.

use crate::harness::{bin, in_mount_namespace, mount_tmpfs, rerun_in_mount_namespace, Agent};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

const NAME: &str = "live::on_the_live_root_links_and_proc_cannot_carry_an_injection_out_of_allowed_paths";
const SHADOW: &[u8] = b"root:*:19000:0:99999:7:::\n";

#[test]
fn on_the_live_root_links_and_proc_cannot_carry_an_injection_out_of_allowed_paths() {
    if in_mount_namespace() {
        in_namespace();
        return;
    }
    assert!(Path::new(bin()).exists());
    rerun_in_mount_namespace(NAME);
}

fn in_namespace() {
    // Only this namespace sees the tmpfs; the machine's /mnt is untouched.
    mount_tmpfs("/mnt");
    for dir in ["/mnt/etc", "/mnt/home/.ssh", "/mnt/cache", "/mnt/run"] {
        fs::create_dir_all(dir).unwrap();
    }
    fs::set_permissions("/mnt/home/.ssh", fs::Permissions::from_mode(0o700)).unwrap();
    fs::write("/mnt/etc/shadow", SHADOW).unwrap();
    symlink("../../etc", "/mnt/home/.ssh/etc2").unwrap();
    symlink("/mnt/etc", "/mnt/home/.ssh/etc").unwrap();
    symlink("/proc/self/root/mnt/etc", "/mnt/home/.ssh/root").unwrap();
    symlink("/proc/self/cwd", "/mnt/home/.ssh/cwd").unwrap();

    let config = "[main]\ncache = /mnt/cache\nfunctions = file,version\n[daemon]\nrun = /mnt/run\n\
                  [file]\nallowed_paths = /mnt/home/.ssh\n";
    // The agent starts in /mnt/etc, so /proc/self/cwd leads there.
    let agent = Agent::socket_at(Path::new("/"), &[], &[], Some(config), Some(Path::new("/mnt/etc")));
    let mut c = agent.connect();
    let inject = |c: &mut crate::harness::Conn, path: &str| {
        c.json(json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode(path), "b64_file": STANDARD.encode("root::0:0:99999:7:::\n")}}))
    };
    for (path, why) in [
        (
            "/mnt/home/.ssh/etc2/shadow",
            "lies outside the allowed paths once symbolic links are resolved",
        ),
        (
            "/mnt/home/.ssh/etc/shadow",
            "lies outside the allowed paths once symbolic links are resolved",
        ),
        ("/mnt/home/.ssh/root/shadow", "passes through a symbolic link in /proc"),
        ("/mnt/home/.ssh/cwd/shadow", "passes through a symbolic link in /proc"),
    ] {
        assert_eq!(
            inject(&mut c, path),
            ("500".to_string(), format!("refusing to write {path}: it {why}")),
        );
    }
    // A request inside the allowed path is written, privately.
    assert_eq!(inject(&mut c, "/mnt/home/.ssh/authorized_keys").0, "0");
    assert_eq!(
        fs::metadata("/mnt/home/.ssh/authorized_keys").unwrap().mode() & 0o7777,
        0o600
    );
    drop(c);
    drop(agent);

    // With every path allowed, /proc's links are still not followed.
    let open = "[main]\ncache = /mnt/cache\nfunctions = file,version\n[daemon]\nrun = /mnt/run\n";
    let agent = Agent::socket_at(Path::new("/"), &[], &[], Some(open), Some(Path::new("/mnt/etc")));
    let mut c = agent.connect();
    // (Not /proc/1/root: that is the machine's own root, outside this namespace.)
    for path in ["/proc/self/cwd/shadow", "/proc/self/root/mnt/etc/shadow"] {
        assert_eq!(
            inject(&mut c, path),
            (
                "500".to_string(),
                format!("refusing to write {path}: it passes through a symbolic link in /proc")
            ),
        );
    }
    assert_eq!(fs::read("/mnt/etc/shadow").unwrap(), SHADOW);
    let mut names: Vec<_> = fs::read_dir("/mnt/etc")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["shadow"], "nothing else written there");
}
