//! The command-line tools together, as an operator would use them:
//! `singularity-host xenstored` serving the simulator, a daemon on its guest
//! socket, and `singularity-host` driving it; then xenstore-utils against the
//! same simulator, and a clean stop on SIGTERM.

use crate::harness::{bin, host_bin, TestRoot};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(Instant::now() < deadline, "{} never came up", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn host(dom0: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(host_bin())
        .arg("--xenstore")
        .arg(dom0)
        .args(["--domid", "3"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or_default())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn operator_tools_drive_an_agent_through_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let (dom0, guest): (PathBuf, PathBuf) = (dir.path().join("dom0"), dir.path().join("guest"));
    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new(host_bin())
            .args(["xenstored", "--socket"])
            .arg(&dom0)
            .arg("--guest-device")
            .arg(format!("3:{}", guest.display()))
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&dom0);

    // No agent yet: the host times out and removes its request.
    let out = host(&dom0, &["--timeout", "1", "version"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1.trim(),
        "singularity-host: TIMEOUT: No response from agent within 1 seconds."
    );

    let root = TestRoot::new();
    root.seed_debian(&[("eth0", "52:54:00:12:34:56")]);
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/singularity.conf"), "").unwrap();
    procs.0.push(
        Command::new(bin())
            .arg("-f")
            .arg(dir.path().join("conf"))
            .args(["-H", "-", "--root"])
            .arg(root.base())
            .args(["daemon", "--nodaemonize", "--xenstore"])
            .arg(&guest)
            .arg("--pidfile")
            .arg(dir.path().join("pid"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let out = host(&dom0, &["version"], None);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0.trim(), env!("CARGO_PKG_VERSION"));

    let out = host(&dom0, &["--json", "features"], None);
    assert_eq!(
        text(&out).0.trim(),
        r#"{"returncode":"0","message":"version,features,keyinit,password,injectfile,file_inject,resetnetwork,agentupdate"}"#
    );

    let out = host(&dom0, &["password", "--md", "md5", "-"], Some(b"from-stdin\n"));
    assert!(out.status.success(), "{:?}", text(&out));
    let hash = root.shadow_hash("root");
    assert_eq!(crate::socket::system_crypt("from-stdin", &hash), hash);

    let keyfile = dir.path().join("key.pub");
    std::fs::write(&keyfile, "ssh-ed25519 AAAA operator\n").unwrap();
    let out = host(
        &dom0,
        &["inject", "/root/.ssh/authorized_keys", keyfile.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(root.read("/root/.ssh/authorized_keys"), b"ssh-ed25519 AAAA operator\n");

    let set = [
        "set-network",
        "--mac",
        "52:54:00:12:34:56",
        "--ip",
        "192.0.2.5/24",
        "--gateway",
        "192.0.2.1",
    ];
    assert!(host(&dom0, &set, None).status.success());
    assert!(host(&dom0, &["set-hostname", "operator-vm"], None).status.success());
    let out = host(&dom0, &["resetnetwork"], None);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(root.read("/etc/hostname"), b"operator-vm\n");
    let stanza = String::from_utf8(root.read("/etc/network/interfaces.d/50-singularity")).unwrap();
    assert!(stanza.contains("address 192.0.2.5/24"), "{stanza}");

    let out = host(&dom0, &["raw", "kmsactivate", "x"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1.trim(),
        "agent returned 404: No such agent command 'kmsactivate'"
    );

    // Debian's own client reads what nova's side wrote.
    let out = Command::new("xenstore-read")
        .arg("/local/domain/3/vm-data/hostname")
        .env("XENSTORED_PATH", &dom0)
        .output()
        .expect("xenstore-utils installed");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "operator-vm");
    let ls = Command::new("xenstore-ls")
        .arg("/local/domain/3/data/host")
        .env("XENSTORED_PATH", &dom0)
        .output()
        .unwrap();
    assert!(ls.status.success() && ls.stdout.is_empty(), "no request left behind");

    // SIGTERM stops the simulator cleanly and removes its sockets.
    let sim = &mut procs.0[0];
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(sim.id() as i32, libc::SIGTERM) };
    assert!(sim.wait().unwrap().success());
    assert!(!dom0.exists() && !guest.exists());
}
