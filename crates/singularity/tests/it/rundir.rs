//! The run-time directory (`-r`): the socket communicator's socket goes there
//! unless named, the daemon creates it 0755, and refuses one that is a link or
//! that others may write.

use crate::harness::{bin, TestRoot};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn daemon(dir: &Path, root: &TestRoot, run: &Path, config: &str) -> Child {
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf/singularity.conf"), config).unwrap();
    Command::new(bin())
        .arg("-f")
        .arg(dir.join("conf"))
        .args(["-H", "-", "--root"])
        .arg(root.base())
        .args(["daemon", "--nodaemonize", "--communicator", "socket", "-r"])
        .arg(run)
        .arg("--pidfile")
        .arg(dir.join("singularity.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for_socket(child: &mut Child, socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(socket).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
        assert!(Instant::now() < deadline, "no socket at {}", socket.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_socket_goes_in_the_run_directory_which_is_created_0755() {
    let dir = tempfile::tempdir().unwrap();
    let root = TestRoot::new();
    let run = dir.path().join("var/run/singularity");
    let mut child = daemon(dir.path(), &root, &run, "");
    wait_for_socket(&mut child, &run.join("agent.sock"));
    let meta = std::fs::symlink_metadata(&run).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o755);
    assert!(!root.path("/var/run/singularity").exists(), "not under --root");
    child.kill().unwrap();
    child.wait().unwrap();

    // [socket] path still names the socket, wherever the run directory is.
    let named = dir.path().join("named.sock");
    let config = format!("[socket]\npath = {}\n", named.display());
    let mut child = daemon(dir.path(), &root, &run, &config);
    wait_for_socket(&mut child, &named);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_run_directory_that_is_a_link_or_writable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = TestRoot::new();
    let target = dir.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    let link = dir.path().join("run-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let open = dir.path().join("run-open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (run, why) in [
        (&link, "it is a symbolic link"),
        (&open, "its mode 0777 lets others than its owner write it"),
    ] {
        let out = daemon(dir.path(), &root, run, "").wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("refusing run-time directory {}: {why}", run.display())),
            "{err}"
        );
        assert!(
            std::fs::read_dir(&target).unwrap().next().is_none(),
            "nothing made through the link"
        );
    }
}
