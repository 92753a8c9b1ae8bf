//! The simulator against real clients: Debian's `xenstore-utils` (libxenstore
//! 4.17, pointed at our sockets with `XENSTORED_PATH`) and `python3-pyxs`.
//! CI installs both (`scripts/test`); without them these tests fail and say so.

mod sim_support;

use sim_support::{Rig, WAIT};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use xenstore::wire::MsgType;

/// Runs `xenstore-<tool> args...` against `socket` (under `timeout`).
fn xs(socket: &Path, tool: &str, args: &[&str]) -> Output {
    let bin = format!("xenstore-{tool}");
    Command::new("timeout")
        .arg("10")
        .arg(&bin)
        .args(args)
        .env("XENSTORED_PATH", socket)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin} (apt-get install xenstore-utils): {e}"))
}

/// Stdout of a tool that must succeed.
fn ok(socket: &Path, tool: &str, args: &[&str]) -> String {
    let out = xs(socket, tool, args);
    assert!(
        out.status.success(),
        "xenstore-{tool} {args:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Exit code and stderr of a tool that must fail.
fn fails(socket: &Path, tool: &str, args: &[&str]) -> (i32, String) {
    let out = xs(socket, tool, args);
    assert!(!out.status.success(), "xenstore-{tool} {args:?} succeeded");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn require_tools() {
    let found = Command::new("xenstore-read").arg("-h").output().is_ok();
    assert!(
        found,
        "xenstore-utils is not installed: apt-get install -y xenstore-utils"
    );
}

/// Starts `xenstore-watch -n <count> <path>` and waits until it registered.
fn start_watch(rig: &Rig, socket: &Path, count: &str, path: &str) -> std::process::Child {
    let before = rig.sim.stats().requests_of(MsgType::Watch);
    let child = Command::new("timeout")
        .args(["10", "xenstore-watch", "-n", count, path])
        .env("XENSTORED_PATH", socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xenstore-watch");
    let deadline = Instant::now() + WAIT;
    while rig.sim.stats().requests_of(MsgType::Watch) == before {
        assert!(Instant::now() < deadline, "xenstore-watch never registered");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn watch_output(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("xenstore-watch output");
    assert!(out.status.success(), "xenstore-watch: {:?}", out.status);
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn xenstore_utils_on_the_dom0_socket() {
    require_tools();
    let rig = Rig::c();
    let s = rig.path("dom0");
    ok(&s, "write", &["/t/a/b", "one", "/t/c", "q\"uote", "/t/d", ""]);
    assert_eq!(ok(&s, "read", &["/t/a/b", "/t/c"]), "one\nq\"uote\n");
    assert_eq!(ok(&s, "read", &["-p", "/t/c"]), "/t/c: q\"uote\n");
    assert_eq!(ok(&s, "list", &["/t"]), "a\nc\nd\n");
    assert_eq!(ok(&s, "exists", &["/t/a"]), "");
    assert_eq!(fails(&s, "exists", &["/t/zz"]).0, 1);
    let (code, err) = fails(&s, "read", &["/t/zz"]);
    assert_eq!((code, err.as_str()), (1, "xenstore-read: couldn't read path /t/zz\n"));
    // Tree output (values cut at 80 columns), full paths, permissions.
    rig.sim.write("/t/long", "x".repeat(120).as_bytes());
    let long = format!("long = \"{}\\...\"\n", "x".repeat(68));
    let tree = format!("a = \"\"\n b = \"one\"\nc = \"q\"uote\"\nd = \"\"\n{long}");
    assert_eq!(ok(&s, "ls", &["/t"]), tree);
    assert_eq!(ok(&s, "ls", &["-f", "/t/a"]), "/t/a/b = \"one\"\n");
    ok(&s, "chmod", &["/t/a/b", "n0", "r5"]);
    let perms = ok(&s, "ls", &["-p", "/t/a"]);
    assert!(perms.starts_with("b = \"one\"  . . ."), "{perms}");
    assert!(perms.ends_with("  (n0,r5)\n"), "{perms}");
    ok(&s, "chmod", &["-r", "/t/a", "n0", "b5"]);
    assert!(ok(&s, "ls", &["-p", "/t/a"]).ends_with("(n0,b5)\n"));
    // Binary values: escaped by default, raw with -R.
    rig.sim.write("/t/bin", b"a\x01b\xff\0\n");
    assert_eq!(ok(&s, "read", &["/t/bin"]), "a\\001b\\xff\\000\\n\n");
    let raw = xs(&s, "read", &["-R", "/t/bin"]).stdout;
    assert_eq!(raw, b"a\x01b\xff\0\n");
    // rm, recursive; missing parent fails.
    ok(&s, "rm", &["/t/a"]);
    assert_eq!(rig.sim.read("/t/a/b"), None);
    assert_eq!(fails(&s, "rm", &["/nothere/x"]).0, 1);
    // Relative paths of dom0.
    ok(&s, "write", &["rel", "r"]);
    assert_eq!(rig.sim.read("/local/domain/0/rel").unwrap(), b"r");
    // A directory too big for one DIRECTORY reply (libxenstore falls back to
    // DIRECTORY_PART).
    let names: Vec<String> = (0..150).map(|i| format!("child-{i:03}-{}", "x".repeat(24))).collect();
    for n in &names {
        rig.sim.write(&format!("/big/{n}"), b"");
    }
    assert_eq!(ok(&s, "list", &["/big"]), names.join("\n") + "\n");
    assert!(rig.sim.stats().requests_of(MsgType::DirectoryPart) >= 2);
}

#[test]
fn xenstore_watch_sees_writes_from_other_connections() {
    require_tools();
    let rig = Rig::c();
    let s = rig.path("dom0");
    let child = start_watch(&rig, &s, "3", "/w");
    ok(&s, "write", &["/w/a", "1"]);
    ok(&s, "rm", &["/w"]);
    assert_eq!(watch_output(child), "/w\n/w/a\n/w\n");
    // On the guest socket, relative watches report relative paths.
    let g = rig.path("guest5");
    let child = start_watch(&rig, &g, "2", "data");
    rig.sim.write("/local/domain/5/data/x", b"1");
    assert_eq!(watch_output(child), "data\ndata/x\n");
}

#[test]
fn xenstore_utils_on_a_guest_socket() {
    require_tools();
    let rig = Rig::c();
    let g = rig.path("guest5");
    rig.sim.write("/local/domain/5/vm-data/hostname", b"vm5");
    // Relative paths resolve to /local/domain/5.
    assert_eq!(ok(&g, "read", &["domid", "name"]), "5\nguest-5\n");
    ok(&g, "write", &["data/host/x", "1"]);
    assert_eq!(rig.sim.read("/local/domain/5/data/host/x").unwrap(), b"1");
    assert_eq!(ok(&g, "read", &["vm-data/hostname"]), "vm5\n");
    assert_eq!(ok(&g, "ls", &["data"]), "host = \"\"\n x = \"1\"\n");
    assert_eq!(fails(&g, "list", &[""]).0, 1, "the empty path is refused");
    // Outside its permissions: EACCES (libxenstore only prints it for chmod).
    let (code, err) = fails(&g, "write", &["vm-data/x", "1"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "xenstore-write: could not write path vm-data/x\n")
    );
    let (code, err) = fails(&g, "chmod", &["vm-data", "n5"]);
    assert_eq!(code, 1);
    assert!(err.ends_with("'vm-data': Permission denied\n"), "{err}");
    assert_eq!(fails(&g, "read", &["/local/domain/0/name"]).0, 1);
    assert_eq!(fails(&g, "write", &["/tool/x", "1"]).0, 1);
    assert_eq!(fails(&g, "rm", &["vm-data"]).0, 1);
    assert_eq!(rig.sim.read("/local/domain/5/vm-data/x"), None);
    // Its own nodes: it may change their perms but not give them away.
    ok(&g, "chmod", &["data/host/x", "n5", "r0"]);
    let (_, err) = fails(&g, "chmod", &["data/host/x", "n0"]);
    assert!(err.ends_with("Operation not permitted\n"), "{err}");
    ok(&g, "rm", &["data/host"]);
    assert!(rig.sim.directory("/local/domain/5/data").is_empty());
}

fn python_with_pyxs() -> String {
    for python in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(python)
            .args(["-c", "import pyxs"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return python.to_string();
        }
    }
    panic!("no python3 with pyxs: apt-get install -y python3-pyxs");
}

#[test]
fn pyxs_on_dom0_and_guest_sockets() {
    let python = python_with_pyxs();
    for rig in [Rig::c(), Rig::ox()] {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sim_pyxs.py");
        let out = Command::new("timeout")
            .arg("30")
            .arg(&python)
            .arg(&script)
            .arg(rig.path("dom0"))
            .arg(rig.path("guest5"))
            .output()
            .expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "pyxs script failed: {:?}\n{stdout}\n{stderr}",
            out.status
        );
        assert_eq!(stdout, "pyxs ok\n");
        assert_eq!(rig.sim.stats().handler_panics, 0);
    }
}
