//! External configurators through the daemon (protocol v1): a new command
//! served by the shipped example, an extension of `resetnetwork`, `features`
//! and `functions`, refusal of files and directories others can change,
//! failures of every kind answered 500 with nothing changed (a built-in
//! change included), and SIGHUP picking up a new configurator.

use crate::harness::{Agent, TestRoot};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A private directory of configurators: 0755, owned by the test's user.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Dir(d)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn arg(&self) -> String {
        self.path().display().to_string()
    }

    /// A `/bin/sh` configurator: `describe` is its `--describe` answer,
    /// `body` what it does for a request.
    fn script(&self, name: &str, describe: Value, body: &str, mode: u32) -> PathBuf {
        let path = self.path().join(name);
        let text =
            format!("#!/bin/sh\nif [ \"$1\" = --describe ]; then printf '%s\\n' '{describe}'; exit 0; fi\n{body}\n");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// The shipped example, copied in with safe permissions.
    fn kmsactivate(&self) {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/examples/configurators/kmsactivate");
        let path = self.path().join("kmsactivate");
        fs::copy(example, &path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn fixture(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kms")
            .join(name),
    )
    .unwrap()
}

fn features(agent: &Agent) -> String {
    agent.connect().json(json!({"name": "features", "value": ""})).1
}

#[test]
fn the_kmsactivate_example_serves_a_new_command() {
    let dir = Dir::new();
    dir.kmsactivate();
    let root = TestRoot::new();
    // Configured in the file this time, not with -d.
    let agent = Agent::socket(&root, &[], Some(&format!("[daemon]\nconfigurators = {}\n", dir.arg())));
    assert_eq!(
        features(&agent),
        "version,features,keyinit,password,injectfile,file_inject,resetnetwork,agentupdate,kmsactivate"
    );
    let value: Value = serde_json::from_slice(&fixture("request-value.json")).unwrap();
    let mut c = agent.connect();
    let (rc, msg) = c.json(json!({"name": "kmsactivate", "value": value}));
    assert_eq!((rc.as_str(), msg.as_str()), ("0", ""));
    assert_eq!(root.read("/etc/sysconfig/rhn/up2date"), fixture("up2date.expected"));
    assert_eq!(root.mode("/etc/sysconfig/rhn/up2date") & 0o7777, 0o644);
    // Cached under its function, for `singularity apply kms`.
    assert!(root
        .path("/var/cache/singularity/kms/etc/sysconfig/rhn/up2date")
        .is_file());
    // Its own validation answers, and nothing changes.
    let before = root.snapshot();
    let (rc, msg) = c.json(json!({"name": "kmsactivate", "value": {"domains": ["bad host/"]}}));
    assert_eq!(rc, "500");
    assert!(msg.contains("domains"), "{msg}");
    assert_eq!(root.snapshot(), before);
}

#[test]
fn functions_enable_and_restrict_external_configurators() {
    let dir = Dir::new();
    dir.kmsactivate();
    let root = TestRoot::new();
    let value = json!({"domains": ["rhn.example.com"]});
    // Not listed: 404 and not in features.
    let agent = Agent::socket_with(&root, &["-F", "version,features"], &["-d", &dir.arg()], None);
    assert_eq!(features(&agent), "version,features");
    let (rc, msg) = agent.connect().json(json!({"name": "kmsactivate", "value": value}));
    assert_eq!(
        (rc.as_str(), msg.as_str()),
        ("404", "No such agent command 'kmsactivate'")
    );
    assert!(!root.path("/etc/sysconfig/rhn/up2date").exists());
    drop(agent);
    // Listed by its function's name.
    let agent = Agent::socket_with(&root, &["-F", "version,features,kms"], &["-d", &dir.arg()], None);
    assert_eq!(features(&agent), "version,features,kmsactivate");
    assert_eq!(
        agent.connect().json(json!({"name": "kmsactivate", "value": value})).0,
        "0"
    );
    drop(agent);
    // A function no configurator declares (a typo, a configurator gone) is a
    // warning, not a daemon that will not start.
    let empty = Dir::new();
    let agent = Agent::socket_with(&root, &["-F", "version,features,kms"], &["-d", &empty.arg()], None);
    assert_eq!(features(&agent), "version,features");
    assert!(
        agent.log().contains("no external configurator declares 'kms' now"),
        "{}",
        agent.log()
    );
}

#[test]
fn configurators_others_can_change_are_skipped_with_a_warning() {
    let dir = Dir::new();
    let describe = json!({"function": "demo", "commands": ["hello"]});
    let answer = r#"printf '%s\n' '{"returncode": "0", "message": "hi"}'"#;
    dir.script("open", describe.clone(), answer, 0o777);
    let root = TestRoot::new();
    let agent = Agent::socket_with(&root, &[], &["-d", &dir.arg()], None);
    assert!(!features(&agent).contains("hello"));
    assert_eq!(agent.connect().json(json!({"name": "hello"})).0, "404");
    let log = agent.log();
    assert!(log.contains("open skipped: writable by group or others"), "{log}");
    drop(agent);

    let open_dir = Dir::new();
    fs::set_permissions(open_dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    open_dir.script("hello", describe, answer, 0o755);
    let agent = Agent::socket_with(&root, &[], &["-d", &open_dir.arg()], None);
    assert_eq!(agent.connect().json(json!({"name": "hello"})).0, "404");
    assert!(
        agent.log().contains("is writable by group or others"),
        "{}",
        agent.log()
    );
}

/// vm-data for one NIC, as the socket communicator reads it.
fn vm_data(dir: &Path, hostname: &str) {
    fs::create_dir_all(dir.join("networking")).unwrap();
    fs::write(
        dir.join("networking/BC764E206C5B"),
        r#"{"label": "public", "mac": "BC:76:4E:20:6C:5B", "ips": [{"ip": "203.0.113.10", "netmask": "255.255.255.0", "enabled": "1"}], "gateway": "203.0.113.1", "dns": ["198.51.100.53"]}"#,
    )
    .unwrap();
    fs::write(dir.join("hostname"), hostname).unwrap();
}

/// A Debian guest with NIC eth0 and vm-data for it, whose configuration
/// points the socket communicator at that vm-data.
struct NetworkGuest {
    root: TestRoot,
    vm: tempfile::TempDir,
    config: String,
}

impl NetworkGuest {
    fn new() -> NetworkGuest {
        let root = TestRoot::new();
        root.seed_debian(&[("eth0", "bc:76:4e:20:6c:5b")]);
        let vm = tempfile::tempdir().unwrap();
        vm_data(vm.path(), "web1");
        let config = format!("[socket]\nvm_data = {}\n", vm.path().display());
        NetworkGuest { root, vm, config }
    }

    /// The agent with the configurators of `dir`.
    fn agent(&self, dir: &Dir) -> Agent {
        Agent::socket_with(&self.root, &[], &["-d", &dir.arg()], Some(&self.config))
    }
}

#[test]
fn resetnetwork_is_extended_and_one_failure_undoes_everything() {
    let dir = Dir::new();
    let seen = tempfile::tempdir().unwrap();
    // Saves what it was given, and writes a file of its own.
    dir.script(
        "50-extra",
        json!({"function": "network", "commands": ["resetnetwork"]}),
        &format!(
            "cat > {}/input.json\nprintf '%s\\n' '{{\"returncode\": \"0\", \"message\": \"extra written\", \"files\": {{\"/etc/network/extra\": {{\"content\": \"managed\\n\", \"mode\": \"0600\"}}}}}}'",
            seen.path().display()
        ),
        0o755,
    );
    let guest = NetworkGuest::new();
    let root = &guest.root;
    let agent = guest.agent(&dir);
    let (rc, msg) = agent.connect().json(json!({"name": "resetnetwork", "value": ""}));
    assert_eq!(rc, "0", "{msg}");
    assert!(msg.contains("extra written"), "{msg}");
    // The built-in change and the external file, both.
    let stanza = String::from_utf8(root.read("/etc/network/interfaces.d/50-singularity")).unwrap();
    assert!(stanza.contains("address 203.0.113.10/24"), "{stanza}");
    assert_eq!(root.read("/etc/network/extra"), b"managed\n");
    assert_eq!(root.mode("/etc/network/extra") & 0o7777, 0o600);
    assert_eq!(root.read("/etc/hostname"), b"web1\n");
    // It was given the parsed vm-data.
    let input: Value = serde_json::from_slice(&fs::read(seen.path().join("input.json")).unwrap()).unwrap();
    assert_eq!(input["command"], "resetnetwork");
    assert_eq!(input["configuration"]["hostname"], "web1");
    let nic = &input["configuration"]["interfaces"][0];
    assert_eq!(nic["mac"], "bc:76:4e:20:6c:5b");
    assert_eq!(nic["ipv4"], json!(["203.0.113.10/24"]));
    assert_eq!(nic["gateway4"], "203.0.113.1");
    assert_eq!(nic["dns"], json!(["198.51.100.53"]));
    drop(agent);

    // New vm-data, and a second configurator that fails: the built-in
    // change is not made either.
    vm_data(guest.vm.path(), "web2");
    dir.script(
        "60-broken",
        json!({"function": "hosts", "commands": ["resetnetwork"]}),
        "echo 'cannot do it' >&2; exit 4",
        0o755,
    );
    let agent = guest.agent(&dir);
    let before = root.snapshot();
    let (rc, msg) = agent.connect().json(json!({"name": "resetnetwork", "value": ""}));
    assert_eq!(rc, "500");
    assert!(msg.contains("60-broken") && msg.contains("cannot do it"), "{msg}");
    assert_eq!(root.snapshot(), before, "nothing changed");
    assert_eq!(root.read("/etc/hostname"), b"web1\n");
}

#[test]
fn every_kind_of_failure_is_a_500_naming_the_configurator_and_changes_nothing() {
    let root = TestRoot::new();
    let cases = [
        ("sleep 20", "no answer within 1 s"),
        ("head -c 3000000 /dev/zero", "printed more than 1024 KiB"),
        ("echo garbage", "not one JSON object"),
        ("exit 7", "failed (exit status: 7)"),
        (
            r#"printf '%s\n' '{"returncode": "0", "message": "", "files": {"/etc/shadow": {"content": "root::0:0:::::\n"}}}'"#,
            "outside the allowed",
        ),
        (
            r#"printf '%s\n' '{"returncode": "0", "message": "", "files": {"/root/../etc/x": {"content": ""}}}'"#,
            "'..'",
        ),
    ];
    for (body, want) in cases {
        let dir = Dir::new();
        dir.script("bad", json!({"function": "demo", "commands": ["hello"]}), body, 0o755);
        let config = "[daemon]\nconfigurator_timeout = 1\n[file]\nallowed_paths = /srv\n";
        let agent = Agent::socket_with(&root, &[], &["-d", &dir.arg()], Some(config));
        let before = root.snapshot();
        let (rc, msg) = agent.connect().json(json!({"name": "hello", "value": {"x": 1}}));
        assert_eq!(rc, "500", "{body}: {msg}");
        assert!(
            msg.starts_with("configurator ") && msg.contains("/bad"),
            "{body}: {msg}"
        );
        assert!(msg.contains(want), "{body}: {msg}");
        assert_eq!(root.snapshot(), before, "{body}");
        // Still serving.
        assert_eq!(agent.connect().json(json!({"name": "version"})).0, "0");
    }
}

#[test]
fn sighup_picks_up_a_new_configurator() {
    let dir = Dir::new();
    let root = TestRoot::new();
    let agent = Agent::socket_with(&root, &[], &["-d", &dir.arg()], None);
    assert!(!features(&agent).contains("hello"));
    dir.script(
        "hello",
        json!({"function": "demo", "commands": ["hello"]}),
        r#"printf '%s\n' '{"returncode": "0", "message": "hello from a script"}'"#,
        0o755,
    );
    // SAFETY: kill(2) of the daemon this test started.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !features(&agent).ends_with(",hello") {
        assert!(Instant::now() < deadline, "features: {}", features(&agent));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (rc, msg) = agent.connect().json(json!({"name": "hello"}));
    assert_eq!((rc.as_str(), msg.as_str()), ("0", "hello from a script"));
}

#[test]
fn a_configurator_that_answers_failure_vetoes_the_whole_change() {
    let dir = Dir::new();
    dir.script(
        "veto",
        json!({"function": "network", "commands": ["resetnetwork"]}),
        r#"printf '%s\n' '{"returncode": "500", "message": "not on this host", "files": {"/etc/network/extra": {"content": "x\n"}}}'"#,
        0o755,
    );
    let guest = NetworkGuest::new();
    let agent = guest.agent(&dir);
    let before = guest.root.snapshot();
    let (rc, msg) = agent.connect().json(json!({"name": "resetnetwork", "value": ""}));
    assert_eq!((rc.as_str(), msg.as_str()), ("500", "not on this host"));
    assert_eq!(
        guest.root.snapshot(),
        before,
        "neither its files nor the built-in change"
    );
}
