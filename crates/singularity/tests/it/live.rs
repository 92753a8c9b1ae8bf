//! The live system (`--root /`), where the agent follows the machine's own
//! links, `/proc` included. The test re-runs itself under `unshare --mount`
//! with a tmpfs over `/mnt`: the agent really works on `/`, but everything
//! it could write to is in that tmpfs, which only the private mount
//! namespace sees and which disappears with it.

use crate::harness::{bin, Agent};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Set in the re-run copy of the test, inside the namespace.
const IN_NAMESPACE: &str = "SINGULARITY_TEST_IN_MOUNT_NAMESPACE";
const NAME: &str = "live::on_the_live_root_links_and_proc_cannot_carry_an_injection_out_of_allowed_paths";
const SHADOW: &[u8] = b"root:*:19000:0:99999:7:::\n";

#[test]
fn on_the_live_root_links_and_proc_cannot_carry_an_injection_out_of_allowed_paths() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        in_namespace();
        return;
    }
    assert!(Path::new(bin()).exists());
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new("unshare");
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1");
    let out = cmd.output().expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "in the namespace:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the test did not run in the namespace:\n{stdout}"
    );
}

fn mount_tmpfs(at: &str) {
    let (src, target, fstype, opts) = (c"singularity-test", CString::new(at).unwrap(), c"tmpfs", c"mode=0755");
    // SAFETY: every pointer is a valid NUL-terminated string for the duration of the call.
    let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, opts.as_ptr().cast()) };
    assert_eq!(rc, 0, "mount tmpfs on {at}: {}", std::io::Error::last_os_error());
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
